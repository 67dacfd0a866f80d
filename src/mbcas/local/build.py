"""Build (or find) the binaries of the local control plane.

The apiserver, controller-manager and kubectl (and, for the real node, the kubelet and
kube-scheduler) come from the ``k8s.io/kubernetes`` Go module,
built through a small wrapper module: ``k8s.io/kubernetes`` lists its staging modules
(``k8s.io/api``, ``k8s.io/client-go``, ...) at ``v0.0.0`` with local replaces that do not apply to
a dependency, so the wrapper adds ``replace k8s.io/<staging> => k8s.io/<staging> v0.<minor>.<patch>``
for every such module, read from the release's own go.mod (never hard-coded). etcd and helm are
built in wrapper modules of their own so their dependency versions never leak into the apiserver.

Binaries are cached in ``$MBCAS_CACHE`` (default ``~/.cache/mbcas``) under ``k8s-v<version>/`` and
reused. ``KUBEBUILDER_ASSETS`` (the envtest convention) points at a directory that already holds
``etcd``, ``kube-apiserver`` and optionally ``kube-controller-manager`` and ``kubectl``; when set, it
wins and nothing is built. The real node's ``kubelet`` and ``kube-scheduler`` are taken from there
too when present, else built into the cache.

Checksums: module downloads are verified against the Go checksum database as usual
(``GOSUMDB`` is left alone). ``GOFLAGS=-mod=mod`` is set so that the wrapper's go.sum is filled in
during the build; verification still happens for every module added.

Run ``python -m mbcas.local.build`` to build everything ahead of time (progress is printed);
``--node`` adds the kubelet and kube-scheduler.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mbcas.local.versions import ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION, STAGING_VERSION

__all__ = [
    "Binaries",
    "BuildError",
    "NodeBinaries",
    "cache_dir",
    "ensure_binaries",
    "ensure_helm",
    "ensure_node_binaries",
    "kube_bin_dir",
    "kubernetes_source",
]

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kubectl")
NODE_COMMANDS = ("kubelet", "kube-scheduler")


class BuildError(RuntimeError):
    """A binary could not be built or found; the message says which and why."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane binaries to run."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    kubectl: Path | None


@dataclass(frozen=True)
class NodeBinaries:
    """Paths of the real node's binaries (same release as the control plane)."""

    kubelet: Path
    kube_scheduler: Path


