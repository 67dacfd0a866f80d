"""The demand model: throttling and PSI traces, no double counting, unknowns, invariants."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from mbcas.demand import DemandConfig, DemandEstimate, Signals, estimate_demand

NAN, INF = math.nan, math.inf


def _estimate(
    usage: npt.ArrayLike,
    throttled_ratio: npt.ArrayLike | None = None,
    psi_full: npt.ArrayLike | None = None,
    psi_some: npt.ArrayLike | None = None,
    limit_cores: npt.ArrayLike | None = None,
    *,
    throttled_cores: npt.ArrayLike | None = None,
    config: DemandConfig | None = None,
) -> DemandEstimate:
    """The signals in the order of the model's text, bundled as the estimator takes them."""
    signals = Signals.build(
        usage,
        throttled_ratio=throttled_ratio,
        throttled_cores=throttled_cores,
        psi_some=psi_some,
        psi_full=psi_full,
    )
    return estimate_demand(signals, limit_cores, config=config)


def test_pure_throttling_trace_single_thread() -> None:
    # This machine measured: a busy loop under a 0.2-core quota: usage 0.2, throttled ≈ 0.8 s/s,
    # and PSI full ≈ 0.8 in the same cgroup. Its true demand is 1 core.
    est = _estimate([0.2], [0.98], [0.8], [0.8], [0.2], throttled_cores=[0.8])
    assert est.cores[0] == pytest.approx(1.0)
    assert est.normalised[0] == 1.0


def test_throttling_and_psi_full_are_not_counted_twice() -> None:
    both = _estimate([0.2], [0.98], [0.8], [0.8], [0.2], throttled_cores=[0.8]).cores[0]
    throttle_only = _estimate([0.2], [0.98], [NAN], [NAN], [0.2], throttled_cores=[0.8]).cores[0]
    psi_only = _estimate([0.2], [NAN], [0.8], [0.8], [0.2]).cores[0]
    assert both == pytest.approx(throttle_only) == pytest.approx(psi_only)
    assert both < throttle_only + (psi_only - 0.2)  # never the sum of the two extra terms


def test_pure_throttling_trace_multi_thread() -> None:
    # 4 busy threads under a 1-core quota on a 4-CPU node: throttled 3 cores' worth, full 0.75.
    est = _estimate([1.0], [1.0], [0.75], [0.75], [1.0], throttled_cores=[3.0])
    assert est.cores[0] == pytest.approx(4.0)


def test_pure_contention_trace() -> None:
    # No quota: one busy thread sharing a CPU with another pod gets half of it; full = some = 0.5.
    est = _estimate([0.5], [0.0], [0.5], [0.5], [INF], throttled_cores=[0.0])
    assert est.cores[0] == pytest.approx(1.0)
    assert est.normalised[0] == 0.0  # no limit to be relative to
    # Two threads, one waiting while the other runs (some > full): at least that much more.
    est2 = _estimate([1.0], [0.0], [0.0], [0.4], [2.0], throttled_cores=[0.0])
    assert est2.cores[0] == pytest.approx(1.4)
    assert est2.normalised[0] == pytest.approx(0.7)


def test_idle_and_unstalled_pods_demand_their_usage() -> None:
    est = _estimate([0.0, 0.3], [0.0, 0.0], [0.0, 0.005], [0.0, 0.008], [1.0, 1.0], throttled_cores=[0, 0])
    np.testing.assert_allclose(est.cores, [0.0, 0.3])  # PSI below the noise floor is ignored


def test_unknown_psi_is_not_zero_stall_and_uses_throttling() -> None:
    est = _estimate([0.2, 0.2], [0.5, NAN], [NAN, NAN], [NAN, NAN], [0.2, 0.2], throttled_cores=[0.8, NAN])
    assert est.cores[0] == pytest.approx(1.0)
    assert est.cores[1] == pytest.approx(0.2)


def test_some_without_full_line() -> None:
    est = _estimate([0.5], [NAN], [NAN], [0.3], [INF])
    assert est.cores[0] == pytest.approx(0.8)


