"""`gateway status`: one line per revision, read from the admin API."""

from __future__ import annotations

import sys
from typing import Any

import httpx

COLUMNS = ("HOST", "REVISION", "TRAFFIC", "READY", "IN-FLIGHT", "QUEUED", "STABLE", "PANIC", "STATE")
ISVC_COLUMNS = ("NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    # a backend's trouble (the API unreachable) is printed once above the table, not again in each of its revisions
    said_above = {state.get("message") for state in (doc.get("backends") or {}).values() if not state.get("ok", True)}
    for service in doc.get("services", []):
        for rev in service["revisions"]:
            state = rev.get("state") or "ok"
            if rev.get("panicking"):
                state += ",panic"
            if rev.get("message") in said_above:
                state += " (see above)"
            elif rev.get("message"):
                state += f" ({rev['message']})"
            out.append(
                (
                    service["host"],
                    rev["name"],
                    f"{rev['percent']}%",
                    f"{rev['ready']}/{rev['desired']}",
                    _fmt(rev.get("in_flight")),
                    _fmt(rev.get("queued")),
                    _fmt(rev.get("stable")),
                    _fmt(rev.get("panic")),
                    state,
                )
            )
    return out


def problems(doc: dict[str, Any]) -> list[str]:
    """One line per backend that is unwell (the Kubernetes API unreachable), to print above the table."""
    return [
        f"{kind}: {state.get('message') or 'unwell'}"
        for kind, state in sorted((doc.get("backends") or {}).items())
        if not state.get("ok", True)
    ]


def shared(doc: dict[str, Any]) -> list[str]:
    """One line about the instances sharing the autoscaler (spec.redis), and what is wrong with it if anything."""
    state = doc.get("shared")
    if not isinstance(state, dict):
        return []
    if state.get("leader"):
        role = "leader (scales the replicas)"
    elif state.get("reachable") is False:
        role = "cut off from Redis (scales nothing until it is back)"
    else:
        role = f"follower of {state.get('holder') or 'nobody yet'}"
    line = f"shared state {state.get('redis')}: {state.get('instances')} instances, this one ({state.get('instance')}) {role}"
    return [line] + ([f"shared state: {state['message']}"] if state.get("message") else [])


def inference_services(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per InferenceService, as `kubectl get isvc` prints it (blank where KServe's is)."""
    out: list[tuple[str, ...]] = []
    for service in doc.get("services", []):
        rollout = service.get("rollout")
        if not isinstance(rollout, dict):
            continue
        out.append(
            (
                f"{service['namespace']}/{service['name']}",
                f"http://{service['host']}",
                "True" if rollout.get("ready") else "False",
                f"{rollout['prev']}" if rollout.get("prev") is not None else "",
                f"{rollout['latest']}",
                rollout.get("prevRolledOutRevision") or "",
                rollout.get("latestReadyRevision") or "",
            )
        )
    return out


def _table(table: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    return [("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip() for r in table]


def render(doc: dict[str, Any]) -> str:
    lines = shared(doc) + problems(doc) + _table([COLUMNS, *rows(doc)])
    isvcs = inference_services(doc)
    if isvcs:
        lines += ["", *_table([ISVC_COLUMNS, *isvcs])]
    return "\n".join(lines)


def print_status(admin: str) -> int:
    url = f"http://{admin}/admin/services"
    try:
        resp = httpx.get(url, timeout=5.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"gateway status: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    print(render(resp.json()))
    return 0
