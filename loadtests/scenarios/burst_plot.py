"""The burst scenario's picture: requests per second and latency on top, replicas (measured ready and
desired, and the simulator's prediction when there is one) below."""

from __future__ import annotations

from typing import Any

from loadtests.harness import openloop
from loadtests.harness.report import Context, Result, pyplot
from loadtests.harness.stats import pct


def plot(
    ctx: Context, res: Result, outcome: openloop.Outcome, samples: list[dict[str, Any]], predicted: list[dict[str, Any]] | None
) -> None:
    plt = pyplot()
    if plt is None:
        res.notes.append("no plot: matplotlib (the `bench` extra) is not installed")
        return
    by_second: dict[int, list[float]] = {}
    for row in outcome.rows:
        by_second.setdefault(int(row[0]), []).append(row[2] if 200 <= row[3] < 300 else float("nan"))
    secs = sorted(by_second)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.bar(secs, [len(by_second[s]) for s in secs], width=0.9, align="edge", color="lightgrey", label="sent / s")
    top.set_ylabel("requests / s")
    lat = top.twinx()
    lat.plot([s + 0.5 for s in secs], [1000 * (pct(by_second[s], 50) or 0) for s in secs], color="tab:blue", label="p50")
    lat.plot([s + 0.5 for s in secs], [1000 * (pct(by_second[s], 95) or 0) for s in secs], color="tab:red", label="p95")
    lat.set_ylabel("latency from schedule (ms)")
    lat.legend(loc="upper left")
    t = [s["t"] for s in samples]
    bottom.step(t, [s["ready"] for s in samples], where="post", label="ready (measured)", color="tab:green")
    bottom.step(t, [s["desired"] for s in samples], where="post", label="desired (measured)", color="tab:orange", alpha=0.7)
    if predicted:
        bottom.step(
            [r["time"] for r in predicted],
            [r["ready"] for r in predicted],
            where="post",
            label="ready (simulator)",
            color="black",
            linestyle="--",
        )
    for s0, s1 in zip(samples, samples[1:]):
        if s0.get("panicking"):
            bottom.axvspan(s0["t"], s1["t"], color="red", alpha=0.08, lw=0)
    bottom.set_ylabel("replicas")
    bottom.set_xlabel("seconds since the first request (panic mode shaded)")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(ctx.out / "burst.png", dpi=100)
    plt.close(fig)
    res.plots.append("burst.png")
