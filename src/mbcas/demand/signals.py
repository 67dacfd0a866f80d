"""The one bundle of kernel signals per pod: what sensing produces and the planner consumes.

:class:`Signals` holds one interval's signals for a list of pods as aligned float64 arrays, in
cores or fractions, NaN meaning unknown:

=====================  ===========================================================================
``usage``              CPU used per second of wall time (cores); NaN: no sample this interval
``throttled_ratio``    share of the interval's CFS periods in which the quota stopped the pod
``throttled_cores``    throttled time per second of wall time (the kernel's ``throttled_usec``)
``psi_some``           share of time some of the pod's runnable tasks waited for a CPU (PSI)
``psi_full``           share of time all of them waited (PSI ``full``, throttling included)
=====================  ===========================================================================

The agent's sampler (:func:`mbcas.cgroups.sampler.signal_arrays`), a replayed snapshot
(:mod:`mbcas.agent.snapshot`) and the simulated node (:mod:`mbcas.sim.node`) each produce one;
:func:`mbcas.demand.demand_bounds` and :class:`mbcas.policy.node.NodeInputs` take one. The
field names are written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "Signals", "check_nonnegative", "pod_array"]

FloatArray = npt.NDArray[np.float64]


def pod_array(values: npt.ArrayLike | None, n: int, fill: float, name: str = "signal") -> FloatArray:
    """``values`` as a float64 array of one value per pod: ``None`` gives ``fill`` everywhere, a
    scalar is broadcast, any other shape than ``(n,)`` is a ``ValueError`` naming ``name``."""
    if values is None:
        return np.full(n, fill)
    out = np.asarray(values, dtype=np.float64)
    if out.ndim == 0:
        return np.full(n, float(out))
    if out.shape != (n,):
        raise ValueError(f"{name} has shape {out.shape}, expected ({n},): one value per pod")
    return out


def check_nonnegative(name: str, values: FloatArray) -> None:
    """``ValueError`` naming ``name[i]`` for the first negative or infinite value (NaN is fine)."""
    bad = (values < 0) | np.isinf(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {float(values[i])!r} must be finite and >= 0 (or NaN)")


@dataclass(frozen=True, slots=True)
class Signals:
    """One interval's kernel signals per pod (see the module text); build it with :meth:`build`."""

    usage: FloatArray
    throttled_ratio: FloatArray
    throttled_cores: FloatArray
    psi_some: FloatArray
    psi_full: FloatArray

    @classmethod
    def build(
        cls,
        usage: npt.ArrayLike,
        *,
        throttled_ratio: npt.ArrayLike | None = None,
        throttled_cores: npt.ArrayLike | None = None,
        psi_some: npt.ArrayLike | None = None,
        psi_full: npt.ArrayLike | None = None,
        n: int | None = None,
    ) -> Signals:
        """Validate and normalise: one value per pod (``usage`` sets the count unless ``n`` is
        given; scalars broadcast, omitted signals are unknown).

        Raises:
            ValueError: an array of the wrong length, or a negative or infinite value (the message
                names the signal and the pod's index).
        """
        if n is None:
            n = int(np.asarray(usage).reshape(-1).shape[0]) if np.ndim(usage) else 1
        out = cls(
            usage=pod_array(usage, n, np.nan, "usage"),
            throttled_ratio=pod_array(throttled_ratio, n, np.nan, "throttled_ratio"),
            throttled_cores=pod_array(throttled_cores, n, np.nan, "throttled_cores"),
            psi_some=pod_array(psi_some, n, np.nan, "psi_some"),
            psi_full=pod_array(psi_full, n, np.nan, "psi_full"),
        )
        for f in fields(cls):
            check_nonnegative(f.name, getattr(out, f.name))
        return out

    @classmethod
    def unknown(cls, n: int) -> Signals:
        """``n`` pods with no signal at all (every array NaN)."""
        return cls(*(np.full(n, np.nan) for _ in fields(cls)))

    def __len__(self) -> int:
        return int(self.usage.shape[0])

    @property
    def sampled(self) -> npt.NDArray[np.bool_]:
        """Which pods have a sample this interval (finite ``usage``)."""
        return np.isfinite(self.usage)

    def take(self, index: npt.ArrayLike) -> Signals:
        """The signals of the pods at ``index`` (an index array or a boolean mask)."""
        idx = np.asarray(index)
        return Signals(*(getattr(self, f.name)[idx] for f in fields(self)))
