"""``mbcas list|usage|allocations|resize|check``: kubectl-style commands (also ``kubectl mbcas ...``).

Flags as kubectl has them: ``--kubeconfig``, ``--context``, ``-n/--namespace`` (default: the
context's namespace), ``-A/--all-namespaces``, ``-o json|yaml|wide``. ``resize`` goes through the
same :class:`~mbcas.kube.actuator.Actuator` and safety rules as the controller (``--force`` leaves
the judgement to the apiserver). A pod governed by an ``enforce`` PodAllocation is refused unless
``--force``: the controller would put the allocation back (a warning says so when forced).

Exit codes (stable, see docs/cli.md): 0 ok; 1 other error; 2 usage or client configuration;
3 not found; 4 conflict; 5 unauthorized/forbidden; 6 invalid (422); 7 refused by MBCAS's safety
rules; 8 resize infeasible on the node; 9 apiserver unavailable; 10 resize subresource or CRD
missing; 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from mbcas.api.models import GROUP, PLURAL, VERSION
from mbcas.cli.errors import cpu_quantity, fail, non_negative_float, positive_float
from mbcas.core.units import format_cpu, parse_cpu
from mbcas.kube.actuator import Actuator
from mbcas.kube.client import Kube, build_kube, kubeconfig_namespace
from mbcas.kube.discovery import check_crd_installed, cluster_support
from mbcas.kube.errors import (
    CrdNotInstalledError,
    KubeError,
    NotFoundError,
    RefusedError,
    ResizeInfeasibleError,
)
from mbcas.kube.podview import PodView

__all__ = ["EXIT_OK", "format_table", "kube_command", "kube_flags", "register"]

EXIT_OK = 0

Handler = Callable[[argparse.Namespace, Kube], int]


def kube_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool = True, output: bool = True) -> None:
    """The kubectl-style client flags (also used by ``mbcas top``)."""
    parser.add_argument(
        "--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", help="all namespaces")
    if output:
        parser.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")


def register(subparsers: Any) -> None:
    """Add list, usage, allocations, resize and check."""
    p = subparsers.add_parser("list", help="pods MBCAS manages, with request, limit, allocation and phase")
    kube_flags(p)
    p.add_argument("--node", help="only pods on this node")
    p.set_defaults(func=kube_command(cmd_list))

    p = subparsers.add_parser("usage", help="one pod's requests, limits, applied limits and last resize")
    kube_flags(p, all_namespaces=False)
    p.add_argument("pod")
    p.set_defaults(func=kube_command(cmd_usage))

    p = subparsers.add_parser("allocations", help="PodAllocations (like kubectl get pa, wider)")
    kube_flags(p)
    p.add_argument("-w", "--watch", action="store_true", help="refresh the table until Ctrl-C")
    p.add_argument(
        "--interval", type=positive_float, default=1.0, help="refresh interval with --watch (seconds)"
    )
    p.set_defaults(func=kube_command(cmd_allocations))

    p = subparsers.add_parser("resize", help="change a pod's CPU limit in place (same safety rules)")
    kube_flags(p, all_namespaces=False)
    p.add_argument("pod")
    p.add_argument(
        "--cpu",
        required=True,
        type=cpu_quantity,
        help="CPU limit: pod total, or the container's with --container",
    )
    p.add_argument("-c", "--container", help="resize only this container")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip MBCAS's checks, also on a pod a PodAllocation manages (the apiserver still validates)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate on the server, change nothing")
    p.add_argument(
        "--wait",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait for the kubelet to apply it",
    )
    p.set_defaults(func=kube_command(cmd_resize))

    p = subparsers.add_parser("check", help="does the cluster support in-place resize; is the CRD installed")
    kube_flags(p, all_namespaces=False)
    p.set_defaults(func=kube_command(cmd_check))


def kube_command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap ``handler(args, kube)``: build the client once, default the namespace to the context's,
    print typed API errors with the command's name and return their exit code."""

    def run(args: argparse.Namespace) -> int:
        prog = f"mbcas {args.command}"
        try:
            kube = build_kube(args.kubeconfig, args.context)
        except KubeError as exc:
            return fail(prog, exc, exc.exit_code)
        try:
            if getattr(args, "namespace", None) is None:
                args.namespace = kubeconfig_namespace(args.kubeconfig, args.context)
            return handler(args, kube)
        except KubeError as exc:
            return fail(prog, exc, exc.exit_code)
        finally:
            kube.close()

    return run


