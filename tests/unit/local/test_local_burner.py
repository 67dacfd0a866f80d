"""Demand patterns of the emulator's CPU burner: parsing, schedules, loops and bad input."""

from __future__ import annotations

import pytest

from mbcas.local.burner import DemandPattern, PatternError


def test_a_plain_number_is_a_constant_demand() -> None:
    pattern = DemandPattern.parse("0.25")
    assert [pattern.cores_at(t) for t in (0, 10, 1e6)] == [0.25, 0.25, 0.25]


def test_empty_text_means_idle() -> None:
    assert DemandPattern.parse("  ").cores_at(5) == 0.0


def test_schedule_steps_hold_until_the_next_step() -> None:
    pattern = DemandPattern.parse("0:0.1, 30:0.9, 45:0")
    assert pattern.cores_at(0) == 0.1
    assert pattern.cores_at(29.9) == 0.1
    assert pattern.cores_at(30) == 0.9
    assert pattern.cores_at(44) == 0.9
    assert pattern.cores_at(1000) == 0.0
    assert pattern.peak == 0.9


def test_loop_restarts_the_schedule() -> None:
    pattern = DemandPattern.parse("0:0.2,10:1.5,20:loop")
    assert pattern.loop_at == 20
    assert pattern.cores_at(5) == 0.2
    assert pattern.cores_at(15) == 1.5
    assert pattern.cores_at(25) == 0.2
    assert pattern.cores_at(35) == 1.5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("abc", "not a number of cores"),
        ("-1", "between 0"),
        ("nan", "between 0"),
        ("1000", "between 0"),
        ("5:0.1", "start at second 0"),
        ("0:0.1,0:0.2", "increasing"),
        ("0:0.1,x:0.2", "not a number of seconds"),
        ("0:0.1,10", "SECONDS:CORES"),
        ("0:0.1,10:loop,20:0.5", "last step"),
        ("0:loop", "start at second 0"),
    ],
)
def test_bad_patterns_are_rejected_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(PatternError, match=fragment):
        DemandPattern.parse(text)
