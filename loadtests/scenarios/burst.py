"""burst: scale from zero under stepped open-loop rates (Knative's scale-from-zero and load-test shape).
One revision at zero replicas of loadtests/burst_replica.py (100 ms a request, containerConcurrency =
target); requests leave on schedule whatever the earlier ones are doing. Replicas over time come from
the admin API (sampled every 250 ms); the simulator's predicted curve is drawn beside the measured one
when `gateway.simulate` is there (see scenarios/predict.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.harness import openloop
from loadtests.harness.gateway import metric_sum, start_gateway
from loadtests.harness.procs import Stack
from loadtests.harness.report import Context, Result, Table
from loadtests.harness.stats import ms, pct
from loadtests.harness.targets import REPLICA
from loadtests.scenarios import burst_plot, predict

TITLE = "scale from zero under stepped open-loop rates: errors, answered, replicas over time (measured and predicted)"
NAME = "burst"
HOST = f"{NAME}.default.example.com"
REVISION = f"{NAME}-default"
MAX_SCALE = 8
TARGET = 5  # the per-replica target and containerConcurrency both
BACKEND_MS = 100
SETTINGS = {
    "target": TARGET,
    "util": 70,
    "max_scale": MAX_SCALE,
    "stable_window": "20s",
    "grace": "10s",
    "tick": "1s",
    "ms": BACKEND_MS,
}


def config(stats_dir: Path | None = None) -> str:
    """The gateway's config; with `stats_dir`, each replica writes its final counts there when stopped."""
    s = SETTINGS
    env = f"    env:\n      BURST_STATS_DIR: {json.dumps(str(stats_dir))}\n" if stats_dir else ""
    return f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  autoscaler:
    stableWindow: {s["stable_window"]}
    scaleToZeroGracePeriod: {s["grace"]}
    tickInterval: {s["tick"]}
    initialScale: 0
    allowZeroInitialScale: true
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: {NAME}
spec:
  default:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(REPLICA))}, "{{port}}"]
{env}  service:
    minScale: 0
    maxScale: {s["max_scale"]}
    target: {s["target"]}
    targetUtilization: "{s["util"]}"
