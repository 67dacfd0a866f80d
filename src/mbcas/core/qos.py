"""Kubernetes pod QoS classes: one enum for the cgroup paths, the split rules and the planner.

:class:`QoSClass` is a ``StrEnum`` spelled as in ``status.qosClass``; :attr:`QoSClass.code` is the
small integer the planner keeps in its ``int8`` arrays (``Guaranteed`` 0, ``Burstable`` 1,
``BestEffort`` 2) and :meth:`QoSClass.from_code` maps it back.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["QoSClass"]


class QoSClass(StrEnum):
    """Kubernetes QoS classes (``status.qosClass``), with integer codes for numpy arrays."""

    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"

    @property
    def code(self) -> int:
        """The class's code in the planner's arrays: 0 Guaranteed, 1 Burstable, 2 BestEffort."""
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> QoSClass:
        """The class of a code (``1`` -> ``BURSTABLE``); ``ValueError`` for anything else."""
        if isinstance(code, bool) or not 0 <= int(code) < len(_ORDER):
            raise ValueError(f"{code!r} is not a QoS code (0 Guaranteed, 1 Burstable, 2 BestEffort)")
        return _ORDER[int(code)]

    @classmethod
    def parse(cls, value: str) -> QoSClass:
        """Parse a QoS class case-insensitively (``burstable``, ``BestEffort``, ``best-effort``)."""
        key = value.replace("-", "").replace("_", "").lower()
        for qos in cls:
            if qos.value.lower() == key:
                return qos
        raise ValueError(f"unknown QoS class {value!r} (expected Guaranteed, Burstable or BestEffort)")


_ORDER: tuple[QoSClass, ...] = (QoSClass.GUARANTEED, QoSClass.BURSTABLE, QoSClass.BEST_EFFORT)
_CODES: dict[QoSClass, int] = {qos: i for i, qos in enumerate(_ORDER)}
