"""Kernel sensing: the only code in MBCAS that touches cgroup files.

Read the layout (:func:`detect_layout`), find pod cgroups (:class:`PodCgroupResolver`), read their
counters (:class:`CgroupReader`) and turn two reads into per-pod signals (:class:`Sampler`,
:class:`SignalDelta`; :func:`signal_arrays` aligns them into the :class:`mbcas.demand.Signals`
bundle). :func:`limits_equal` compares CPU limits within the kernel's and systemd's rounding.
See ``docs/sensing.md`` for the files read on each layout and the failure rules.
"""

from mbcas.cgroups.errors import CgroupError, CgroupParseError, ErrorKind
from mbcas.cgroups.layout import DEFAULT_ROOT, Layout, LayoutKind, detect_layout
from mbcas.cgroups.limits import SYSTEMD_QUOTA_STEP_CORES, limits_equal, quota_for_cores
from mbcas.cgroups.parse import (
    CpuMax,
    CpuStatV1,
    CpuStatV2,
    Pressure,
    parse_cfs_quota,
    parse_counter,
    parse_cpu_max,
    parse_cpu_stat_v1,
    parse_cpu_stat_v2,
    parse_pressure,
)
from mbcas.cgroups.paths import (
    CgroupDriver,
    ContainerRuntime,
    PodCgroup,
    PodCgroupResolver,
    container_relpath,
    parse_pod_dirname,
    pod_relpath,
    split_container_id,
)
from mbcas.cgroups.reader import CgroupReader, CpuSnapshot, check_relpath, read_file_raw
from mbcas.cgroups.sampler import (
    Sampler,
    SampleResult,
    SenseError,
    SignalDelta,
    limit_array,
    signal_arrays,
)

__all__ = [
    "DEFAULT_ROOT",
    "SYSTEMD_QUOTA_STEP_CORES",
    "CgroupDriver",
    "CgroupError",
    "CgroupParseError",
    "CgroupReader",
    "ContainerRuntime",
    "CpuMax",
    "CpuSnapshot",
    "CpuStatV1",
    "CpuStatV2",
    "ErrorKind",
    "Layout",
    "LayoutKind",
    "PodCgroup",
    "PodCgroupResolver",
    "Pressure",
    "SampleResult",
    "Sampler",
    "SenseError",
    "SignalDelta",
    "check_relpath",
    "container_relpath",
    "detect_layout",
    "limit_array",
    "limits_equal",
    "parse_cfs_quota",
    "parse_counter",
    "parse_cpu_max",
    "parse_cpu_stat_v1",
    "parse_cpu_stat_v2",
    "parse_pod_dirname",
    "parse_pressure",
    "pod_relpath",
    "quota_for_cores",
    "read_file_raw",
    "signal_arrays",
    "split_container_id",
]
