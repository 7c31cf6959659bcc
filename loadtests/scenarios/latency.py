"""latency: a fixed open-loop rate against a backend that takes 100 ms, direct and through each proxy;
what each proxy adds at p50/p95/p99 (latency from each request's scheduled send time), and the exact
number of requests sent and answered. Knative's dataplane-probe, at a rate this machine keeps up with."""

from __future__ import annotations

from typing import Any

from loadtests.harness import openloop
from loadtests.harness.procs import Stack
from loadtests.harness.report import Context, Result, Table, pyplot
from loadtests.harness.stats import ms, pct
from loadtests.harness.targets import HOST, PROXIES, available, start_proxy, start_replica_backend

TITLE = "fixed rate against a 100 ms backend: added p50/p95/p99 per proxy"
BACKEND_MS = 100


def measure(outcome: openloop.Outcome) -> dict[str, Any]:
    lat = outcome.latencies()
    return {
        "sent": outcome.sent,
        "answered": outcome.answered,
        "ok": outcome.ok,
        "errors": outcome.errors,
        "p50_ms": ms(pct(lat, 50)),
        "p95_ms": ms(pct(lat, 95)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(max(lat, default=None)),
        "max_send_lag_ms": ms(max((r[1] for r in outcome.rows if r[1] is not None), default=None)),
    }


def run(ctx: Context) -> Result:
    rate, seconds, rounds = ctx.pick((20.0, 1.0, 1), (50.0, 8.0, 1), (100.0, 10.0, 3))
    names = ["direct", *(p for p in PROXIES if available(p))]
    res = Result(figures={"rate_rps": rate, "seconds": seconds, "rounds": rounds, "backend_ms": BACKEND_MS, "targets": {}})
    skipped = [p for p in PROXIES if not available(p)]
    if skipped:
        res.notes.append(f"not installed, left out: {', '.join(skipped)}")
    plan_requests = openloop.steps([rate], seconds, HOST, f"/work?ms={BACKEND_MS}")
    with Stack(ctx.work) as stack:
        backend = start_replica_backend(stack, cpu=1)
        targets = [start_proxy(stack, name, backend.port, cpu=0) for name in names]
        pooled = {t.name: openloop.Outcome(0.0) for t in targets}
        for r in range(rounds):  # the order rotates: a noisy moment on a shared machine does not fall on one target
            for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                outcome = openloop.run(openloop.Plan(target.port, plan_requests), ctx.work, f"load-{target.name}-{r}", cpu=1)
                pooled[target.name].rows += outcome.rows
        for name, outcome in pooled.items():
            res.figures["targets"][name] = measure(outcome)
    figs: dict[str, dict[str, Any]] = res.figures["targets"]
    direct = figs["direct"]
    rows = []
    for name, f in figs.items():
        added = {
            q: None if f[q] is None or direct[q] is None else round(f[q] - direct[q], 1) for q in ("p50_ms", "p95_ms", "p99_ms")
        }
        f["added"] = added
        rows.append([name, f["sent"], f["answered"], f["errors"], f["p50_ms"], f["p95_ms"], f["p99_ms"], *added.values()])
        res.check(f"{name}: every request answered 2xx", f["ok"] == f["sent"], f"{f['ok']} of {f['sent']}")
    res.tables.append(
        Table(
            f"{rate:g} req/s, {rounds} round(s) of {seconds:g} s per target (order rotated), backend {BACKEND_MS} ms; "
            "latency from the scheduled send time (ms)",
            ["target", "sent", "answered", "errors", "p50", "p95", "p99", "+p50", "+p95", "+p99"],
            rows,
        )
    )
    plot(ctx, res, figs)
    return res


def plot(ctx: Context, res: Result, figs: dict[str, dict[str, Any]]) -> None:
    plt = pyplot()
    if plt is None:
        res.notes.append("no plot: matplotlib (the `bench` extra) is not installed")
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(figs)
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar([x + (i - 1) * 0.27 for x in range(len(names))], [figs[n][q] or 0 for n in names], width=0.27, label=q[:-3])
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=BACKEND_MS * 0.9)
    ax.set_title(f"{res.figures['rate_rps']:g} req/s against a {BACKEND_MS} ms backend")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ctx.out / "latency.png", dpi=100)
    plt.close(fig)
    res.plots.append("latency.png")
