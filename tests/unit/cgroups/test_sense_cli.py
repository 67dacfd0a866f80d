"""``mbcas sense`` on fake trees: output keys, unknowns as null, and clear errors for bad input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS

from mbcas.cgroups import LayoutKind
from mbcas.cli import sense as sense_cli
from mbcas.cli.main import main

POD = "kubepods/burstable/podx"
KEYS = {"usage_cores", "throttled_ratio", "psi_some", "psi_full", "demand_lower_cores", "demand_upper_cores"}


def _advance_between_reads(
    monkeypatch: pytest.MonkeyPatch, fs: FakeCgroupFS, delay_s: float, **counters: int
) -> None:
    """Advance the counters a third of the way into the CLI's wait between its two reads (a
    writer thread started before ``main`` raced the command's own imports under load)."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        real_sleep(delay_s)
        fs.write(POD, **counters)
        real_sleep(max(seconds - delay_s, 0.0))

    monkeypatch.setattr(sense_cli.time, "sleep", sleep)


def test_json_output_has_the_keys_and_real_rates(
    fakefs: FakeCgroupFS, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fakefs.write(POD, usage_usec=0, nr_periods=0, some_usec=0, full_usec=0, quota_usec=50_000)
    _advance_between_reads(
        monkeypatch, fakefs, 0.1, usage_usec=150_000, nr_periods=6, nr_throttled=3, throttled_usec=90_000,
        some_usec=90_000, full_usec=60_000, quota_usec=50_000,
    )  # fmt: skip
    code = main(["sense", "--root", str(fakefs.root), "--cgroup", POD, "--interval", "0.3", "-o", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report.keys() >= KEYS
    assert report["usage_cores"] == pytest.approx(0.5, rel=0.15)
    assert report["throttled_ratio"] == pytest.approx(0.5)
    assert report["limit_cores"] == pytest.approx(0.5)
    # Throttled in half the periods: under pressure, demand between usage and usage + throttled.
    assert report["demand_lower_cores"] == pytest.approx(report["usage_cores"])
    assert report["demand_upper_cores"] == pytest.approx(report["usage_cores"] + report["throttled_cores"])
    assert report["under_pressure"] is True
    if fakefs.kind is LayoutKind.V1:
        assert report["psi_some"] is None and report["psi_full"] is None  # unknown is null, not 0
    else:
        assert report["psi_some"] == pytest.approx(0.3, rel=0.15)
        assert report["psi_full"] == pytest.approx(0.2, rel=0.15)


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    fs.write(POD, some_usec=None)
    assert main(["sense", "--root", str(fs.root), "--cgroup", "/" + POD, "--interval", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "usage_cores" in out and re.search(r"psi_full +unknown", out) and "unlimited" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cgroup", "kubepods/nope"], "no cgroup 'kubepods/nope'"),
        (["--cgroup", "../../etc"], "must not contain '..'"),
        (["--cgroup", POD, "--interval", "0"], "--interval must be a positive"),
        (["--cgroup", POD, "--interval", "nan"], "--interval must be a positive"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.HYBRID)
    fs.write(POD)
    assert main(["sense", "--root", str(fs.root), *args]) != 0
    assert message in capsys.readouterr().err


def test_bad_root_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sense", "--root", str(tmp_path / "none"), "--cgroup", "x"]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_malformed_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    fs.write(POD)
    (tmp_path / POD / "cpu.stat").write_text("usage_usec soon\n")
    assert main(["sense", "--root", str(fs.root), "--cgroup", POD, "--interval", "0.01"]) == 1
    assert "usage_usec is not a non-negative integer" in capsys.readouterr().err