"""


def run(ctx: Context) -> Result:
    rates, seconds, tail = ctx.pick(
        ([5.0, 10.0], 2.0, 1.0), ([10.0, 20.0, 40.0, 80.0], 5.0, 5.0), ([10.0, 20.0, 40.0, 80.0, 120.0, 160.0], 10.0, 30.0)
    )
    res = Result(figures={"rates_rps": rates, "step_s": seconds, "tail_s": tail, "settings": SETTINGS, "config": config()})
    samples: list[dict[str, Any]] = []
    stats_dir = ctx.work / "replica-stats"
    stats_dir.mkdir()
    with Stack(ctx.work) as stack:
        gw = start_gateway(stack, config(stats_dir), cpu=0)
        rev0 = gw.admin.revisions()[REVISION]
        res.check(
            "started at zero replicas",
            rev0["ready"] == 0 and rev0["desired"] == 0,
            f"ready {rev0['ready']}, desired {rev0['desired']}",
        )
        t0 = [0.0]

        def sample() -> None:
            rev = gw.admin.revisions()[REVISION]
            keys = ("ready", "desired", "stable", "panic", "panicking", "queued", "in_flight")
            samples.append({"t": round(time.time() - t0[0], 3), **{k: rev.get(k) for k in keys}})

        plan = openloop.Plan(gw.port, openloop.steps(rates, seconds, HOST, f"/work?ms={SETTINGS['ms']}"), timeout=30)
        t0[0] = time.time() + 0.5  # about the generator's start (openloop.run starts it 0.5 s ahead) ...
        estimate = t0[0]
        outcome = openloop.run(plan, ctx.work, "load", cpu=1, tick=sample)
        t0[0] = outcome.t0_wall  # ... and exactly, once it has said when it started
        for s in samples:
            s["t"] = round(s["t"] - (outcome.t0_wall - estimate), 3)
        end = time.monotonic() + tail
        while time.monotonic() < end:
            sample()
            time.sleep(0.25)
        metrics = gw.admin.metrics()
    analyse(res, outcome, samples, rates, seconds)
    replicas(res, stats_dir, outcome)
    count, total = metric_sum(metrics, "gateway_cold_start_seconds_count"), metric_sum(metrics, "gateway_cold_start_seconds_sum")
    startup = round(total / count, 3) if count else 0.4
    res.figures.update(cold_starts=count, startup_s=startup)
    try:
        predicted = predict.replica_curve(gw.config_path, outcome, BACKEND_MS / 1000, len(rates) * seconds + tail, startup)
    except ValueError as exc:  # the simulator refusing the trace or the config: reported, the measured run stands
        res.notes.append(f"the simulator refused: {exc}")
        predicted = None
    compare(res, samples, predicted)
    burst_plot.plot(ctx, res, outcome, samples, predicted)
    return res


def analyse(res: Result, outcome: openloop.Outcome, samples: list[dict[str, Any]], rates: list[float], seconds: float) -> None:
    rows, steps = [], []
    for i, rate in enumerate(rates):
        recs = [r for r in outcome.rows if i * seconds <= r[0] < (i + 1) * seconds]
        lat = [r[2] for r in recs if 200 <= r[3] < 300]
        during = [s for s in samples if i * seconds <= s["t"] < (i + 1) * seconds]
        step = {
            "rate": rate,
            "sent": len(recs),
            "answered": sum(1 for r in recs if r[3] > 0),
            "errors": sum(1 for r in recs if not 200 <= r[3] < 300),
            "p50_ms": ms(pct(lat, 50)),
            "p95_ms": ms(pct(lat, 95)),
            "p99_ms": ms(pct(lat, 99)),
            "max_ready": max((s["ready"] for s in during), default=None),
            "max_desired": max((s["desired"] for s in during), default=None),
        }
        steps.append(step)
        rows.append(list(step.values()))
    res.figures["steps"] = steps
    res.figures["samples"] = samples
    res.figures["requests"] = outcome.rows
    res.tables.append(
        Table(
            "per step (latency from the scheduled send time, ms)",
            ["req/s", "sent", "answered", "errors", "p50", "p95", "p99", "max ready", "max desired"],
            rows,
        )
    )
    answered = outcome.answered / max(outcome.sent, 1)
    res.figures.update(sent=outcome.sent, answered=outcome.answered, errors=outcome.errors, answered_share=round(answered, 5))
    res.check("0 errors", outcome.errors == 0, f"{outcome.errors} of {outcome.sent}")
    res.check(">= 99.9 % answered", answered >= 0.999, f"{outcome.answered} of {outcome.sent}")
    top = max((s["desired"] or 0 for s in samples), default=0)
    res.check("desired <= maxScale", top <= MAX_SCALE, f"highest desired {top}")


def replicas(res: Result, stats_dir: Path, outcome: openloop.Outcome) -> None:
    """Every replica's own final counts (written when the gateway stopped it, scaled down mid-run or at the end)."""
    found = [json.loads(f.read_text()) for f in sorted(stats_dir.glob("replica-*.json"))]
    res.figures["replicas"] = found
    served = sum(r["served"] for r in found)
    most = max((r["max_in_flight"] for r in found), default=0)
    res.check(
        "replicas served exactly the requests answered 200", served == outcome.ok, f"{served} served, {outcome.ok} answered 200"
    )
    res.check(
        "no replica held more than containerConcurrency",
        most <= TARGET,
        f"most in flight at one replica {most}, limit {TARGET}; {len(found)} replicas",
    )


def compare(res: Result, samples: list[dict[str, Any]], predicted: list[dict[str, Any]] | None) -> None:
    if predicted is None:
        res.notes.append(f"no predicted curve: {predict.why_not()}")
        return
    res.figures["predicted"] = predicted
    agree = {key: predict.agreement(samples, predicted, key) for key in ("ready", "desired")}
    res.figures["agreement"] = agree
    res.tables.append(
        Table(
            f"simulator (replica start-up {res.figures['startup_s']} s, the gateway's mean cold start) against the measured run, per second",
            ["replicas", "seconds compared", "within one replica", "share", "exactly equal"],
            [[key, a["seconds"], a["within_one"], a["share_within_one"], a["exact"]] for key, a in agree.items()],
        )
    )