# ------------------------------------------------------------------------------------- helpers


def _fmt_mcpu(value: int | None) -> str:
    return "-" if value is None else format_cpu(value)


def _age(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        then = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    secs = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]
    ]
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if args.output == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    elif args.output == "yaml":
        print(yaml.safe_dump(data, sort_keys=True), end="")
    elif not rows:
        print("No resources found.", file=sys.stderr)
    else:
        print(format_table(headers, rows))


def _list_allocations(kube: Kube, args: argparse.Namespace) -> list[dict[str, Any]]:
    path = (
        f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        if getattr(args, "all_namespaces", False)
        else f"/apis/{GROUP}/{VERSION}/namespaces/{args.namespace}/{PLURAL}"
    )
    if not check_crd_installed(kube):
        raise CrdNotInstalledError(f"the {PLURAL}.{GROUP} CRD is not installed (mbcas check)")
    doc = kube.request_json("GET", path, what=f"list {PLURAL}")
    items: list[dict[str, Any]] = doc.get("items") or []
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["spec"].get("podName", "")))


def _list_pods(kube: Kube, args: argparse.Namespace, node: str | None = None) -> list[dict[str, Any]]:
    path = (
        "/api/v1/pods"
        if getattr(args, "all_namespaces", False)
        else f"/api/v1/namespaces/{args.namespace}/pods"
    )
    query = {"fieldSelector": f"spec.nodeName={node}"} if node else None
    doc = kube.request_json("GET", path, what="list pods", query=query)
    return list(doc.get("items") or [])


# ------------------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace, kube: Kube) -> int:
    allocations = _list_allocations(kube, args)
    by_pod = {(a["metadata"].get("namespace"), a["spec"].get("podUID")): a for a in allocations}
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for body in _list_pods(kube, args, args.node):
        pod = PodView.from_body(body)
        pa = by_pod.get((pod.namespace, pod.uid))
        if pa is None:
            continue
        status = pa.get("status") or {}
        item = {
            "namespace": pod.namespace,
            "pod": pod.name,
            "node": pod.node_name,
            "qos": pod.qos.value,
            "request": _fmt_mcpu(pod.cpu.request_mcpu),
            "limit": _fmt_mcpu(pod.cpu.limit_mcpu),
            "applied": _fmt_mcpu(pod.applied_limit_mcpu()),
            "allocation": pa["spec"].get("cpuLimit"),
            "mode": pa["spec"].get("mode", "enforce"),
            "phase": status.get("phase", "-"),
            "message": status.get("message", ""),
        }
        data.append(item)
        row = [
            item["namespace"],
            item["pod"],
            item["node"] or "-",
            item["request"],
            item["limit"],
            item["applied"],
            item["allocation"],
            item["phase"],
        ]
        if args.output == "wide":
            row += [item["qos"], item["mode"], item["message"]]
        rows.append(row)
    headers = ["NAMESPACE", "POD", "NODE", "REQUEST", "LIMIT", "APPLIED", "ALLOCATION", "PHASE"]
    if args.output == "wide":
        headers += ["QOS", "MODE", "MESSAGE"]
    _emit(args, data, headers, rows)
    return EXIT_OK


