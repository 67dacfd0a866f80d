# MBCAS — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MBCAS := $(VENV)/bin/mbcas
PYTEST_ARGS ?=
IMAGE_REPO ?= ghcr.io/mbcas
IMAGE_TAG ?= dev
KIND_CLUSTER ?= mbcas
KIND_NODE_IMAGE ?= kindest/node:v1.35.0
SCENARIO ?= contention
# Distro packages of the real node and the local image builds (Debian names; `make node-packages`).
NODE_PACKAGES := containerd runc containernetworking-plugins buildah debootstrap gcc libc6-dev iproute2

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install MBCAS with its dev tools

.PHONY: lint
lint: install ## ruff, mypy (strict on src/), import-linter layer contracts
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: install ## Format and auto-fix
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

.PHONY: test
test: install cluster-build e2e-prereqs ## Run all tests: unit, real-kernel, integration (local control plane) and e2e (real node)
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

.PHONY: e2e-prereqs
e2e-prereqs: install ## Install/build what the e2e tests need (packages, kubelet, images) when this machine can run a node
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory node-packages node-build images; \
	  else echo "not root: the e2e tests (real node) will be skipped"; fi

.PHONY: test-unit
test-unit: install ## Run only the tests that need no control plane
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

.PHONY: bench
bench: install ## Run the benchmarks; JSON lands in benchmarks/results/
	$(PY) benchmarks/run.py

##@ Local control plane (no Docker needed)

.PHONY: cluster-build
cluster-build: install ## Build (once) and cache etcd, kube-apiserver, kube-controller-manager, kubectl
	$(PY) -m mbcas.local.build

.PHONY: cluster
cluster: cluster-build ## Start the local control plane + node emulator in the background; prints `export KUBECONFIG=...`
	$(MBCAS) cluster up

.PHONY: cluster-down
cluster-down: install ## Stop the local control plane started by `make cluster` and remove its files
	$(MBCAS) cluster down

.PHONY: demo
demo: cluster-build ## Run the whole system on one machine (control plane, emulator, agent, controller) until Ctrl-C
	$(MBCAS) demo

.PHONY: evaluate
evaluate: cluster-build ## Real-kernel experiment: static limits vs MBCAS on spike, contention and noisy-neighbour
	$(PY) -m mbcas.experiment --out report/experiment

.PHONY: evaluate-real-node
evaluate-real-node: node-packages node-build ## The same experiment on a real node (kubelet sets the quotas; root, one node per machine)
	$(PY) -m mbcas.experiment --real-node --out report/experiment-real-node

.PHONY: simulate
simulate: install ## Run the simulator on SCENARIO (default contention) into report/
	$(MBCAS) simulate --scenario $(SCENARIO) --out report/$(SCENARIO)

##@ Real node (kubelet + containerd + runc on this machine; needs root, one per machine)

.PHONY: node-packages
node-packages: ## Install the distro packages the real node and `make images` use (apt-get, only those missing)
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing distro packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

.PHONY: node-build
node-build: cluster-build ## Build (once) and cache the kubelet and kube-scheduler of the same release
	$(PY) -m mbcas.local.build --node

.PHONY: node
node: node-packages node-build ## Start the control plane and a real node in the background; prints `export KUBECONFIG=...`
	$(MBCAS) cluster up --real-node

.PHONY: node-down
node-down: install ## Stop the real node and restore the host (processes, mounts, cgroups, bridge, paths, sysctls)
	$(MBCAS) cluster down --name node

.PHONY: images
images: install node-packages ## Build the agent, controller and burner images from the Dockerfiles (buildah, local base; cached)
	$(PY) -m mbcas.local.images

.PHONY: deploy-local
deploy-local: images ## helm install MBCAS (mbcas-system) on the node of `make node` with the images built here
	$(PY) -m mbcas.local.deploylocal

##@ Delivery

.PHONY: manifests
manifests: install ## Sync the chart's CRD copy and render the chart into deploy/manifests/ (helm built if missing)
	$(PY) -m mbcas.local.helm manifests

.PHONY: manifests-check
manifests-check: install ## Fail if deploy/manifests/ or the chart's CRD copy is out of date
	$(PY) -m mbcas.local.helm check

.PHONY: helm-lint
helm-lint: install ## Lint the Helm chart (helm lint --strict)
	$(PY) -m mbcas.local.helm lint

.PHONY: docker-lint
docker-lint: install ## Lint the Dockerfiles with hadolint (installed from PyPI with the dev tools)
	$(VENV)/bin/hadolint Dockerfile.agent Dockerfile.controller

.PHONY: docker-build
docker-build: ## Build the agent and controller images (needs a Docker engine)
	docker build -f Dockerfile.agent -t $(IMAGE_REPO)/mbcas-agent:$(IMAGE_TAG) .
	docker build -f Dockerfile.controller -t $(IMAGE_REPO)/mbcas-controller:$(IMAGE_TAG) .

.PHONY: kind-up
kind-up: ## Create a kind cluster (Kubernetes >= 1.35) for MBCAS (needs Docker and kind)
	kind create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE)

.PHONY: kind-deploy
kind-deploy: docker-build ## Load the images into kind and install the chart (needs Docker, kind and helm)
	kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REPO)/mbcas-agent:$(IMAGE_TAG) $(IMAGE_REPO)/mbcas-controller:$(IMAGE_TAG)
	kubectl --context kind-$(KIND_CLUSTER) create namespace mbcas-system --dry-run=client -o yaml \
	  | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) label namespace mbcas-system --overwrite \
	  pod-security.kubernetes.io/enforce=privileged pod-security.kubernetes.io/audit=restricted
	helm upgrade --install mbcas deploy/helm/mbcas --kube-context kind-$(KIND_CLUSTER) --namespace mbcas-system \
	  --set image.registry=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) --set image.pullPolicy=Never --wait

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: clean
clean: ## Remove caches and build output (not the cached Go binaries in ~/.cache/mbcas)
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis benchmarks/results src/*.egg-info
