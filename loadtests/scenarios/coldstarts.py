"""coldstarts: 1, 5 and 10 services at zero replicas woken at once (one request each, all sent in the
same instant): the time to the first byte of each, and every revision ready afterwards according to
the admin API. Knative's scale-from-zero test (1, 5, 25, 100 services) scaled to two cores."""

from __future__ import annotations

import json
import sys
from typing import Any

from loadtests.harness import openloop
from loadtests.harness.gateway import Gateway, start_gateway
from loadtests.harness.procs import Stack
from loadtests.harness.report import Context, Result, Table, pyplot
from loadtests.harness.stats import median, ms
from loadtests.harness.targets import REPLICA

TITLE = "parallel cold starts: 1, 5 and 10 services at zero woken at once, time to first byte"


def config(count: int) -> str:
    parts = [
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: local\n"
        "  autoscaler:\n    initialScale: 0\n    allowZeroInitialScale: true\n    scaleToZeroGracePeriod: 60s\n"
    ]
    cmd = f'[{json.dumps(sys.executable)}, {json.dumps(str(REPLICA))}, "{{port}}"]'
    for i in range(count):
        parts.append(
            f"---\napiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata:\n  name: cold-{i}\n"
            f"spec:\n  default:\n    command: {cmd}\n  service:\n    minScale: 0\n    maxScale: 1\n"
        )
    return "".join(parts)


def run(ctx: Context) -> Result:
    groups, rounds = ctx.pick(([1, 2], 1), ([1, 5, 10], 1), ([1, 5, 10], 3))
    res = Result(
        figures={
            "rounds": rounds,
            "groups": {str(n): {"ttfb_s": [], "ok": 0, "ready_after": 0, "at_zero_before": True} for n in groups},
        }
    )
    with Stack(ctx.work) as stack:
        gw = start_gateway(stack, config(sum(groups) * rounds), cpu=0)
        first = 0
        for _round in range(rounds):  # each round wakes services never touched before
            for n in groups:
                wake(ctx, gw, [f"cold-{i}" for i in range(first, first + n)], res.figures["groups"][str(n)])
                first += n
    rows = []
    for n in groups:
        g = res.figures["groups"][str(n)]
        ttfb, total = g["ttfb_s"], n * rounds
        rows.append(
            [n, f"{g['ok']} of {total}", ms(min(ttfb)), ms(median(ttfb)), ms(max(ttfb)), f"{g['ready_after']} of {total}"]
        )
        res.check(f"{n} at once: all at zero before", g["at_zero_before"])
        res.check(f"{n} at once: every request answered 2xx", g["ok"] == total, f"{g['ok']} of {total}")
        res.check(f"{n} at once: every revision ready after", g["ready_after"] == total, f"{g['ready_after']} of {total}")
    res.tables.append(
        Table(
            f"time to first byte from zero, all requests sent at once, {rounds} round(s) (ms)",
            ["services at once", "answered 2xx", "min", "median", "max", "ready after"],
            rows,
        )
    )
    plot(ctx, res)
    return res


def wake(ctx: Context, gw: Gateway, names: list[str], into: dict[str, Any]) -> None:
    """One request to each service, all scheduled at the same instant; the admin API before and after."""
    before = gw.admin.revisions()
    into["at_zero_before"] &= all(before[f"{name}-default"]["ready"] == 0 for name in names)
    plan = openloop.Plan(gw.port, [(0.0, f"{name}.default.example.com", "/work?ms=0") for name in names], timeout=60)
    outcome = openloop.run(plan, ctx.work, f"wake-{names[0]}", cpu=1)
    after = gw.admin.revisions()
    into["ttfb_s"] += [r[2] for r in outcome.rows]
    into["ok"] += outcome.ok
    into["ready_after"] += sum(1 for name in names if after[f"{name}-default"]["ready"] >= 1)


def plot(ctx: Context, res: Result) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 3))
    groups = res.figures["groups"]
    for i, g in enumerate(groups.values()):
        ax.scatter([i] * len(g["ttfb_s"]), [1000 * t for t in g["ttfb_s"]], alpha=0.6)
    ax.set_xticks(range(len(groups)), [f"{n} at once" for n in groups])
    ax.set_ylabel("time to first byte (ms)")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(ctx.out / "coldstarts.png", dpi=100)
    plt.close(fig)
    res.plots.append("coldstarts.png")