def cmd_usage(args: argparse.Namespace, kube: Kube) -> int:
    pod = Actuator(kube).get_pod(args.namespace, args.pod)
    pa: dict[str, Any] | None = None
    if check_crd_installed(kube):
        items = (
            kube.request_json(
                "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{pod.namespace}/{PLURAL}", what=f"list {PLURAL}"
            ).get("items")
            or []
        )
        pa = next((a for a in items if a["spec"].get("podUID") == pod.uid), None)
    status = (pa or {}).get("status") or {}
    containers = [
        {
            "name": c.name,
            "request": _fmt_mcpu(c.cpu_request_mcpu),
            "limit": _fmt_mcpu(c.cpu_limit_mcpu),
            "applied": _fmt_mcpu(pod.status_cpu_limits.get(c.name)),
            "resizePolicy": "RestartContainer" if c.cpu_restart_required else "NotRequired",
        }
        for c in pod.containers
    ]
    data: dict[str, Any] = {
        "namespace": pod.namespace,
        "pod": pod.name,
        "uid": pod.uid,
        "node": pod.node_name,
        "qos": pod.qos.value,
        "containers": containers,
        "resize": {
            "pending": pod.resize.pending_reason,
            "inProgress": pod.resize.in_progress,
            "message": pod.resize.pending_message or pod.resize.error or "",
        },
        "allocation": None
        if pa is None
        else {
            "name": pa["metadata"]["name"],
            "desired": pa["spec"].get("cpuLimit"),
            "mode": pa["spec"].get("mode"),
            "phase": status.get("phase"),
            "applied": status.get("appliedCPULimit"),
            "lastResize": status.get("lastAppliedTime"),
            "message": status.get("message"),
            "reason": pa["spec"].get("reason"),
        },
    }
    if args.output in ("json", "yaml"):
        _emit(args, data, [], [])
        return EXIT_OK
    print(f"Pod:        {pod.key} (uid {pod.uid})")
    print(f"Node:       {pod.node_name or '-'}")
    print(f"QoS:        {pod.qos.value}")
    print(
        format_table(
            ["CONTAINER", "REQUEST", "LIMIT", "APPLIED", "CPU-RESIZE-POLICY"],
            [[c["name"], c["request"], c["limit"], c["applied"], c["resizePolicy"]] for c in containers],
        )
    )
    if pod.resize.pending_reason or pod.resize.in_progress:
        print(f"Resize:     {pod.resize.pending_reason or 'InProgress'} {data['resize']['message']}")
    if pa is None:
        print("Allocation: none (MBCAS does not manage this pod)")
    else:
        a: dict[str, Any] = data["allocation"]
        phase, applied = a["phase"] or "-", a["applied"] or "-"
        print(f"Allocation: {a['desired']} ({a['mode']}), phase {phase}, applied {applied}")
        print(f"Last resize: {a['lastResize'] or 'never'}")
        print(f"Reason:     {a['reason']}")
        if a["message"]:
            print(f"Message:    {a['message']}")
    return EXIT_OK


def _allocation_rows(items: list[dict[str, Any]], wide: bool) -> tuple[list[str], list[list[str]]]:
    headers = ["NAMESPACE", "NAME", "POD", "NODE", "DESIRED", "APPLIED", "PHASE", "MODE", "AGE"]
    if wide:
        headers += ["DECIDED", "LAST-RESIZE", "REASON", "MESSAGE"]
    rows = []
    for a in items:
        spec, status, meta = a.get("spec") or {}, a.get("status") or {}, a.get("metadata") or {}
        row = [
            meta.get("namespace", ""),
            meta.get("name", ""),
            spec.get("podName", ""),
            spec.get("nodeName", ""),
            spec.get("cpuLimit", ""),
            status.get("appliedCPULimit", "-"),
            status.get("phase", "-"),
            spec.get("mode", "enforce"),
            _age(meta.get("creationTimestamp")),
        ]
        if wide:
            row += [
                _age(spec.get("decidedAt")),
                _age(status.get("lastAppliedTime")),
                spec.get("reason", ""),
                status.get("message", ""),
            ]
        rows.append(row)
    return headers, rows


