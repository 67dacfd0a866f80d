"""The shared vocabulary: one QoS enum with array codes, CPU quantities and unit conversions."""

from __future__ import annotations

import pytest

from mbcas.core.qos import QoSClass
from mbcas.core.units import (
    QuantityError,
    cores_to_mcpu,
    format_cpu,
    mcpu_to_cores,
    parse_cpu,
    parse_cpu_cores,
)


def test_qos_codes_round_trip_in_kubernetes_order() -> None:
    assert [q.code for q in QoSClass] == [0, 1, 2]
    assert [q.value for q in QoSClass] == ["Guaranteed", "Burstable", "BestEffort"]
    for qos in QoSClass:
        assert QoSClass.from_code(qos.code) is qos
    for bad in (-1, 3, True):
        with pytest.raises(ValueError, match="is not a QoS code"):
            QoSClass.from_code(bad)


def test_qos_parse_is_forgiving_but_names_a_bad_value() -> None:
    assert QoSClass.parse("burstable") is QoSClass.BURSTABLE
    assert QoSClass.parse("best_effort") is QoSClass.BEST_EFFORT
    assert QoSClass("Guaranteed") is QoSClass.GUARANTEED
    with pytest.raises(ValueError, match="unknown QoS class 'gold'"):
        QoSClass.parse("gold")


@pytest.mark.parametrize(
    ("text", "mcpu"),
    [("2", 2000), ("1.5", 1500), ("250m", 250), ("0.0001", 1), ("1k", 1_000_000), (0.25, 250), (3, 3000)],
)
def test_parse_cpu(text: str | float, mcpu: int) -> None:
    assert parse_cpu(text) == mcpu
    assert parse_cpu_cores(text) == pytest.approx(mcpu / 1000)


@pytest.mark.parametrize("bad", ["", "lots", "1e3m", "-1", "1..2", True, float("nan"), float("inf"), -0.5])
def test_parse_cpu_rejects_what_the_apiserver_rejects(bad: object) -> None:
    with pytest.raises(QuantityError):
        parse_cpu(bad)  # type: ignore[arg-type]


def test_format_and_convert() -> None:
    assert [format_cpu(v) for v in (0, 750, 2000, 2500)] == ["0", "750m", "2", "2500m"]
    with pytest.raises(QuantityError):
        format_cpu(-1)
    assert mcpu_to_cores(250) == 0.25
    assert cores_to_mcpu(0.25) == 250
    assert cores_to_mcpu(0.2501) == 251  # rounded up, as the apiserver does
    assert cores_to_mcpu(0.7 * 3) == 2100  # float noise is not a millicore
