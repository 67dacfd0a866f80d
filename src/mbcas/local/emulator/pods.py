"""An admitted pod as the emulated kubelet sees it: what it remembers and the status it reports.

:class:`PodState` is what the emulated kubelet remembers about one pod it admitted: its
containers (:class:`ContainerState`: ID, requests, limits), the resources allocated to each
container and those actuated (reported as running), an in-progress or pending resize, the burner
demand it last applied, and its last status write. :func:`pod_status` is the status those facts
report, as a kubelet writes it: phase, IPs, QoS class, conditions (``PodResizePending`` with its
reason, ``PodResizeInProgress``), container statuses with ``resources`` and
``allocatedResources``, and init and sidecar container statuses. :func:`comparable_status` drops
what only moves with time, so a write is made only when something changed. All of it is pure.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass

from mbcas.local.podres import Json, Resources, qos_class

__all__ = ["ContainerState", "PodState", "comparable_status", "pod_status", "resources_block", "timestamp"]

_OUR_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodResizePending",
    "PodResizeInProgress",
)


def timestamp() -> str:
    """Now, as the API writes timestamps (RFC 3339, whole seconds, UTC)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """One container of an admitted pod: its ID and the resources allocated to it."""

    name: str
    container_id: str
    requests: Resources
    limits: Resources
    raw: Json  # the resources block as allocated, echoed into status
    started_at: str
    restart_count: int = 0


@dataclass
class PodState:
    """What the emulated kubelet remembers about one admitted pod."""

    uid: str
    key: str
    node: str
    pod_ip: str
    started_at: str
    containers: dict[str, ContainerState]
    allocated: dict[str, Json]  # container name -> resources block allocated
    actuated: dict[str, Json]  # container name -> resources block reported as running
    in_progress_generation: int | None = None
    in_progress_since: float = 0.0
    pending: tuple[str, str] | None = None  # (reason, message)
    pending_generation: int = 0
    demand: str | None = None
    done: bool = False
    failed: tuple[str, str] | None = None
    last_written: Json | None = None  # comparable form of our last status write
    last_written_rv: str = ""

    def allocated_requests(self) -> dict[str, Resources]:
        """The requests allocated to each container, by container name."""
        return {n: Resources.from_list(r.get("requests")) for n, r in self.allocated.items()}


def resources_block(container: Json) -> Json:
    """The CPU/memory part of a container's spec resources (what the kubelet reports)."""
    res = container.get("resources") or {}
    out: Json = {}
    for part in ("requests", "limits"):
        values = {k: v for k, v in (res.get(part) or {}).items() if k in ("cpu", "memory")}
        if values:
            out[part] = values
    return out


def pod_status(pod: Json, state: PodState) -> Json:
    """The status the kubelet reports for ``pod`` given what it remembers (``state``)."""
    status = dict(pod.get("status") or {})
    generation = int(pod["metadata"].get("generation") or 1)
    now = timestamp()
    old_conditions = {c["type"]: c for c in status.get("conditions") or []}

    def cond(ctype: str, value: str, reason: str | None = None, message: str | None = None) -> Json:
        old = old_conditions.get(ctype)
        out: Json = {"type": ctype, "status": value, "lastProbeTime": None}
        out["lastTransitionTime"] = (
            old["lastTransitionTime"]
            if old and old.get("status") == value and old.get("lastTransitionTime")
            else now
        )
        out["observedGeneration"] = generation
        if reason:
            out["reason"] = reason
        if message:
            out["message"] = message
        return out

    conditions = [c for t, c in old_conditions.items() if t not in _OUR_CONDITIONS]
    if "PodScheduled" not in old_conditions:
        conditions.append(cond("PodScheduled", "True"))
    status["qosClass"] = status.get("qosClass") or qos_class(pod)
    status["hostIP"] = "127.0.0.1"
    status["hostIPs"] = [{"ip": "127.0.0.1"}]
    status["observedGeneration"] = generation
    if state.failed is not None:
        status["phase"] = "Failed"
        status["reason"], status["message"] = state.failed
        status["conditions"] = conditions
        return status
    status["phase"] = "Running"
    status["startTime"] = state.started_at
    status["podIP"] = state.pod_ip
    status["podIPs"] = [{"ip": state.pod_ip}]
    conditions += [
        cond("PodReadyToStartContainers", "True"),
        cond("Initialized", "True"),
        cond("Ready", "True"),
        cond("ContainersReady", "True"),
    ]
    if state.pending is not None:
        conditions.append(cond("PodResizePending", "True", state.pending[0], state.pending[1]))
    if state.in_progress_generation is not None:
        conditions.append(cond("PodResizeInProgress", "True"))
    status["conditions"] = conditions
    statuses = []
    for spec_c in pod["spec"].get("containers") or []:
        c = state.containers.get(spec_c["name"])
        if c is None:
            continue
        statuses.append(
            {
                "name": c.name,
                "image": spec_c.get("image", ""),
                "imageID": f"emulated://{spec_c.get('image', '')}",
                "containerID": f"containerd://{c.container_id}",
                "ready": True,
                "started": True,
                "restartCount": c.restart_count,
                "state": {"running": {"startedAt": c.started_at}},
                "lastState": {},
                "resources": state.actuated.get(c.name, {}),
                "allocatedResources": dict(state.allocated.get(c.name, {}).get("requests") or {}),
            }
        )
    status["containerStatuses"] = statuses
    init_statuses = []
    completed = {
        "terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": state.started_at,
            "finishedAt": state.started_at,
        }
    }
    for spec_c in pod["spec"].get("initContainers") or []:
        sidecar = spec_c.get("restartPolicy") == "Always"  # runs beside the app containers
        init_statuses.append(
            {
                "name": spec_c["name"],
                "image": spec_c.get("image", ""),
                "imageID": f"emulated://{spec_c.get('image', '')}",
                "containerID": "containerd://"
                + hashlib.sha256((state.uid + spec_c["name"]).encode()).hexdigest(),
                "ready": True,
                "started": sidecar,
                "restartCount": 0,
                "state": {"running": {"startedAt": state.started_at}} if sidecar else completed,
                "lastState": {},
                **({"resources": resources_block(spec_c)} if sidecar else {}),
            }
        )
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def comparable_status(status: Json) -> Json:
    """A status without timestamps that only move, to decide whether a write is needed."""
    out = dict(status)
    out["conditions"] = sorted(
        ({k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
         for c in status.get("conditions") or []),
        key=lambda c: str(c.get("type")),
    )  # fmt: skip
    return out
