"""soak: mixed traffic through the gateway (keep-alive, pipelined, uploads, streams, slow readers,
WebSockets, one request per connection, a stalled reader, bad requests; loadtests/soak.py's mix),
every answer checked, the gateway's RSS and open descriptors sampled each second: both must stay flat
after the warm-up."""

from __future__ import annotations

import argparse
import asyncio
import sys

from loadtests import soak as mix
from loadtests.harness.gateway import start_gateway
from loadtests.harness.procs import Stack, free_port, wait_port
from loadtests.harness.report import Context, Result, Table, pyplot

TITLE = "mixed traffic, every answer checked, RSS and descriptors flat"


def run(ctx: Context) -> Result:
    seconds, warmup = ctx.pick((6.0, 2.0), (25.0, 8.0), (120.0, 20.0))
    args = argparse.Namespace(seconds=seconds, warmup=warmup, rss_growth=8.0, fd_growth=24)
    with Stack(ctx.work) as stack:
        port = free_port()
        replica = stack.start("soak-replica", [sys.executable, str(mix.HERE / "soak_replica.py"), str(port)], cpu=1)
        wait_port(port, replica)
        gw = start_gateway(stack, mix.gateway_config(port), cpu=0)
        traffic, samples = asyncio.run(mix.run(args, gw.port, gw.proc.pid))
        alive = gw.proc.alive() and replica.alive()
    figures = mix.summarise(traffic, samples, args, alive)
    res = Result(figures=figures)
    r, f = figures["rss_mib"], figures["fds"]
    res.tables.append(
        Table(
            f"{seconds:g} s of mixed traffic, warm-up {warmup:g} s",
            ["", "start", "after warm-up", "max after warm-up", "end", "growth after warm-up", "allowed"],
            [
                [
                    "RSS MiB",
                    r["start"],
                    r["after_warmup"],
                    r["max_after_warmup"],
                    r["end"],
                    r["growth_after_warmup"],
                    args.rss_growth,
                ],
                [
                    "open fds",
                    f["start"],
                    f["max_warmup"],
                    f["max_after_warmup"],
                    f["end"],
                    f["growth_after_warmup"],
                    args.fd_growth,
                ],
            ],
        )
    )
    answered = sum(figures["answered_correctly"].values())
    res.tables.append(
        Table(
            "answers by kind",
            ["kind", "correct", "wrong"],
            [[k, v, figures["wrong"].get(k, 0)] for k, v in sorted(figures["answered_correctly"].items())],
        )
    )
    res.check(
        "RSS and descriptors flat", figures["flat"], f"RSS {r['growth_after_warmup']:+.1f} MiB, fds {f['growth_after_warmup']:+d}"
    )
    res.check("no wrong answer", not figures["wrong"], f"{answered} correct, wrong: {figures['wrong'] or 'none'}")
    res.check("gateway and replica alive", alive)
    plot(ctx, res)
    return res


def plot(ctx: Context, res: Result) -> None:
    plt = pyplot()
    if plt is None:
        return
    samples = res.figures["samples"]
    fig, ax = plt.subplots(figsize=(7, 3))
    t = [s["t"] for s in samples]
    ax.plot(t, [s["rss_mib"] for s in samples], color="tab:blue", label="RSS MiB")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    fds = ax.twinx()
    fds.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open fds")
    fds.set_ylabel("open descriptors")
    fds.set_ylim(bottom=0)
    ax.axvline(res.figures["warmup"], color="grey", linestyle=":")
    ax.set_xlabel("seconds (warm-up dotted)")
    fig.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(ctx.out / "soak.png", dpi=100)
    plt.close(fig)
    res.plots.append("soak.png")