def cache_dir() -> Path:
    """Root of MBCAS's build cache (outside the repository)."""
    root = os.environ.get("MBCAS_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mbcas"


def kube_bin_dir() -> Path:
    """Directory holding the binaries of the pinned release."""
    return cache_dir() / f"k8s-v{KUBERNETES_VERSION}"


def _log(msg: str) -> None:
    print(f"[mbcas build] {msg}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    flags = env.get("GOFLAGS", "")
    if "-mod=" not in flags:
        flags = (flags + " -mod=mod").strip()
    env["GOFLAGS"] = flags
    env.setdefault("CGO_ENABLED", "0")
    return env


def _run_go(args: list[str], cwd: Path, label: str) -> str:
    """Run a go command, streaming a progress line every 25 packages compiled."""
    if shutil.which("go") is None:
        raise BuildError(
            "the Go toolchain ('go') is not on PATH; install Go >= 1.25 or set KUBEBUILDER_ASSETS"
        )
    start = time.monotonic()
    proc = subprocess.Popen(
        ["go", *args],
        cwd=cwd,
        env=_go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopped as a whole below
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for count, line in enumerate(proc.stdout, 1):
            lines.append(line.rstrip())
            if count % 25 == 0:
                _log(f"{label}: {count} packages/modules so far, {time.monotonic() - start:.0f}s")
        rc = proc.wait()
    except BaseException:  # Ctrl-C (or anything else): never leave go and its compilers running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if rc != 0:
        tail = "\n".join(lines[-40:])
        raise BuildError(f"{label}: 'go {' '.join(args)}' failed with exit {rc}:\n{tail}")
    _log(f"{label}: done in {time.monotonic() - start:.0f}s")
    return "\n".join(lines)


def _staging_modules(kube_version: str, work: Path) -> list[str]:
    """Staging modules that k8s.io/kubernetes requires at v0.0.0, from its own go.mod."""
    out = _run_go(
        ["mod", "download", "-json", f"k8s.io/kubernetes@v{kube_version}"], work, "download k8s.io/kubernetes"
    )
    info = json.loads(out[out.index("{") :])
    if "Error" in info:
        raise BuildError(f"cannot download k8s.io/kubernetes@v{kube_version}: {info['Error']}")
    gomod = Path(info["GoMod"]).read_text()
    mods: list[str] = []
    for line in gomod.splitlines():
        parts = line.split()
        if parts and parts[0] == "require":
            parts = parts[1:]
        if len(parts) >= 2 and parts[1] == "v0.0.0" and parts[0].startswith("k8s.io/"):
            mods.append(parts[0])
    if not mods:
        raise BuildError(
            f"k8s.io/kubernetes@v{kube_version} lists no v0.0.0 staging modules; layout changed?"
        )
    return sorted(set(mods))


def _ldflags(version: str) -> str:
    major, minor = version.split(".")[:2]
    stamp = {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in stamp.items():
            flags.append(f"-X {pkg}.{key}={value}")
    return " ".join(flags)


def _write_module(work: Path, name: str, go: str, requires: dict[str, str], replaces: dict[str, str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"module {name}", "", f"go {go}", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in requires.items()]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {target}" for mod, target in replaces.items()]
        lines.append(")")
    (work / "go.mod").write_text("\n".join(lines) + "\n")


def _kube_module() -> Path:
    """The wrapper module that requires k8s.io/kubernetes (written once, reused by every build)."""
    work = cache_dir() / "build" / f"kube-v{KUBERNETES_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    staging = _staging_modules(KUBERNETES_VERSION, work)
    _log(f"replacing {len(staging)} staging modules with v{STAGING_VERSION}")
    _write_module(
        work,
        "mbcas.local/kubebuild",
        "1.25.0",
        {"k8s.io/kubernetes": f"v{KUBERNETES_VERSION}"},
        {mod: f"{mod} v{STAGING_VERSION}" for mod in staging},
    )
    return work


def _build_kube(out: Path, commands: tuple[str, ...] = KUBE_COMMANDS) -> None:
    _log(
        f"building Kubernetes v{KUBERNETES_VERSION} ({', '.join(commands)}); "
        "a cold build takes 15-40 min on 2 cores, less when the Go build cache is warm"
    )
    work = _kube_module()
    pkgs = [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in commands]
    # An explicit @version: a bare 'go get pkg' would upgrade k8s.io/kubernetes to the newest release.
    _run_go(["get", *(f"{p}@v{KUBERNETES_VERSION}" for p in pkgs)], work, "resolve kubernetes modules")
    # One temp dir per set of commands: two different builds never write into each other's.
    tmp = out.with_name(
        f"{out.name}.tmp-{'-'.join(commands)}" if commands != KUBE_COMMANDS else out.name + ".tmp"
    )
    tmp.mkdir(parents=True, exist_ok=True)
    _run_go(
        ["build", "-v", "-trimpath", "-ldflags", _ldflags(KUBERNETES_VERSION), "-o", str(tmp) + "/", *pkgs],
        work,
        "compile kubernetes",
    )
    for cmd in commands:
        os.replace(tmp / cmd, out / cmd)
    shutil.rmtree(tmp, ignore_errors=True)


def kubernetes_source() -> Path:
    """The extracted source of the pinned ``k8s.io/kubernetes`` module (from the Go module cache).

    The real node builds its ``pause`` binary from ``build/pause/linux/pause.c`` in there.
    """
    work = _kube_module()
    out = _run_go(
        ["mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
        work,
        "locate k8s.io/kubernetes",
    )
    info = json.loads(out[out.index("{") :])
    if "Error" in info or not info.get("Dir"):
        raise BuildError(f"cannot download k8s.io/kubernetes@v{KUBERNETES_VERSION}: {info.get('Error')}")
    return Path(info["Dir"])


def _build_single(out: Path, module: str, version: str, *, pkg: str, binary: str, go: str = "1.24") -> None:
    work = cache_dir() / "build" / f"{binary}-v{version}"
    _log(f"building {binary} v{version} from {module}")
    _write_module(work, f"mbcas.local/{binary}build", go, {module: f"v{version}"}, {})
    _run_go(["get", f"{pkg}@v{version}"], work, f"resolve {binary} modules")
    tmp = out / f".{binary}.tmp"
    _run_go(["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), pkg], work, f"compile {binary}")
    os.replace(tmp, out / binary)


def ensure_binaries(build: bool = True) -> Binaries:
    """Return the control-plane binaries, building the pinned versions if they are missing.

    ``KUBEBUILDER_ASSETS`` takes precedence: it must hold ``etcd`` and ``kube-apiserver``.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        root = Path(assets)
        missing = [b for b in ("etcd", "kube-apiserver") if not (root / b).is_file()]
        if missing:
            raise BuildError(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}")
        kcm = root / "kube-controller-manager"
        kubectl = root / "kubectl"
        if not kcm.is_file():
            _log(
                f"KUBEBUILDER_ASSETS={assets} has no kube-controller-manager: no garbage collection "
                "of owned objects and no namespace deletion in this control plane"
            )
        return Binaries(
            etcd=root / "etcd",
            kube_apiserver=root / "kube-apiserver",
            kube_controller_manager=kcm if kcm.is_file() else None,
            kubectl=kubectl if kubectl.is_file() else (Path(p) if (p := shutil.which("kubectl")) else None),
        )
    out = kube_bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not all((out / cmd).is_file() for cmd in KUBE_COMMANDS):
        if not build:
            raise BuildError(f"Kubernetes binaries missing in {out}; run 'make cluster-build'")
        _build_kube(out)
    if not (out / "etcd").is_file():
        if not build:
            raise BuildError(f"etcd missing in {out}; run 'make cluster-build'")
        _build_single(
            out, "go.etcd.io/etcd/server/v3", ETCD_VERSION, pkg="go.etcd.io/etcd/server/v3", binary="etcd"
        )
    return Binaries(
        etcd=out / "etcd",
        kube_apiserver=out / "kube-apiserver",
        kube_controller_manager=out / "kube-controller-manager",
        kubectl=out / "kubectl",
    )


def ensure_node_binaries(build: bool = True) -> NodeBinaries:
    """Return the kubelet and kube-scheduler of the pinned release, building them if missing.

    ``KUBEBUILDER_ASSETS`` wins when it holds both; otherwise they are built into the cache
    (about 5 minutes cold on 2 cores, well under one when the control plane's build left the Go
    build cache warm).
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and all((Path(assets) / cmd).is_file() for cmd in NODE_COMMANDS):
        return NodeBinaries(kubelet=Path(assets) / "kubelet", kube_scheduler=Path(assets) / "kube-scheduler")
    out = kube_bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    missing = tuple(cmd for cmd in NODE_COMMANDS if not (out / cmd).is_file())
    if missing:
        if not build:
            raise BuildError(
                f"{', '.join(missing)} missing in {out}; run 'python -m mbcas.local.build --node'"
            )
        _build_kube(out, missing)
    return NodeBinaries(kubelet=out / "kubelet", kube_scheduler=out / "kube-scheduler")


def ensure_helm(build: bool = True) -> Path:
    """Return a helm binary: ``helm`` on PATH, or the pinned version built into the cache."""
    found = shutil.which("helm")
    if found:
        return Path(found)
    out = cache_dir() / f"helm-v{HELM_VERSION}"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "helm").is_file():
        if not build:
            raise BuildError(f"helm missing in {out}; run 'python -m mbcas.local.build --helm'")
        _build_single(
            out, "helm.sh/helm/v3", HELM_VERSION, pkg="helm.sh/helm/v3/cmd/helm", binary="helm", go="1.24.0"
        )
    return out / "helm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.local.build",
        description="Build and cache the local control plane's binaries (etcd, kube-apiserver, "
        "kube-controller-manager, kubectl) and optionally helm.",
    )
    parser.add_argument("--helm", action="store_true", help="also build helm")
    parser.add_argument("--node", action="store_true", help="also build the kubelet and kube-scheduler")
    parser.add_argument("--print-dir", action="store_true", help="print the binary directory and exit")
    args = parser.parse_args(argv)
    if args.print_dir:
        print(kube_bin_dir())
        return 0
    start = time.monotonic()
    try:
        bins = ensure_binaries()
        if args.helm:
            print(ensure_helm())
        if args.node:
            ensure_node_binaries()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(bins.kube_apiserver.parent)
    _log(f"all binaries ready in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
