"""Node snapshots (the shape documented in docs/agent.md) and ``mbcas plan --input`` end to end."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mbcas.agent.snapshot import SnapshotError, parse_snapshot, plan_result, snapshot_pod
from mbcas.cli.main import main
from mbcas.core.qos import QoSClass
from mbcas.core.units import parse_cpu
from mbcas.policy.node import replay
from mbcas.policy.node_config import NodePolicy

DOC = Path(__file__).resolve().parents[3] / "docs" / "agent.md"


def _doc_snapshot() -> dict[str, Any]:
    """The first JSON block of the "Snapshots" section of docs/agent.md."""
    section = DOC.read_text().split("### Snapshots", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "docs/agent.md lost its snapshot example"
    data: dict[str, Any] = json.loads(block.group(1))
    return data


def _pod(i: int, **fields: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "namespace": "shop",
        "name": f"p{i}",
        "uid": f"uid-{i:04d}-aaaa",
        "qos": "Burstable",
        "request_cpu": "100m",
        "limit_cpu": "500m",
        "usage_cores": 0.1,
        "throttled_ratio": 0.0,
        "psi_full": 0.0,
    }
    pod.update(fields)
    return pod


def _snapshot(*pods: dict[str, Any]) -> dict[str, Any]:
    return {"node": "n1", "allocatable_cpu": "2", "reserve_cpu": "200m", "pods": list(pods)}


# ---------------------------------------------------------------------------- parsing


def test_the_documented_snapshot_parses() -> None:
    data = _doc_snapshot()
    snap = parse_snapshot(data)
    assert snap.node == "n1"
    assert (snap.allocatable_cores, snap.reserve_cores) == (4.0, 0.2)
    assert snap.names == (("shop", "web-0"), ("shop", "batch-0"))
    inp = snap.inputs
    assert inp.uids == tuple(p["uid"] for p in data["pods"])
    assert (inp.qos == QoSClass.BURSTABLE.code).all()
    assert inp.request.tolist() == [0.25, 0.1]
    assert inp.limit.tolist() == [0.5, 1.0]
    assert inp.signals.usage.tolist() == [0.5, 0.05]
    assert inp.signals.throttled_ratio.tolist() == [0.8, 0.0]
    assert inp.signals.psi_full.tolist() == [0.4, 0.0]
    assert inp.signals.psi_some[0] == 0.5 and math.isnan(inp.signals.psi_some[1])  # absent: unknown
    assert inp.signals.throttled_cores[0] == 0.3 and math.isnan(inp.signals.throttled_cores[1])
    assert inp.eligible.tolist() == [True, True]


def test_snapshot_round_trips_through_snapshot_pod() -> None:
    snap = parse_snapshot(_doc_snapshot())
    again = parse_snapshot(
        {
            "node": snap.node,
            "allocatable_cpu": "4",
            "reserve_cpu": "200m",
            "pods": [snapshot_pod(snap.inputs, i, ns, name) for i, (ns, name) in enumerate(snap.names)],
        }
    )
    for field in ("request", "limit", "usage", "throttled_ratio", "psi_full", "psi_some", "throttled_cores"):
        old, new = (s.inputs if field in ("request", "limit") else s.inputs.signals for s in (snap, again))
        assert getattr(new, field).tolist() == pytest.approx(getattr(old, field).tolist(), nan_ok=True), field
    assert again.names == snap.names and again.inputs.uids == snap.inputs.uids


def test_nulls_and_defaults() -> None:
    snap = parse_snapshot(
        {
            "node": "n1",
            "allocatable_cpu": "1500m",  # reserve_cpu absent: 0
            "pods": [
                _pod(0, request_cpu=None, limit_cpu=None, qos="BestEffort", usage_cores=None, eligible=False)
            ],
        }
    )
    assert snap.reserve_cores == 0.0 and snap.allocatable_cores == 1.5
    inp = snap.inputs
    assert math.isnan(inp.request[0]) and math.isnan(inp.limit[0]) and math.isnan(inp.signals.usage[0])
    assert not inp.eligible[0]


def _broken(path: str, value: Any) -> dict[str, Any]:
    data = _snapshot(_pod(0), _pod(1), _pod(2))
    target: Any = data
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del target[key]
    else:
        target[key] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("pods[2].request_cpu", "lots", r"^pods\[2\]\.request_cpu: malformed CPU quantity 'lots'"),
        ("pods[2].request_cpu", 0.25, r"^pods\[2\]\.request_cpu: CPU quantity must be a string"),
        ("pods[1].limit_cpu", "-1", r"^pods\[1\]\.limit_cpu: "),
        ("pods[0].usage_cores", _DELETE, r"^pods\[0\]\.usage_cores: required"),
        ("pods[0].usage_cores", -0.1, r"^pods\[0\]\.usage_cores: must be a finite number >= 0"),
        ("pods[0].usage_cores", "0.5", r"^pods\[0\]\.usage_cores: must be a finite number"),
        ("pods[0].usage_cores", True, r"^pods\[0\]\.usage_cores: "),
        ("pods[1].throttled_ratio", 1.5, r"^pods\[1\]\.throttled_ratio: must be a fraction in \[0, 1\]"),
        ("pods[1].psi_full", 2, r"^pods\[1\]\.psi_full: must be a fraction"),
        ("pods[1].psi_some", -1, r"^pods\[1\]\.psi_some: "),
        ("pods[1].throttled_cores", -1, r"^pods\[1\]\.throttled_cores: "),
        ("pods[2].qos", "Gold", r"^pods\[2\]\.qos: must be one of Guaranteed, Burstable, BestEffort"),
        ("pods[2].uid", "", r"^pods\[2\]\.uid: must be a non-empty string"),
        ("pods[2].uid", "uid-0000-aaaa", r"^pods\[2\]\.uid: duplicate pod UID"),
        ("pods[1].namespace", None, r"^pods\[1\]\.namespace: "),
        ("pods[1].name", 7, r"^pods\[1\]\.name: "),
        ("pods[1].eligible", "yes", r"^pods\[1\]\.eligible: must be true or false"),
        ("pods[1]", "a pod", r"^pods\[1\]: must be an object"),
        ("node", "", r"^node: must be a non-empty string"),
        ("allocatable_cpu", _DELETE, r"^allocatable_cpu: required CPU quantity is missing"),
        ("allocatable_cpu", "4 cores", r"^allocatable_cpu: malformed"),
        ("reserve_cpu", None, r"^reserve_cpu: required"),
        ("pods", {"a": 1}, r"^pods: must be a list"),
        ("pods", "abc", r"^pods: must be a list"),
    ],
)
def test_bad_snapshots_name_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        parse_snapshot(_broken(path, value))


def test_not_an_object() -> None:
    with pytest.raises(SnapshotError, match="snapshot: must be a JSON object"):
        parse_snapshot([1, 2])


# ---------------------------------------------------------------------------- mbcas plan


def _plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "-o" in argv else out), err


def test_plan_json_output_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _doc_snapshot()
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(data))
    code, out, err = _plan_json(capsys, "--input", str(path), "-o", "json")
    assert code == 0, err
    assert set(out) == {"capacity_cpu", "pods"}
    assert out["capacity_cpu"] == "3800m"  # 4 cores − 200m reserve, every pod managed
    assert [p["uid"] for p in out["pods"]] == [p["uid"] for p in data["pods"]]
    for pod in out["pods"]:
        assert set(pod) == {"uid", "managed", "allocation_cpu", "reason"}
        assert pod["managed"] is True and isinstance(pod["reason"], str) and pod["reason"]
    web, batch = (parse_cpu(p["allocation_cpu"]) for p in out["pods"])
    assert web + batch <= 3800
    # The throttled, stalled web pod gets more than it uses, the idle batch pod at least its floor.
    assert web > 500 and batch >= 100
    # The same decision as the library call (the CLI adds nothing of its own).
    snap = parse_snapshot(data)
    assert out == plan_result(replay(NodePolicy(), snap.allocatable_cores, snap.reserve_cores, snap.inputs))


def test_plan_table_and_policy_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(_doc_snapshot()))
    code, out, _ = _plan_json(capsys, "--input", str(path))
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["POD", "REQUEST", "USAGE"]
    assert "shop/web-0" in out and "shop/batch-0" in out
    assert "shareable 3800m for managed pods" in out and "2x bound 7.60 cores" in out
    code, capped, _ = _plan_json(capsys, "--input", str(path), "-o", "json", "--max-cpu", "600m")
    assert code == 0
    assert all(parse_cpu(p["allocation_cpu"]) <= 600 for p in capped["pods"])
    code, strict, _ = _plan_json(capsys, "--input", str(path), "--limit-overcommit", "1")
    assert code == 0 and "1x bound 3.80 cores" in strict


def test_plan_guaranteed_and_ineligible_pods_are_not_managed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = _snapshot(
        _pod(0, usage_cores=0.9, throttled_ratio=0.9, psi_full=0.5),
        _pod(1, qos="Guaranteed", request_cpu="500m", limit_cpu="500m"),
        _pod(2, eligible=False),
    )
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap))
    code, out, err = _plan_json(capsys, "--input", str(path), "-o", "json")
    assert code == 0, err
    assert [p["managed"] for p in out["pods"]] == [True, False, False]
    # Capacity left for the managed pod: 2 − 0.2 − 0.5 (Guaranteed limit) − 0.1 (opted-out usage).
    assert out["capacity_cpu"] == "1200m"
    assert parse_cpu(out["pods"][0]["allocation_cpu"]) > 500


def test_plan_bad_input_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _broken("pods[2].request_cpu", "lots")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = _plan_json(capsys, "--input", str(path), "-o", "json")
    assert code == 2
    assert "pods[2].request_cpu" in err and "lots" in err
    path.write_text("{not json")
    code, _, err = _plan_json(capsys, "--input", str(path))
    assert code == 2 and "is not JSON" in err
    code, _, err = _plan_json(capsys, "--input", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    path.write_text(json.dumps(_doc_snapshot()))
    code, _, err = _plan_json(capsys, "--input", str(path), "--max-cpu", "lots")
    assert code == 2 and "max_cpu" in err


def test_plan_as_a_subprocess_reads_stdin(tmp_path: Path) -> None:
    data = copy.deepcopy(_doc_snapshot())
    out = subprocess.run(
        [sys.executable, "-m", "mbcas", "plan", "--input", "-", "-o", "json"],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["capacity_cpu"] == "3800m"
    assert [p["uid"] for p in result["pods"]] == [p["uid"] for p in data["pods"]]


def test_a_pods_floor_round_trips_and_bounds_its_limit() -> None:
    # Issue 14 item 1: containers the controller leaves alone hold their limits, so a pod's limit
    # has a floor above its request; a replay must respect it like the agent does.
    data = _snapshot(_pod(0, request_cpu="250m", limit_cpu="1500m", usage_cores=0.05, floor_cpu="1200m"))
    snap = parse_snapshot(data)
    assert snap.inputs.floor.tolist() == [1.2]
    assert snapshot_pod(snap.inputs, 0, "shop", "p0")["floor_cpu"] == "1200m"
    plan = replay(NodePolicy(), snap.allocatable_cores, snap.reserve_cores, snap.inputs)
    assert plan.allocation_mcpu[0] >= 1200, plan.allocation_mcpu[0]
    with pytest.raises(SnapshotError, match=r"pods\[0\]\.floor_cpu"):
        parse_snapshot(_snapshot(_pod(0, floor_cpu="lots")))
