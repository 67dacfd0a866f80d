"""Layout detection on fake trees of every kind, including co-mounted v1 controllers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS

from mbcas.cgroups import CgroupError, ErrorKind, LayoutKind, detect_layout


def test_pure_v2_with_cpu_controller(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    layout = detect_layout(fs.root)
    assert layout.kind is LayoutKind.V2
    assert layout.v2_dir == str(tmp_path) and layout.base_dir == str(tmp_path)
    assert layout.cpu_dir is None and layout.cpuacct_dir is None
    assert layout.v2_cpu_controller


def test_pure_v2_without_cpu_controller(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2, v2_cpu=False)
    assert not detect_layout(fs.root).v2_cpu_controller


def test_hybrid(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.HYBRID)
    layout = detect_layout(fs.root)
    assert layout.kind is LayoutKind.HYBRID
    assert layout.v2_dir == str(tmp_path / "unified")
    assert layout.cpu_dir == str(tmp_path / "cpu") and layout.cpuacct_dir == str(tmp_path / "cpuacct")
    assert layout.base_dir == layout.v2_dir
    assert "hybrid" in layout.describe() and "without cpu controller" in layout.describe()


def test_v1_split_mounts(tmp_path: Path) -> None:
    layout = detect_layout(FakeCgroupFS(tmp_path, LayoutKind.V1).root)
    assert layout.kind is LayoutKind.V1 and layout.v2_dir is None
    assert layout.base_dir == str(tmp_path / "cpu")


def test_v1_comounted_cpu_cpuacct(tmp_path: Path) -> None:
    layout = detect_layout(FakeCgroupFS(tmp_path, LayoutKind.V1, v1_comounted=True).root)
    assert layout.kind is LayoutKind.V1
    assert Path(layout.cpu_dir or "").resolve() == (tmp_path / "cpu,cpuacct").resolve()
    assert Path(layout.cpuacct_dir or "").resolve() == (tmp_path / "cpu,cpuacct").resolve()


def test_v1_only_comounted_directory_without_symlinks(tmp_path: Path) -> None:
    both = tmp_path / "cpu,cpuacct"
    both.mkdir()
    (both / "cpu.cfs_quota_us").write_text("-1\n")
    (both / "cpuacct.usage").write_text("0\n")
    layout = detect_layout(tmp_path)
    assert layout.cpu_dir == str(both) and layout.cpuacct_dir == str(both)


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup hierarchy found") as info:
        detect_layout(tmp_path)
    assert info.value.kind is ErrorKind.NOT_FOUND


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="not a directory"):
        detect_layout(tmp_path / "absent")


def test_this_machine_if_it_has_cgroups() -> None:
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no /sys/fs/cgroup on this machine")
    layout = detect_layout()
    assert Path(layout.base_dir).is_dir()
