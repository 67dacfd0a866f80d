"""MBCAS: a market-based, kernel-informed CPU allocator for Kubernetes.

The node agent reads each pod's CPU pressure from the kernel, solves a Nash-social-welfare
allocation of the node's CPU and records the decision as a ``PodAllocation``; the controller
turns those decisions into in-place resizes of the pods.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
