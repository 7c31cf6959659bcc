"""ceiling: closed-loop throughput (wrk, 64 connections) direct to a backend and through nginx, HAProxy
and the gateway, each proxy pinned to one core and loaded alone, same backend and load; the order
rotates each round and the median is reported, with the ratios to direct and to nginx."""

from __future__ import annotations

from typing import Any

from loadtests.harness import wrk
from loadtests.harness.procs import Stack
from loadtests.harness.report import Context, Result, Table, pyplot
from loadtests.harness.stats import median, ratio
from loadtests.harness.targets import HOST, PROXIES, available, start_nginx_backend, start_proxy

TITLE = "closed-loop ceiling: direct vs nginx vs HAProxy vs the gateway, each proxy on one core"
CONNECTIONS = 64


def run(ctx: Context) -> Result:
    rounds, seconds = ctx.pick((1, 1.0), (1, 4.0), (3, 8.0))
    names = ["direct", *(p for p in PROXIES if available(p))]
    res = Result(figures={"rounds": rounds, "seconds": seconds, "connections": CONNECTIONS, "runs": {n: [] for n in names}})
    skipped = [p for p in PROXIES if not available(p)]
    if skipped:
        res.notes.append(f"not installed, left out: {', '.join(skipped)}")
    runs: dict[str, list[dict[str, Any]]] = res.figures["runs"]
    with Stack(ctx.work) as stack:
        # backend and wrk on core 1, the proxy under test alone on core 0
        backend = start_nginx_backend(stack, cpu=1)
        targets = {name: start_proxy(stack, name, backend.port, cpu=0) for name in names}
        for t in targets.values():  # warm-up: connections, caches, the gateway's first requests
            wrk.run(t.port, HOST, connections=CONNECTIONS, seconds=1, cpu=1)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                runs[name].append(wrk.run(targets[name].port, HOST, connections=CONNECTIONS, seconds=seconds, cpu=1))
    rps = {n: median([x["rps"] for x in runs[n]]) for n in names}
    res.figures["median_rps"] = rps
    res.figures["ratio_to_direct"] = {n: ratio(rps[n], rps["direct"]) for n in names}
    res.figures["ratio_to_nginx"] = {n: ratio(rps[n], rps.get("nginx")) for n in names}
    # the same ratio within each round (seconds apart), then its median: steadier when the machine is shared
    per_round = {n: [ratio(a["rps"], b["rps"]) for a, b in zip(runs[n], runs.get("nginx", []))] for n in names}
    res.figures["ratio_to_nginx_per_round"] = per_round
    res.figures["ratio_to_nginx_round_median"] = {n: median([x for x in v if x is not None]) for n, v in per_round.items()}
    rows = []
    for n in names:
        p99 = median([x.get("p99_ms", 0.0) for x in runs[n]])
        rows.append(
            [
                n,
                rps[n],
                min(x["rps"] for x in runs[n]),
                max(x["rps"] for x in runs[n]),
                p99,
                res.figures["ratio_to_direct"][n],
                res.figures["ratio_to_nginx"][n],
                res.figures["ratio_to_nginx_round_median"][n],
            ]
        )
        bad = sum(x["non2xx"] + x["socket_errors"] for x in runs[n])
        res.check(f"{n}: no errors", bad == 0, f"{bad} non-2xx or socket errors")
    res.tables.append(
        Table(
            f"wrk -c{CONNECTIONS}, {rounds} round(s) x {seconds:g} s per target (median req/s)",
            ["target", "req/s", "min", "max", "p99 ms", "/ direct", "/ nginx", "/ nginx, per round (median)"],
            rows,
        )
    )
    plot(ctx, res, rps)
    return res


def plot(ctx: Context, res: Result, rps: dict[str, float | None]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(list(rps), [v or 0 for v in rps.values()], color=["grey", "tab:green", "tab:blue", "tab:orange"][: len(rps)])
    ax.set_ylabel("req/s (median)")
    ax.set_title(f"closed-loop ceiling, wrk -c{CONNECTIONS}, proxy on one core")
    fig.tight_layout()
    fig.savefig(ctx.out / "ceiling.png", dpi=100)
    plt.close(fig)
    res.plots.append("ceiling.png")
