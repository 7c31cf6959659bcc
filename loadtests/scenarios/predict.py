"""The simulator's predicted replica curve for the burst scenario's own traffic: the requests as they
were actually sent (one `time,duration` row each) through `gateway.simulate` with the same config.
`gateway.simulate` is built by another item of issue 13; until it is importable the curve is absent
and the report says so."""

from __future__ import annotations

import importlib
from typing import Any

from loadtests.harness import openloop

_problem = ""


def why_not() -> str:
    return _problem or "gateway.simulate gave no rows"


def replica_curve(config: str, outcome: openloop.Outcome, seconds: float) -> list[dict[str, Any]] | None:
    """Rows {time, desired, ready} per simulated second, or None (why_not() says why)."""
    global _problem
    try:
        sim = importlib.import_module("gateway.simulate")
    except ImportError as exc:
        _problem = f"gateway.simulate is not in this tree ({exc}); the measured curve stands alone"
        return None
    run = getattr(sim, "simulate_requests", None) or getattr(sim, "simulate", None)
    if run is None:
        _problem = "gateway.simulate has no simulate() to call"
        return None
    trace = [(row[0], 0.1) for row in outcome.rows]
    try:
        rows = run(config=config, requests=trace, seconds=seconds)
    except TypeError as exc:
        _problem = f"gateway.simulate's API is not the one this scenario was written against: {exc}"
        return None
    return [{"time": float(r["time"]), "desired": int(r["desired"]), "ready": int(r["ready"])} for r in rows] or None
