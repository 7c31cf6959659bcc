"""scale: the control plane with 100, 1,000 and 10,000 services (a default and a 20 % canary each, on
the static backend): spawn to the first 200, `POST /admin/reload` with one service edited while a
probe sends a request every 10 ms to another (its worst latency: did the data plane stall?), 10
reloads at once, a reload changing every service, RSS. loadtests/scale_bench.py's measurement."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys

from loadtests import scale_bench
from loadtests.harness.report import Context, Result, Table

TITLE = "control plane at 100 / 1,000 / 10,000 services: start, reloads, probe during reloads, RSS"


def run(ctx: Context) -> Result:
    sizes = ctx.pick([20], [100, 1000], [100, 1000, 10000])
    args = argparse.Namespace(sizes=sizes, gateway_cmd=f"{shlex.quote(sys.executable)} -m gateway")
    rows = asyncio.run(scale_bench.main_async(args))
    res = Result(figures={"rows": rows})
    res.tables.append(
        Table(
            "per size (seconds; RSS in MiB)",
            [
                "services",
                "start to healthy",
                "reload (one edited)",
                "worst probe during it",
                "10 reloads at once",
                "reloads run",
                "every service changed",
                "worst probe during it",
                "RSS start → after",
            ],
            [
                [
                    r["services"],
                    r["start_to_healthy_s"],
                    r["reload_s"],
                    r["worst_probe_during_reload_s"],
                    r["ten_reloads_s"],
                    r["ten_reloads_ran"],
                    r["reload_all_changed_s"],
                    r["worst_probe_during_reload_all_changed_s"],
                    f"{r['rss_after_start_mib']} → {r['rss_after_reloads_mib']}",
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        res.check(
            f"{r['services']:,} services: reload accepted, probe never failed",
            bool(r["reload_ok"]) and r["probe_errors"] == 0,
            f"probe errors {r['probe_errors']}",
        )
    return res
