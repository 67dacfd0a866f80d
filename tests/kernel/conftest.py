"""Fixtures for real-kernel tests: sandboxes of real cgroups, removed even when a test fails.

Every test here is marked ``kernel``; the fixtures skip (with the reason) where cgroups cannot be
created, e.g. without root or without a writable cgroup hierarchy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cgroup_helpers import CgroupSandbox, CgroupUnavailableError, TestCgroup


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture
def cgroup_sandbox() -> Iterator[CgroupSandbox]:
    """A :class:`CgroupSandbox` under a unique prefix; everything in it is removed afterwards."""
    try:
        sandbox = CgroupSandbox()
    except CgroupUnavailableError as exc:
        pytest.skip(f"cannot create cgroups here: {exc}")
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def real_cgroup(cgroup_sandbox: CgroupSandbox) -> TestCgroup:
    """One real, empty cgroup in every CPU hierarchy (``.relpath``, ``.spawn_burner``, ``.set_quota``)."""
    return cgroup_sandbox.create("cg")


@pytest.fixture
def limited_cgroup(cgroup_sandbox: CgroupSandbox) -> TestCgroup:
    """Like ``real_cgroup``, but skips where no CPU controller can enforce a quota."""
    if not cgroup_sandbox.can_limit:
        pytest.skip("no CPU controller (v1 cpu or v2 cpu) to enforce quotas on this machine")
    return cgroup_sandbox.create("limited")
