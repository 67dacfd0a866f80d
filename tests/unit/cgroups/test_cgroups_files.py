"""Files kept open between reads (``pread`` from offset 0) and the cgroup-mount check."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS

from mbcas.cgroups import CgroupReader, LayoutKind
from mbcas.cgroups.files import OpenFiles, on_cgroupfs

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
40 22 0:27 / /host/sys\\040fs rw - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/sys/fs/cgroup/unified/kubepods", True),
        ("/sys/fs/cgroup/cpu,cpuacct", True),
        ("/sys/fs/cgroup", False),  # the tmpfs that holds the v1 mounts
        ("/sys/fs/cgroupx", False),
        ("/host/sys fs/kubepods.slice", True),  # an escaped mount point (a space)
        ("/tmp/fake", False),
    ],
)
def test_on_cgroupfs_takes_the_deepest_mount(tmp_path: Path, path: str, expected: bool) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert on_cgroupfs(path, mountinfo=str(info)) is expected
    assert on_cgroupfs(path, mountinfo=str(tmp_path / "absent")) is False


def test_open_files_read_the_current_content_and_release_by_directory(tmp_path: Path) -> None:
    a, b = tmp_path / "pod1" / "cpu.stat", tmp_path / "pod2" / "cpu.stat"
    for f in (a, b):
        f.parent.mkdir()
        f.write_text("usage_usec 1\n")
    files = OpenFiles(max_open=8)
    assert files.read(str(a)) == b"usage_usec 1\n" and len(files) == 1
    a.write_text("usage_usec 22\n")  # rewritten in place, as the kernel regenerates a file
    assert files.read(str(a)) == b"usage_usec 22\n" and len(files) == 1
    files.read(str(b))
    files.release(str(tmp_path / "pod"))  # a prefix that is not a directory of them: nothing
    assert len(files) == 2
    files.release(str(tmp_path / "pod1"))
    assert len(files) == 1
    with pytest.raises(FileNotFoundError):
        files.read(str(tmp_path / "pod3" / "cpu.stat"))
    files.close()
    assert len(files) == 0


def test_past_max_open_files_are_read_the_ordinary_way(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}" for i in range(3)]
    for i, p in enumerate(paths):
        p.write_text(str(i))
    files = OpenFiles(max_open=2)
    assert [files.read(str(p)) for p in paths] == [b"0", b"1", b"2"]
    assert len(files) == 2


def test_a_reader_keeps_files_open_only_on_a_cgroup_mount_or_when_asked(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path / "cgroup", LayoutKind.V2)
    fs.write("pod", usage_usec=100, quota_usec=50_000)
    assert not CgroupReader(fs.root).keeps_open  # a fake tree: ordinary reads
    reader = CgroupReader(fs.root, keep_open=True)
    assert reader.read("pod").usage_usec == 100
    fs.write("pod", usage_usec=300, quota_usec=50_000)
    snap = reader.read("pod", with_limit=False)
    assert snap.usage_usec == 300 and snap.limit_cores is None
    assert reader.read("pod").limit_cores == pytest.approx(0.5)
    reader.release("pod")
    reader.close()
    assert reader.read("pod").usage_usec == 300  # reopened after close