def cmd_allocations(args: argparse.Namespace, kube: Kube) -> int:
    if not args.watch:
        items = _list_allocations(kube, args)
        headers, rows = _allocation_rows(items, args.output == "wide")
        _emit(args, items, headers, rows)
        return EXIT_OK
    try:
        while True:
            items = _list_allocations(kube, args)
            headers, rows = _allocation_rows(items, args.output == "wide")
            stamp = dt.datetime.now().strftime("%H:%M:%S")
            if sys.stdout.isatty():
                print("\033[2J\033[H", end="")
            print(f"Every {args.interval:g}s: mbcas allocations    {stamp}\n")
            print(format_table(headers, rows) if rows else "No resources found.", flush=True)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def _governing_allocation(kube: Kube, pod: PodView) -> dict[str, Any] | None:
    """The ``enforce`` PodAllocation of ``pod`` (named by its UID), if there is one."""
    try:
        pa: dict[str, Any] = kube.request_json(
            "GET",
            f"/apis/{GROUP}/{VERSION}/namespaces/{pod.namespace}/{PLURAL}/{pod.uid}",
            what=f"read the PodAllocation of pod {pod.key}",
        )
    except NotFoundError:  # none (or the CRD is not installed)
        return None
    spec = pa.get("spec") or {}
    if spec.get("podUID") != pod.uid or spec.get("mode", "enforce") != "enforce":
        return None
    return pa


def cmd_resize(args: argparse.Namespace, kube: Kube) -> int:
    limit = parse_cpu(args.cpu)  # checked by the parser (cpu_quantity)
    act = Actuator(kube)
    pod = act.get_pod(args.namespace, args.pod)
    pa = _governing_allocation(kube, pod)
    if pa is not None:
        what = (
            f"pod {pod.key} is managed by PodAllocation {pod.namespace}/{pa['metadata']['name']} "
            f"(enforce, {pa['spec'].get('cpuLimit')}): the controller will put that limit back"
        )
        if not args.force:
            raise RefusedError(
                "ManagedPod", f"{what}; pass --force to resize anyway, or opt the pod out of MBCAS first"
            )
        print(f"mbcas resize: warning: {what}", file=sys.stderr)
    result = act.apply_cpu_limit(pod, limit, container=args.container, force=args.force, dry_run=args.dry_run)
    prefix = "(dry run) " if args.dry_run else ""
    if args.output in ("json", "yaml"):
        _emit(
            args,
            {
                "pod": result.pod.key,
                "patched": result.patched,
                "dryRun": args.dry_run,
                "limits": {n: format_cpu(v) for n, v in result.plan.limits.items()},
                "skipped": result.plan.skipped,
            },
            [],
            [],
        )
    else:
        print(prefix + result.describe())
        for name, why in result.plan.skipped.items():
            print(f"  {name}: left unchanged ({why})")
    if args.wait > 0 and result.patched and not args.dry_run:
        deadline = time.monotonic() + args.wait
        while True:
            pod = act.get_pod(args.namespace, args.pod)
            if pod.resize.pending_reason == "Infeasible":
                raise ResizeInfeasibleError(f"pod {pod.key}: resize infeasible: {pod.resize.pending_message}")
            if pod.applied(result.plan.limits):
                print(f"applied: {', '.join(f'{n}={format_cpu(v)}' for n, v in result.plan.limits.items())}")
                break
            if time.monotonic() >= deadline:
                state = pod.resize.pending_reason or (
                    "InProgress" if pod.resize.in_progress else "not yet applied"
                )
                return fail("mbcas resize", f"not applied after {args.wait:g}s ({state})", 1)
            time.sleep(0.2)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, kube: Kube) -> int:
    support = cluster_support(kube)
    data = {
        "server": kube.host,
        "serverVersion": support.server_version,
        "resizeSubresource": support.resize_subresource,
        "crdInstalled": support.crd_installed,
    }
    if args.output in ("json", "yaml"):
        _emit(args, data, [], [])
    else:
        mark = {True: "ok", False: "MISSING"}
        print(f"apiserver            {kube.host} ({support.server_version})")
        print(
            f"pods/resize          {mark[support.resize_subresource]}"
            + ("" if support.resize_subresource else "  (needs Kubernetes >= 1.32; GA in 1.35)")
        )
        print(
            f"{PLURAL}.{GROUP}  {mark[support.crd_installed]}"
            + ("" if support.crd_installed else f"  (kubectl apply -f crds/{PLURAL}.{GROUP}.yaml)")
        )
    return EXIT_OK if support.ok else 10
