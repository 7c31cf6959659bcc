"""What the autoscaler would do with a trace of traffic: the real KPA code on a simulated clock.

Command line: ``gateway simulate -f CONFIG --trace CSV`` (gateway/simulate/cli.py). From Python::

    from gateway.config import load
    from gateway.simulate import Trace, run

    config = load(["config.yaml"])
    trace = Trace.from_rates([(0, 0, 0.1), (10, 50, 0.1), (70, 0, 0.1)])  # (second, rps, duration) rows,
                                                                         # each until the next: 50 rps 10-69 s
    # or Trace.from_requests([(arrival_s, duration_s), ...]), or load_trace("trace.csv")
    result = run(config, "iris", trace, startup=0.4, overrides=["autoscaler.stableWindow=30s"])
    result.series[12].desired      # one Row per simulated second: time, desired, ready, stable,
                                   # panic, panicking, queued
    result.summary["wait_p99_s"]   # requests, replica_seconds, waited_share, wait_p50_s, ... settings

``run(config, service, trace, *, startup=0.4, overrides=()) -> Result``: ``service`` is the
service's name or ``namespace/name`` (None: the config's only service); ``startup`` the seconds a
replica takes to become ready, or several (e.g. measured cold starts) taken in turn by the replicas
as they start; ``overrides`` are ``KEY=VALUE`` strings as ``--set`` takes them
(gateway/simulate/overrides.py lists the keys). Time 0 of the trace is when the autoscaler starts
(the gateway's start): a replica asked for by ``initialScale`` starts then.
Bad input raises ``SimulateError`` (a ValueError; ``TraceError`` and ``OverrideError`` are kinds of it)
with a message naming what is wrong.

``revision`` (None: the default revision) may name the canary instead: the trace is split between the
two as the router splits it (gateway/router/split.py, exact and deterministic) and the chosen
revision's share is simulated; revisions scale apart, so each one's figures are exact on their own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.model import Config, RevisionSpec, ServiceSpec
from gateway.router.split import Splitter
from gateway.simulate.engine import Row, Simulation
from gateway.simulate.errors import SimulateError
from gateway.simulate.overrides import Override, OverrideError, apply_overrides, parse_overrides
from gateway.simulate.trace import Trace, TraceError, load_trace

__all__ = ["OverrideError", "Result", "Row", "SimulateError", "Trace", "TraceError", "load_trace", "run", "select_service"]


@dataclass(frozen=True)
class Result:
    series: list[Row]  # one per simulated second, time 0 .. trace.seconds - 1
    summary: dict[str, Any]  # the figures, and under "settings" everything the run used


def select_service(config: Config, name: str | None) -> ServiceSpec:
    """The service called ``name`` (or ``namespace/name``); with None, the config's only service."""
    services = config.services
    choices = ", ".join(f"{s.namespace}/{s.name}" for s in services)
    if not services:
        raise SimulateError("the config has no service to simulate")
    if name is None:
        if len(services) == 1:
            return services[0]
        raise SimulateError(f"the config has {len(services)} services: choose one with --service ({choices})")
    namespace, _, short = name.rpartition("/")
    found = [s for s in services if s.name == short and (not namespace or s.namespace == namespace)]
    if len(found) == 1:
        return found[0]
    if found:
        raise SimulateError(f"service {name!r} is in several namespaces: say which ({choices})")
    raise SimulateError(f"no service {name!r} in the config; services: {choices}")


def select_revision(spec: ServiceSpec, name: str | None) -> RevisionSpec:
    """The revision called ``name`` ("default" or "canary", or its own name); None: the default one."""
    if name is None or name in ("default", spec.default.name):
        return spec.default
    if spec.canary is not None and name in ("canary", spec.canary.name):
        return spec.canary
    names = ", ".join(rev.name for rev in spec.revisions())
    raise SimulateError(f"service {spec.name} has no revision {name!r}; its revisions: {names}")


MIN_TICK = 0.01  # seconds: a finer tick only spends time (a 1 ns tick never finished an hour)
MAX_REPLICAS = 100_000  # a model of each replica is kept: a billion would take the machine's memory


def run(
    config: Config,
    service: str | None,
    trace: Trace,
    *,
    startup: float | Sequence[float] = 0.4,
    overrides: Sequence[str | Override] = (),
    revision: str | None = None,
) -> Result:
    """Simulate one revision of the service (its default unless ``revision`` says) over ``trace``; see the module docstring."""
    spec = select_service(config, service)
    chosen = select_revision(spec, revision)
    startups = [startup] if isinstance(startup, int | float) else list(startup)
    if not startups or not all(value >= 0 and math.isfinite(value) for value in startups):
        raise SimulateError(f"startup must be one or more times >= 0 seconds, got {startup}")
    items = [item if isinstance(item, Override) else parse_overrides([item])[0] for item in overrides]
    settings, scaling = apply_overrides(config.gateway, spec.scaling, items)
    spec = dataclasses.replace(spec, scaling=scaling)
    if settings.autoscaler.tick_interval < MIN_TICK:
        raise SimulateError(
            f"autoscaler.tickInterval {settings.autoscaler.tick_interval:g}s: the simulator steps the autoscaler "
            f"at most every {MIN_TICK:g} s (Knative's tick is 2 s)"
        )
    if max(scaling.min_scale, scaling.max_scale, scaling.initial_scale or 0) > MAX_REPLICAS:
        raise SimulateError(f"minScale, maxScale and initialScale: at most {MAX_REPLICAS:,} replicas are simulated")
    if (spec.backend or settings.backend) == "static":
        raise SimulateError(f"service {spec.name} runs on the static backend: its endpoints are fixed, nothing scales")
    percent = spec.percent(chosen.name)
    whole = trace
    notes = []
    if spec.canary is not None:
        canary = chosen is spec.canary
        split = Splitter(spec.canary_percent)
        trace = trace.only(split.pick() == canary for _ in range(len(trace)))
        notes.append(f"revision {chosen.name} takes {percent} % of the trace, split as the router splits it")
    sim = Simulation(settings, spec, trace, startup=startups, revision=chosen.name)
    series = sim.run()
    summary = sim.summary()
    summary["settings"] = {
        "service": f"{spec.namespace}/{spec.name}",
        "revision": sim.key.name,
        "traffic_percent": percent,
        "startup_s": startups[0] if len(startups) == 1 else startups,
        "overrides": [str(item) for item in items],
        "trace": {
            "form": trace.form,
            "requests": len(whole),
            "seconds": trace.seconds,
            "arrivals": trace.arrival_model,
            "seed": trace.seed,
        },
        "scaling": dataclasses.asdict(sim.scaling),
        "tick_interval_s": sim.autoscaler.tick_interval,
        "activator": dataclasses.asdict(settings.activator),
        "request_timeout_s": sim.request_timeout,
        "notes": notes,
    }
    return Result(series, summary)
