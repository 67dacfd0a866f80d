"""Node snapshots: what ``mbcas agent --once --dry-run -o json`` emits and ``mbcas plan`` replays.

A snapshot is one node's facts and one interval's signals, as JSON (quantities as Kubernetes
strings; extra keys are allowed and ignored unless listed here)::

    {"node": "n1", "allocatable_cpu": "4", "reserve_cpu": "200m",
     "pods": [{"namespace": "shop", "name": "web-0", "uid": "...", "qos": "Burstable",
               "request_cpu": "250m", "limit_cpu": "500m",
               "usage_cores": 0.5, "throttled_ratio": 0.8, "psi_full": 0.4,
               # optional: "psi_some": 0.5, "throttled_cores": 0.3, "eligible": true,
               #           "floor_cpu": "300m"}]}

``usage_cores`` may be null (no sample: the pod is held), the other signals null when unknown;
``eligible`` (default true) carries the agent's opt-in/opt-out verdict; ``floor_cpu`` (default
null: the request) the smallest limit the controller's split accepts for the pod (containers it
leaves alone hold their limits). :func:`parse_snapshot`
validates everything and raises :class:`SnapshotError` naming the first bad field
(``pods[2].request_cpu: ...``). :func:`plan_result` renders a plan in the output shape::

    {"capacity_cpu": "3800m",
     "pods": [{"uid": "...", "managed": true, "allocation_cpu": "750m", "reason": "..."}]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mbcas.core.qos import QoSClass
from mbcas.core.units import QuantityError, format_cpu, mcpu_to_cores, parse_cpu
from mbcas.demand import Signals
from mbcas.policy.node import NodeInputs, NodePlan

__all__ = ["Snapshot", "SnapshotError", "parse_snapshot", "plan_result", "snapshot_pod"]

_QOS_NAMES = tuple(q.value for q in QoSClass)
_SIGNALS = ("usage_cores", "throttled_ratio", "psi_full", "psi_some", "throttled_cores")


class SnapshotError(ValueError):
    """A snapshot that cannot be replayed; the message names the field."""


@dataclass(frozen=True)
class Snapshot:
    node: str
    allocatable_cores: float
    reserve_cores: float
    inputs: NodeInputs
    names: tuple[tuple[str, str], ...]
    """(namespace, name) per pod, aligned to ``inputs.uids``."""


def _mcpu(value: Any, where: str, *, nullable: bool) -> int:
    """A CPU quantity string in millicores; -1 for a null one (when ``nullable``)."""
    if value is None:
        if nullable:
            return -1
        raise SnapshotError(f"{where}: required CPU quantity is missing")
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: CPU quantity must be a string like '250m', got {value!r}")
    try:
        return parse_cpu(value)
    except QuantityError as exc:
        raise SnapshotError(f"{where}: {exc}") from None


def _cores(mcpu: int) -> float:
    return math.nan if mcpu < 0 else mcpu_to_cores(mcpu)


def _number(value: Any, where: str, *, fraction: bool) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SnapshotError(f"{where}: must be a finite number >= 0 or null, got {value!r}")
    if fraction and value > 1:
        raise SnapshotError(f"{where}: must be a fraction in [0, 1], got {value!r}")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SnapshotError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def parse_snapshot(data: Any) -> Snapshot:
    """Validate a decoded snapshot (see module docs)."""
    if not isinstance(data, Mapping):
        raise SnapshotError(f"snapshot: must be a JSON object, got {type(data).__name__}")
    node = _str(data.get("node"), "node")
    allocatable = _cores(_mcpu(data.get("allocatable_cpu"), "allocatable_cpu", nullable=False))
    reserve = _cores(_mcpu(data.get("reserve_cpu", "0"), "reserve_cpu", nullable=False))
    pods = data.get("pods")
    if not isinstance(pods, Sequence) or isinstance(pods, str):
        raise SnapshotError(f"pods: must be a list, got {type(pods).__name__}")
    n = len(pods)
    uids: list[str] = []
    names: list[tuple[str, str]] = []
    qos = np.zeros(n, dtype=np.int8)
    eligible = np.ones(n, dtype=np.bool_)
    request = np.full(n, np.nan)
    limit_mcpu = np.full(n, -1, dtype=np.int64)
    floor = np.full(n, np.nan)
    signals = {name: np.full(n, np.nan) for name in _SIGNALS}
    seen: set[str] = set()
    for i, pod in enumerate(pods):
        at = f"pods[{i}]"
        if not isinstance(pod, Mapping):
            raise SnapshotError(f"{at}: must be an object")
        uid = _str(pod.get("uid"), f"{at}.uid")
        if uid in seen:
            raise SnapshotError(f"{at}.uid: duplicate pod UID {uid!r}")
        seen.add(uid)
        uids.append(uid)
        names.append((_str(pod.get("namespace"), f"{at}.namespace"), _str(pod.get("name"), f"{at}.name")))
        q = pod.get("qos")
        if q not in _QOS_NAMES:
            raise SnapshotError(f"{at}.qos: must be one of {', '.join(_QOS_NAMES)}, got {q!r}")
        qos[i] = QoSClass(q).code
        request[i] = _cores(_mcpu(pod.get("request_cpu"), f"{at}.request_cpu", nullable=True))
        limit_mcpu[i] = _mcpu(pod.get("limit_cpu"), f"{at}.limit_cpu", nullable=True)
        floor[i] = _cores(_mcpu(pod.get("floor_cpu"), f"{at}.floor_cpu", nullable=True))
        if "usage_cores" not in pod:
            raise SnapshotError(f"{at}.usage_cores: required (a number, or null for no sample)")
        for name in _SIGNALS:
            signals[name][i] = _number(pod.get(name), f"{at}.{name}", fraction=name in _FRACTIONS)
        flag = pod.get("eligible", True)
        if not isinstance(flag, bool):
            raise SnapshotError(f"{at}.eligible: must be true or false, got {flag!r}")
        eligible[i] = flag
    inputs = NodeInputs.build(
        uids,
        qos,
        eligible=eligible,
        request=request,
        limit_mcpu=limit_mcpu,
        floor=floor,
        signals=Signals.build(
            signals["usage_cores"],
            throttled_ratio=signals["throttled_ratio"],
            throttled_cores=signals["throttled_cores"],
            psi_some=signals["psi_some"],
            psi_full=signals["psi_full"],
            n=n,
        ),
    )
    return Snapshot(node, allocatable, reserve, inputs, tuple(names))


_FRACTIONS = frozenset({"throttled_ratio", "psi_full", "psi_some"})


def _opt(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def _opt_cpu(cores: float) -> str | None:
    return None if not math.isfinite(cores) else format_cpu(round(cores * 1000))


def snapshot_pod(inputs: NodeInputs, i: int, namespace: str, name: str) -> dict[str, Any]:
    """Pod ``i`` of ``inputs`` in snapshot form."""
    sig = inputs.signals
    return {
        "namespace": namespace,
        "name": name,
        "uid": inputs.uids[i],
        "qos": QoSClass.from_code(int(inputs.qos[i])).value,
        "request_cpu": _opt_cpu(float(inputs.request[i])),
        "limit_cpu": format_cpu(int(inputs.limit_mcpu[i])) if inputs.limit_mcpu[i] >= 0 else None,
        "usage_cores": _opt(float(sig.usage[i])),
        "throttled_ratio": _opt(float(sig.throttled_ratio[i])),
        "psi_full": _opt(float(sig.psi_full[i])),
        "psi_some": _opt(float(sig.psi_some[i])),
        "throttled_cores": _opt(float(sig.throttled_cores[i])),
        "eligible": bool(inputs.eligible[i]),
        "floor_cpu": _opt_cpu(float(inputs.floor[i])),
    }


def plan_result(plan: NodePlan) -> dict[str, Any]:
    """The replay output shape (see module docs)."""
    pods = []
    for i, uid in enumerate(plan.uids):
        mcpu = int(plan.allocation_mcpu[i])
        pods.append(
            {
                "uid": uid,
                "managed": bool(plan.managed[i]),
                "allocation_cpu": format_cpu(mcpu) if mcpu > 0 else None,
                "reason": plan.reason(i),
            }
        )
    out: dict[str, Any] = {"capacity_cpu": format_cpu(max(plan.capacity_mcpu, 0)), "pods": pods}
    if plan.infeasible:
        out["infeasible"] = plan.infeasible_message
    return out