def test_throttled_ratio_fallback_when_time_is_unknown() -> None:
    est = _estimate([0.5], [0.6], [NAN], [NAN], [0.5])
    assert est.cores[0] == pytest.approx(0.5 + 0.5 * 0.6 * 0.5)
    cfg = DemandConfig(throttle_ratio_boost=0.0)
    assert _estimate([0.5], [0.6], None, None, [0.5], config=cfg).cores[0] == pytest.approx(0.5)


def test_stall_cap_bounds_the_psi_extrapolation() -> None:
    est = _estimate([0.1], [NAN], [1.0], [1.0], [0.1])
    assert est.cores[0] == pytest.approx(0.1 / 0.05)
    cfg = DemandConfig(max_stall=0.5)
    assert _estimate([0.1], None, [1.0], [1.0], [0.1], config=cfg).cores[0] == pytest.approx(0.2)


def test_unknown_usage_gives_unknown_demand() -> None:
    est = _estimate([NAN, 1.0], [0, 0], [0, 0], [0, 0], [1.0, 1.0])
    assert math.isnan(est.cores[0]) and math.isnan(est.normalised[0])
    assert est.cores[1] == 1.0


def test_scalars_none_and_missing_limits_broadcast() -> None:
    est = _estimate(0.5)
    assert est.cores.shape == (1,) and est.cores[0] == 0.5 and est.normalised[0] == 0.0
    est = _estimate([0.5, 0.5], limit_cores=[NAN, 0.0])
    np.testing.assert_array_equal(est.normalised, [0.0, 0.0])  # NaN / non-positive limit = none


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        _estimate([0.5, 0.5], [0.1, 0.2, 0.3])


def test_config_is_validated_and_frozen() -> None:
    with pytest.raises(ValidationError):
        DemandConfig(max_stall=1.0)
    with pytest.raises(ValidationError):
        DemandConfig(tau_up_s=-1)
    with pytest.raises(ValidationError):
        DemandConfig(unknown_knob=1)  # type: ignore[call-arg]
    cfg = DemandConfig()
    with pytest.raises(ValidationError):
        cfg.tau_up_s = 3.0


_frac = st.one_of(st.floats(0, 1), st.just(NAN))
_n = 12


def _signals(elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, _n, elements=elements)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "usage": _signals(st.floats(0, 64)),
            "ratio": _signals(_frac),
            "full": _signals(_frac),
            "some": _signals(_frac),
            "limit": _signals(st.one_of(st.floats(0.01, 64), st.just(INF))),
            "thr": _signals(st.one_of(st.floats(0, 64), st.just(NAN))),
        }
    )
)
def test_invariants(signals: dict[str, np.ndarray]) -> None:
    usage, ratio, full, some, limit, thr = (
        signals[k] for k in ("usage", "ratio", "full", "some", "limit", "thr")
    )
    est = _estimate(usage, ratio, full, some, limit, throttled_cores=thr)
    assert np.isfinite(est.cores).all()
    assert (est.cores >= usage - 1e-12).all()
    assert ((est.normalised >= 0) & (est.normalised <= 1)).all()
    # More waiting tasks, or more throttled time, never mean less demand.
    more_some = _estimate(
        usage, ratio, full, np.fmin(np.nan_to_num(some) + 0.1, 1), limit, throttled_cores=thr
    )
    assert (more_some.cores >= est.cores - 1e-9).all()
    more_thr = _estimate(usage, ratio, full, some, limit, throttled_cores=thr + 0.1)
    assert (more_thr.cores >= est.cores - 1e-9).all()
    # With every stall a full stall (single-threaded pods), more stall means more demand.
    lo = _estimate(usage, ratio, full, full, limit, throttled_cores=thr)
    up = np.fmin(np.nan_to_num(full) + 0.1, 1)
    hi = _estimate(usage, ratio, up, up, limit, throttled_cores=thr)
    assert (hi.cores >= lo.cores - 1e-9).all()
