"""Configs and traces for the simulator's tests, built from the typed model (no files needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gateway.config.model import AutoscalerSettings, Config, GatewaySettings, RevisionSpec, ScalingSpec, ServiceSpec
from gateway.simulate import Result, Trace, run
from gateway.simulate.engine import Row


def config(autoscaler: AutoscalerSettings | None = None, **scaling: object) -> Config:
    """One service `m` on the local backend with the given scaling (a ScalingSpec's fields)."""
    spec = ServiceSpec(
        name="m",
        namespace="default",
        default=RevisionSpec(name="default", command="true"),
        scaling=replace(ScalingSpec(), **scaling),  # type: ignore[arg-type]
    )
    return Config(gateway=GatewaySettings(autoscaler=autoscaler or AutoscalerSettings()), services=(spec,))


def rates(steps: Sequence[tuple[int, int, float]], seconds: int, duration: float = 1.0) -> Trace:
    """`(first second, last second, rps)` steps, 0 rps elsewhere, every request taking `duration`."""
    rps = [0.0] * seconds
    for first, last, rate in steps:
        for s in range(first, last + 1):
            rps[s] = rate
    return Trace.from_rates([(s, r, duration) for s, r in enumerate(rps)])


def simulate(cfg: Config, trace: Trace, *, startup: float | Sequence[float] = 1.0, overrides: Sequence[str] = ()) -> Result:
    return run(cfg, None, trace, startup=startup, overrides=overrides)


def column(rows: Sequence[Row], name: str, first: int, last: int) -> list[object]:
    """`name` of rows `first..last` (inclusive)."""
    return [getattr(row, name) for row in rows[first : last + 1]]


def runs(rows: Sequence[Row], name: str) -> list[tuple[int, object]]:
    """(first second, value) of every stretch of equal `name`: a compact picture of a column."""
    found: list[tuple[int, object]] = []
    for row in rows:
        value = getattr(row, name)
        if not found or found[-1][1] != value:
            found.append((row.time, value))
    return found
