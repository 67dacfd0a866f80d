"""The PodAllocation contract shared by the agent (writes spec) and the controller (writes status).

Pydantic models mirror ``crds/podallocations.mbcas.io.yaml``; :mod:`mbcas.api.quantity` converts
CPU quantities between Kubernetes strings and whole millicores.
"""

from mbcas.api.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Condition,
    Mode,
    Phase,
    PodAllocation,
    PodAllocationSpec,
    PodAllocationStatus,
)
from mbcas.api.quantity import QuantityError, format_cpu, parse_cpu

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Condition",
    "Mode",
    "Phase",
    "PodAllocation",
    "PodAllocationSpec",
    "PodAllocationStatus",
    "QuantityError",
    "format_cpu",
    "parse_cpu",
]
