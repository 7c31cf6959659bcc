"""canary: a canary's traffic share moved 0 -> 50 -> 100 % by editing the config and reloading
(`POST /admin/reload`) while open-loop load runs (Knative's rollout-probe, one machine): no request
may fail, and the split observed per second (from each response's X-Gateway-Revision) follows."""

from __future__ import annotations

import time
from typing import Any

from loadtests.harness import openloop
from loadtests.harness.gateway import start_gateway
from loadtests.harness.procs import Stack
from loadtests.harness.report import Context, Result, Table, pyplot
from loadtests.harness.targets import start_replica_backend

TITLE = "canary shift 0 -> 50 -> 100 % by reloads under load: errors and the split per second"
HOST = "shift.default.example.com"
WEIGHTS = (0, 50, 100)
SETTLE = 1.0  # seconds after a reload left out of the phase's share (requests already on their way)


def config(default: int, canary: int, percent: int) -> str:
    return (
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n---\n"
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: shift, namespace: default}\nspec:\n"
        f"  canaryTrafficPercent: {percent}\n"
        f'  default:\n    endpoints: ["http://127.0.0.1:{default}"]\n'
        f'  canary:\n    endpoints: ["http://127.0.0.1:{canary}"]\n'
    )


def run(ctx: Context) -> Result:
    rate, phase = ctx.pick((20.0, 2.0), (50.0, 5.0), (100.0, 15.0))
    res = Result(figures={"rate_rps": rate, "phase_s": phase, "weights": WEIGHTS, "reloads": []})
    with Stack(ctx.work) as stack:
        a = start_replica_backend(stack, cpu=1, name="replica-default")
        b = start_replica_backend(stack, cpu=1, name="replica-canary")
        gw = start_gateway(stack, config(a.port, b.port, WEIGHTS[0]), cpu=0)
        plan = openloop.Plan(
            gw.port, openloop.steps([rate], phase * len(WEIGHTS), HOST, "/work?ms=10"), keep_header="X-Gateway-Revision"
        )
        start = time.time() + 0.5
        reloads: list[dict[str, Any]] = res.figures["reloads"]

        def tick() -> None:
            due = int((time.time() - start) // phase)
            if len(reloads) + 1 < len(WEIGHTS) and due > len(reloads):
                weight = WEIGHTS[len(reloads) + 1]
                gw.write_config(config(a.port, b.port, weight))
                t = time.time()
                doc = gw.admin.reload()
                reloads.append(
                    {"percent": weight, "at_s": round(t - start, 3), "took_s": round(time.time() - t, 3), "answer": doc}
                )

        outcome = openloop.run(plan, ctx.work, "load", cpu=1, tick=tick)
        for r in reloads:  # on the generator's own clock
            r["at_s"] = round(r["at_s"] - (outcome.t0_wall - start), 3)
    analyse(res, outcome, phase)
    plot(ctx, res)
    return res


def analyse(res: Result, outcome: openloop.Outcome, phase: float) -> None:
    per_second: dict[int, dict[str, int]] = {}
    for row in outcome.rows:
        slot = per_second.setdefault(int(row[0]), {"sent": 0, "canary": 0, "default": 0, "errors": 0})
        slot["sent"] += 1
        if 200 <= row[3] < 300:
            slot["canary" if row[5].endswith("-canary") else "default"] += 1
        else:
            slot["errors"] += 1
    res.figures["per_second"] = [{"second": s, **v} for s, v in sorted(per_second.items())]
    res.figures.update(sent=outcome.sent, answered=outcome.answered, errors=outcome.errors)
    res.check("0 errors", outcome.errors == 0, f"{outcome.errors} of {outcome.sent}")
    res.check(f"{len(WEIGHTS) - 1} reloads done", len(res.figures["reloads"]) == len(WEIGHTS) - 1)
    edges = [0.0] + [r["at_s"] for r in res.figures["reloads"]] + [float("inf")]
    rows = []
    for i, weight in enumerate(WEIGHTS):
        lo, hi = edges[i] + (SETTLE if i else 0.0), edges[i + 1] if i + 1 < len(edges) else float("inf")
        recs = [r for r in outcome.rows if lo <= r[0] < hi and 200 <= r[3] < 300]
        canary = sum(1 for r in recs if r[5].endswith("-canary"))
        share = round(100 * canary / max(len(recs), 1), 1)
        rows.append([weight, len(recs), share])
        # exact at 0 and 100; at 50 the split alternates, so a window may hold one more of either, and 5 % slack
        slack = 0.0 if weight in (0, 100) else max(1.0, 0.05 * len(recs))
        res.check(
            f"{weight} % phase: canary share {share} %",
            bool(recs) and abs(canary - len(recs) * weight / 100) <= slack,
            f"{canary} of {len(recs)}",
        )
    res.figures["phases"] = [dict(zip(("percent", "requests", "canary_share"), r)) for r in rows]
    res.tables.append(
        Table(
            f"canary share per phase ({SETTLE:g} s after each reload left out)", ["weight %", "requests", "canary share %"], rows
        )
    )
    res.tables.append(
        Table(
            "per second (by send time)",
            ["second", "sent", "default", "canary", "errors"],
            [[s["second"], s["sent"], s["default"], s["canary"], s["errors"]] for s in res.figures["per_second"]],
        )
    )


def plot(ctx: Context, res: Result) -> None:
    plt = pyplot()
    if plt is None:
        return
    rows = res.figures["per_second"]
    fig, ax = plt.subplots(figsize=(8, 3))
    secs = [r["second"] for r in rows]
    ax.bar(secs, [r["default"] for r in rows], width=0.9, align="edge", label="default")
    ax.bar(secs, [r["canary"] for r in rows], width=0.9, align="edge", bottom=[r["default"] for r in rows], label="canary")
    ax.bar(
        secs,
        [r["errors"] for r in rows],
        width=0.9,
        align="edge",
        bottom=[r["default"] + r["canary"] for r in rows],
        label="errors",
        color="red",
    )
    for r in res.figures["reloads"]:
        ax.axvline(r["at_s"], color="black", linestyle=":")
    ax.set_xlabel("second (reloads dotted)")
    ax.set_ylabel("responses")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(ctx.out / "canary.png", dpi=100)
    plt.close(fig)
    res.plots.append("canary.png")
