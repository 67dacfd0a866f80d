"""CPU quantities and units: Kubernetes strings <-> whole millicores <-> cores.

MBCAS plans in cores (floats) and writes whole millicores, the finest unit the kubelet honours;
names of millicore values end in ``_mcpu``. ``parse_cpu`` accepts what the apiserver accepts for
CPU (``"2"``, ``"1.5"``, ``"250m"``; ``"1e3m"`` is not produced by the apiserver and is rejected
here with a clear error) and numbers of cores; sub-millicore values are rounded up, as the
apiserver canonicalises them. ``format_cpu`` writes the canonical form the apiserver itself
prints: whole cores as ``"2"``, everything else as ``"750m"``. :func:`cores_to_mcpu` and
:func:`mcpu_to_cores` are the one conversion at each boundary between the two units.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal, InvalidOperation

__all__ = [
    "MCPU_PER_CORE",
    "QuantityError",
    "cores_to_mcpu",
    "format_cpu",
    "mcpu_to_cores",
    "parse_cpu",
    "parse_cpu_cores",
]

MCPU_PER_CORE = 1000
"""Millicores in one core."""

_SUFFIX_MILLI = {"m": Decimal(1), "": Decimal(1000), "k": Decimal(1000) * 1000}


class QuantityError(ValueError):
    """A CPU quantity string that is not a valid, non-negative Kubernetes quantity."""


def parse_cpu(value: str | int | float) -> int:
    """Return the quantity in whole millicores (rounded up), e.g. ``"1.5" -> 1500``, ``"250m" -> 250``.

    A number counts as cores (``0.25 -> 250``).
    """
    if isinstance(value, bool):
        raise QuantityError(f"CPU quantity must be a string or number, got {value!r}")
    if isinstance(value, int | float):
        dec = Decimal(str(value)) * 1000
    else:
        text = value.strip()
        if not text:
            raise QuantityError("CPU quantity is empty")
        suffix = text[-1] if text[-1] in ("m", "k") else ""
        number = text[: len(text) - len(suffix)]
        if not number or not all(c.isdigit() or c == "." for c in number) or number.count(".") > 1:
            raise QuantityError(f"malformed CPU quantity {value!r} (expected e.g. '2', '1.5' or '750m')")
        try:
            dec = Decimal(number) * _SUFFIX_MILLI[suffix]
        except InvalidOperation as exc:  # pragma: no cover - guarded by the character check
            raise QuantityError(f"malformed CPU quantity {value!r}") from exc
    if not dec.is_finite() or dec < 0:
        raise QuantityError(f"CPU quantity must be finite and >= 0, got {value!r}")
    return int(dec.to_integral_value(rounding=ROUND_CEILING))


def parse_cpu_cores(value: str | int | float) -> float:
    """A CPU quantity (string, or a number of cores) in cores, at millicore resolution."""
    return mcpu_to_cores(parse_cpu(value))


def format_cpu(mcpu: int) -> str:
    """Canonical quantity string for whole millicores: ``2000 -> "2"``, ``750 -> "750m"``."""
    if mcpu < 0:
        raise QuantityError(f"CPU millicores must be >= 0, got {mcpu}")
    if mcpu % MCPU_PER_CORE == 0:
        return str(mcpu // MCPU_PER_CORE)
    return f"{mcpu}m"


def mcpu_to_cores(mcpu: int) -> float:
    """Whole millicores as cores (``250 -> 0.25``)."""
    return mcpu / MCPU_PER_CORE


def cores_to_mcpu(cores: float) -> int:
    """Cores as whole millicores, rounded up as the apiserver does (``0.2501 -> 251``); values
    within 1e-6 millicores of an integer count as that integer (float noise)."""
    return math.ceil(cores * MCPU_PER_CORE - 1e-6)
