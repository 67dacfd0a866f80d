"""The only package that talks to the Kubernetes API.

- :mod:`mbcas.kube.client` — build the API client once (kubeconfig/context or in-cluster).
- :mod:`mbcas.kube.errors` — typed errors for every API failure MBCAS reacts to differently.
- :mod:`mbcas.kube.actuator` — in-place CPU-limit resizes through the pod ``resize`` subresource,
  with the QoS safety checks.
- :mod:`mbcas.kube.discovery` — does the server support ``pods/resize``; is the CRD installed.
- :mod:`mbcas.kube.store` and :mod:`mbcas.kube.pods` — PodAllocation store and pod listing.
- :mod:`mbcas.kube.workqueue` — the delaying, de-duplicating key queue of the controller's
  workers and the node emulator.

Import from the submodules; this package re-exports nothing so that importing one part never
drags in the others.
"""

__all__: list[str] = []
