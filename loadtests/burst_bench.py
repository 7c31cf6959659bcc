#!/usr/bin/env python3
"""Scale from zero under stepped open-loop load (Knative's scale-from-zero load test, one machine).

Part 1, burst: starts ``gateway serve`` (local backend) with one revision at ZERO replicas running
loadtests/burst_replica.py (sleeps ``--ms`` per request), then fires requests open-loop at fixed
rates in steps (default 10 -> 20 -> 40 -> 80 -> 120 -> 160 rps, 10 s each; ``--quick``: 4 s each),
like Knative's vegeta-based tests: request k of a step leaves at step_start + k/rate whatever the
earlier ones are doing. One aiohttp ClientSession (connector limit ``--connections``) carries the
load; per request it records scheduled/actual start, latency, status, ``X-Gateway-Cold-Start``.
Meanwhile a monitor samples ``/admin/services`` every 250 ms (ready, desired, stable, panic,
panicking, queued, in_flight, endpoints), the CPU (whole machine and the gateway process) and,
every 500 ms, ``/stats`` of every current replica. Replicas also write their final stats when
stopped (``$BURST_STATS_DIR``), so replicas scaled down mid-run are accounted for exactly.

Checks (exit 1 if one fails): every fired request answered, all 200 (non-200 and exceptions
counted), every replica's max_in_flight <= target (the container-concurrency breaker), replicas
served exactly the requests answered 200, and the gateway stopped cleanly.

Part 2, demo cold start: ``gateway serve -f config/demo.yaml`` (iris ONNX model, starts at zero),
``--demo-runs`` fresh gateways; per run one V1 predict from zero, timed on the client, split with the
gateway's own log timestamps (``... replica on ... ready after X s`` at INFO, millisecond stamps)
into: request sent -> replica spawned -> replica seen ready -> response at the client; plus the
activator's own wait (``gateway_cold_start_seconds``) and warm latencies through the gateway and
direct to the replica for comparison.

Writes loadtests/results/burst.json (settings, every request, every sample, replicas, cold start),
burst.csv (the 250 ms time series), burst_seconds.csv (per second: sent, answered, p50/p95/max) and
burst.png (matplotlib, Agg). See loadtests/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPLICA = HERE / "burst_replica.py"
NAME = "burst"
HOST = f"{NAME}.default.example.com"
DEMO_HOST = "iris.default.example.com"
SEED_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
READY_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: (\S+) replica on (\S+) ready after ([\d.]+)s")


class BenchError(Exception):
    pass


# -- gateway process ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProc:
    """``gateway serve`` in its own session; stop() = SIGTERM, wait (it stops its replicas), SIGKILL."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.state_dir = workdir / "state"
        self.log_path = workdir / "gateway.log"
        self.argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "-f",
            str(config),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--admin-listen",
            f"127.0.0.1:{self.admin_port}",
            "--state-dir",
            str(self.state_dir),
            "--log-level",
            "info",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"gateway pid {self.proc.pid} still running {timeout:g}s after SIGTERM: SIGKILL", file=sys.stderr)
                self.proc.kill()  # its replicas die with it (PR_SET_PDEATHSIG)
                self.proc.wait()
        self.stop_seconds = time.monotonic() - t
        self.exit_code = self.proc.returncode
        return self.exit_code

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def ready_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            m = READY_RE.match(line)
            if m:
                stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
                out.append({"t_log": stamp, "revision": m.group(2), "endpoint": m.group(3), "ready_after": float(m.group(4))})
        return out


async def wait_gateway(gw: GatewayProc, session: aiohttp.ClientSession, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if gw.proc is not None and gw.proc.poll() is not None:
            raise BenchError(f"gateway exited with {gw.proc.returncode} at start:\n{gw.log_text()[-2000:]}")
        try:
            async with session.get(f"{gw.admin}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise BenchError(f"gateway not ready after {within:g}s:\n{gw.log_text()[-2000:]}")


async def revision(session: aiohttp.ClientSession, gw: GatewayProc) -> dict[str, Any]:
    async with session.get(f"{gw.admin}/admin/services") as r:
        doc = await r.json()
    return doc["services"][0]["revisions"][0]  # type: ignore[no-any-return]


async def metrics_text(session: aiohttp.ClientSession, gw: GatewayProc) -> str:
    async with session.get(f"{gw.admin}/metrics") as r:
        return await r.text()


def prom_value(text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? ([-+eE.\dinfNa]+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    return total if found else None


def status_codes(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^gateway_requests_total\{(.*)\} ([\d.eE+]+)$", line)
        if m:
            code = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))).get("code", "?")
            out[code] = out.get(code, 0) + float(m.group(2))
    return out


# -- CPU ------------------------------------------------------------------------------------------
def cpu_total() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as fh:
        vals = [float(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    return sum(vals) - idle, sum(vals)


def children_of(ppid: int) -> list[int]:
    """Direct children of a process (the gateway's replicas), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_of(pid: int) -> float:
    """utime+stime of a process in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def wait_idle(limit: float, threshold: float = 25.0) -> float:
    """Machine CPU busy % over 1 s, waiting (up to ``limit`` s) for it to drop under ``threshold``:
    another benchmark on the same 2 cores would skew both."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = cpu_total()
        time.sleep(1.0)
        b1, t1 = cpu_total()
        busy = round(100 * (b1 - b0) / max(t1 - t0, 1e-9), 1)
        if busy < threshold or time.monotonic() > deadline:
            if busy >= threshold:
                print(
                    f"warning: machine {busy}% busy before the run (other load); results will be skewed",
                    file=sys.stderr,
                )
            return busy
        print(f"machine {busy}% busy (other load), waiting for it to go idle ...", file=sys.stderr, flush=True)
        time.sleep(4.0)


# -- burst --------------------------------------------------------------------------------------
def burst_config(path: Path, args: argparse.Namespace, stats_dir: Path) -> None:
    path.write_text(
        f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  autoscaler:
    stableWindow: {args.stable_window}
    scaleToZeroGracePeriod: {args.grace}
    tickInterval: {args.tick}
{f"    scaleDownDelay: {args.scale_down_delay}{chr(10)}" if args.scale_down_delay else ""}    initialScale: 0
    allowZeroInitialScale: true
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: {NAME}
spec:
  default:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(REPLICA))}, "{{port}}"]
    env:
      BURST_STATS_DIR: {json.dumps(str(stats_dir))}
  service:
    minScale: 0
    maxScale: {args.max_scale}
    target: {args.target}
    targetUtilization: "{args.util}"
"""
    )


def schedule(steps: list[float], step_seconds: float) -> list[tuple[int, float]]:
    """(step index, offset in seconds) of every request: constant pacing within a step."""
    out: list[tuple[int, float]] = []
    for i, rate in enumerate(steps):
        n = round(rate * step_seconds)
        out.extend((i, i * step_seconds + k / rate) for k in range(n))
    return out


class Monitor:
    def __init__(self, gw: GatewayProc, session: aiohttp.ClientSession, t0: float, interval: float) -> None:
        self.gw, self.session, self.t0, self.interval = gw, session, t0, interval
        self.samples: list[dict[str, Any]] = []
        self.replicas: dict[int, dict[str, Any]] = {}  # pid -> last /stats seen
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def poll_stats(self, endpoints: list[str]) -> None:
        async def one(url: str) -> None:
            try:
                async with self.session.get(f"{url}/stats", timeout=aiohttp.ClientTimeout(total=1)) as r:
                    s = await r.json()
            except (TimeoutError, aiohttp.ClientError, ValueError):
                return  # a replica being stopped: its exit file has the final figures
            s["url"] = url
            s["t_polled"] = time.time() - self.t0
            self.replicas[s["pid"]] = s

        await asyncio.gather(*(one(u) for u in endpoints))

    async def run(self) -> None:
        gw_pid = self.gw.proc.pid  # type: ignore[union-attr]
        prev: dict[str, Any] | None = None
        rep_prev: dict[int, float] = {}
        n = 0
        while not self.stop.is_set():
            tick = time.monotonic()
            busy, total = cpu_total()  # CPU readings first: consecutive deltas span one interval
            cur = {"busy": busy, "total": total, "gw": cpu_of(gw_pid), "lg": sum(os.times()[:2]), "mono": tick}
            rep_now = {pid: cpu_of(pid) for pid in children_of(gw_pid)}
            cpu: dict[str, float | None] = {
                "cpu_machine_pct": None,
                "cpu_gateway_pct": None,
                "cpu_loadgen_pct": None,
                "cpu_replicas_pct": None,
            }
            if prev is not None:
                dt = max(tick - prev["mono"], 1e-9)
                cpu = {
                    # whole machine: 100 % = every core busy (nproc cores)
                    "cpu_machine_pct": round(100 * (busy - prev["busy"]) / max(total - prev["total"], 1e-9), 1),
                    # processes: 100 % = one core
                    "cpu_gateway_pct": round(100 * (cur["gw"] - prev["gw"]) / dt, 1),
                    "cpu_loadgen_pct": round(100 * (cur["lg"] - prev["lg"]) / dt, 1),
                    "cpu_replicas_pct": round(100 * sum(v - rep_prev.get(pid, 0.0) for pid, v in rep_now.items()) / dt, 1),
                }
            prev, rep_prev = cur, rep_now
            try:
                rev = await revision(self.session, self.gw)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                self.errors.append(f"{time.time() - self.t0:.2f}: {exc!r}")
                rev = None
            if rev is not None:
                self.samples.append(
                    {
                        "t": round(time.time() - self.t0, 3),
                        **{
                            k: rev.get(k)
                            for k in (
                                "ready",
                                "desired",
                                "stable",
                                "panic",
                                "panicking",
                                "queued",
                                "in_flight",
                                "state",
                            )
                        },
                        "endpoints": len(rev.get("endpoints") or []),
                        **cpu,
                    }
                )
                if n % 2 == 0:
                    await self.poll_stats(list(rev.get("endpoints") or []))
            n += 1
            try:
                await asyncio.wait_for(self.stop.wait(), max(0.0, self.interval - (time.monotonic() - tick)))
            except TimeoutError:
                pass


async def fire(session: aiohttp.ClientSession, url: str, rec: dict[str, Any], t0: float) -> None:
    start = time.time()
    rec["start"] = round(start - t0, 4)
    try:
        async with session.get(url, headers={"Host": HOST}) as r:
            rec["ttfb"] = round(time.time() - start, 4)
            await r.read()
            rec["status"] = r.status
            rec["cold"] = r.headers.get("X-Gateway-Cold-Start") == "true"
    except Exception as exc:  # noqa: BLE001 - every failure is a result
        rec["error"] = f"{type(exc).__name__}: {exc}"[:200]
    rec["latency"] = round(time.time() - start, 4)


async def run_burst(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    stats_dir = work / "replica-stats"
    stats_dir.mkdir()
    cfg = work / "burst.yaml"
    burst_config(cfg, args, stats_dir)
    gw = GatewayProc(cfg, work)
    result: dict[str, Any] = {"config_yaml": cfg.read_text(), "gateway_argv": gw.argv}
    plan = schedule(args.steps, args.step_seconds)
    requests: list[dict[str, Any]] = [{"i": i, "step": s, "sched": round(o, 4)} for i, (s, o) in enumerate(plan)]
    try:
        gw.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as mon_session:
            await wait_gateway(gw, mon_session)
            rev0 = await revision(mon_session, gw)
            if rev0["ready"] != 0 or rev0["desired"] != 0:
                raise BenchError(f"revision not at zero before the load: {rev0}")
            connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=args.timeout)) as session:
                t0 = time.time()
                mon = Monitor(gw, mon_session, t0, 0.25)
                mon_task = asyncio.create_task(mon.run())
                url = f"{gw.base}/work?ms={args.ms}"
                lg_cpu0 = sum(os.times()[:2])
                tasks = await fire_on_schedule(session, url, requests, t0)
                t_fired = time.time() - t0
                _done, pending = await asyncio.wait(tasks, timeout=args.timeout + 5) if tasks else (set(), set())
                for t in pending:
                    t.cancel()
                t_answered = time.time() - t0
                lg_cpu = sum(os.times()[:2]) - lg_cpu0
                await asyncio.sleep(args.tail)
                mon.stop.set()
                await mon_task
                metrics = await metrics_text(mon_session, gw)
                rev_end = await revision(mon_session, gw)
    finally:
        code = gw.stop()
    result.update(
        t0=t0,
        t_fired=round(t_fired, 3),
        t_answered=round(t_answered, 3),
        loadgen_cpu_seconds=round(lg_cpu, 3),
        gateway_exit_code=code,
        gateway_stop_seconds=gw.stop_seconds,
        requests=requests,
        samples=mon.samples,
        monitor_errors=mon.errors,
        revision_end=rev_end,
        metrics={
            "requests_by_code": status_codes(metrics),
            "cold_start_count": prom_value(metrics, "gateway_cold_start_seconds_count"),
            "cold_start_sum": prom_value(metrics, "gateway_cold_start_seconds_sum"),
        },
    )
    ready_lines = gw.ready_lines()
    result["replicas"] = merge_replicas(mon.replicas, stats_dir, ready_lines, t0)
    result["gateway_ready_lines"] = len(ready_lines)
    return result


async def fire_on_schedule(
    session: aiohttp.ClientSession, url: str, requests: list[dict[str, Any]], t0: float
) -> list[asyncio.Task[None]]:
    """Start every request at its scheduled offset from t0 (late ones at once)."""
    tasks = []
    for rec in requests:
        delay = t0 + rec["sched"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(session, url, rec, t0)))
    return tasks


def merge_replicas(
    polled: dict[int, dict[str, Any]], stats_dir: Path, ready_lines: list[dict[str, Any]], t0: float
) -> list[dict[str, Any]]:
    """Replicas: exit files (exact, written on SIGTERM) merged with the last /stats polled; times from t0."""
    replicas: dict[int, dict[str, Any]] = {}
    for pid, s in polled.items():
        replicas[pid] = {**s, "source": "poll"}
    for f in stats_dir.glob("replica-*.json"):
        s = json.loads(f.read_text())
        replicas[s["pid"]] = {**replicas.get(s["pid"], {}), **s, "source": "exit-file"}
    for r in replicas.values():
        for k in ("t_start", "t_listen", "t_first", "t_last", "t_exit"):
            if r.get(k) is not None:
                r[k] = round(r[k] - t0, 3)
        for line in ready_lines:
            if line["endpoint"].endswith(f":{r['port']}"):
                r["gateway_ready_after"] = line["ready_after"]
                r["gateway_ready_at"] = round(line["t_log"] - t0, 3)
    return sorted(replicas.values(), key=lambda r: r.get("t_start") or 0)


# -- analysis -------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def lat_summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [r["latency"] for r in recs if r.get("status") == 200]
    return {
        "requests": len(recs),
        "ok": len(lat),
        "non_200": sum(1 for r in recs if "status" in r and r["status"] != 200),
        "exceptions": sum(1 for r in recs if "error" in r),
        "unanswered": sum(1 for r in recs if "latency" not in r),
        "cold": sum(1 for r in recs if r.get("cold")),
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p99_ms": pct(lat, 99),
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
        "max_send_lag_ms": round(max((r["start"] - r["sched"] for r in recs if "start" in r), default=0) * 1000, 1),
    }


def cmax(rows: list[dict[str, Any]], key: str) -> float | None:
    return max((x[key] for x in rows if x.get(key) is not None), default=None)


def cmean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [x[key] for x in rows if x.get(key) is not None]
    return round(sum(vals) / len(vals), 1) if vals else None


def analyse(res: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    reqs, samples = res["requests"], res["samples"]
    steps = []
    for i, rate in enumerate(args.steps):
        lo, hi = i * args.step_seconds, (i + 1) * args.step_seconds
        s = lat_summary([r for r in reqs if r["step"] == i])
        during = [x for x in samples if lo <= x["t"] < hi]
        s.update(
            rate=rate,
            t=[lo, hi],
            ready_max=max((x["ready"] for x in during), default=None),
            desired_max=max((x["desired"] for x in during), default=None),
            ready_end=during[-1]["ready"] if during else None,
            panicking_pct=round(100 * sum(1 for x in during if x["panicking"]) / len(during)) if during else None,
            queued_max=max((x["queued"] for x in during), default=None),
            cpu_machine_max=cmax(during, "cpu_machine_pct"),
            cpu_machine_mean=cmean(during, "cpu_machine_pct"),
            cpu_gateway_mean=cmean(during, "cpu_gateway_pct"),
            cpu_loadgen_mean=cmean(during, "cpu_loadgen_pct"),
            cpu_replicas_mean=cmean(during, "cpu_replicas_pct"),
        )
        steps.append(s)
    total = lat_summary(reqs)
    first = min(reqs, key=lambda r: r["sched"])
    n_sec = math.ceil(max([r.get("start", 0) + r.get("latency", 0) for r in reqs] + [samples[-1]["t"] if samples else 0]))
    seconds = []
    for sec in range(n_sec + 1):
        started = [r for r in reqs if "start" in r and sec <= r["start"] < sec + 1]
        lat = [r["latency"] for r in started if r.get("status") == 200]
        seconds.append(
            {
                "second": sec,
                "sent": len(started),
                "ok": len(lat),
                "answered": sum(1 for r in reqs if "latency" in r and sec <= r["start"] + r["latency"] < sec + 1),
                "p50_ms": pct(lat, 50),
                "p95_ms": pct(lat, 95),
                "max_ms": round(max(lat) * 1000, 1) if lat else None,
            }
        )
    reps = res["replicas"]
    served = sum(r.get("served", 0) for r in reps)
    checks = {
        "all_answered": total["unanswered"] == 0,
        "zero_errors": total["non_200"] == 0 and total["exceptions"] == 0,
        "max_in_flight_le_target": all(r.get("max_in_flight", 0) <= args.target for r in reps),
        "replicas_accounted_exactly": all(r["source"] == "exit-file" for r in reps),
        "served_equals_ok": served == total["ok"],
        "max_scale_respected": max((x["desired"] for x in samples), default=0) <= args.max_scale,
        "started_at_zero": bool(samples) and samples[0]["ready"] == 0,
        "gateway_stopped_cleanly": res["gateway_exit_code"] == 0,
    }
    timeline = []  # changes of (ready, desired, panicking)
    prev = None
    for x in samples:
        key = (x["ready"], x["desired"], x["panicking"])
        if key != prev:
            timeline.append(
                {
                    "t": x["t"],
                    "ready": x["ready"],
                    "desired": x["desired"],
                    "panicking": x["panicking"],
                    "stable": x["stable"],
                    "panic": x["panic"],
                    "queued": x["queued"],
                }
            )
            prev = key
    return {
        "steps": steps,
        "total": total,
        "seconds": seconds,
        "checks": checks,
        "served_by_replicas": served,
        "first_request": {
            "latency_ms": round(first.get("latency", float("nan")) * 1000, 1),
            "cold": first.get("cold"),
            "status": first.get("status"),
        },
        "timeline": timeline,
        "replicas_max": max((x["ready"] for x in samples), default=0),
        "cpu_machine_max_pct": cmax(samples, "cpu_machine_pct"),
        "cpu_gateway_max_pct": cmax(samples, "cpu_gateway_pct"),
        "cpu_loadgen_max_pct": cmax(samples, "cpu_loadgen_pct"),
    }


# -- demo cold start --------------------------------------------------------------------------------
async def demo_once(work: Path, warm_n: int) -> dict[str, Any]:
    gw = GatewayProc(REPO / "config" / "demo.yaml", work)
    out: dict[str, Any] = {}
    try:
        gw.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            await wait_gateway(gw, s)
            rev = await revision(s, gw)
            if rev["ready"] != 0:
                raise BenchError(f"demo revision not at zero: {rev}")
            url = f"{gw.base}/v1/models/iris:predict"
            body = {"instances": SEED_ROWS}
            t_send = time.time()
            async with s.post(url, json=body, headers={"Host": DEMO_HOST}) as r:
                t_headers = time.time()
                doc = await r.json()
                t_done = time.time()
                out.update(status=r.status, cold=r.headers.get("X-Gateway-Cold-Start") == "true", body=doc)
            if out["status"] != 200 or doc != {"predictions": [1, 1]}:
                raise BenchError(f"demo cold request failed: {out}")
            warm_gw, warm_direct = [], []
            endpoint = (await revision(s, gw))["endpoints"][0]
            for _ in range(warm_n):
                t = time.perf_counter()
                async with s.post(url, json=body, headers={"Host": DEMO_HOST}) as r:
                    await r.read()
                warm_gw.append(time.perf_counter() - t)
                t = time.perf_counter()
                async with s.post(f"{endpoint}/v1/models/iris:predict", json=body) as r:
                    await r.read()
                warm_direct.append(time.perf_counter() - t)
            metrics = await metrics_text(s, gw)
    finally:
        gw.stop()
    lines = gw.ready_lines()
    if not lines:
        raise BenchError("no 'ready after' line in the gateway log")
    ready = lines[0]
    t_spawn = ready["t_log"] - ready["ready_after"]

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 1)

    out.update(
        total_ms=ms(t_done - t_send),
        ttfb_ms=ms(t_headers - t_send),
        send_to_spawn_ms=ms(t_spawn - t_send),
        spawn_to_ready_ms=ms(ready["ready_after"]),
        ready_to_first_byte_ms=ms(t_headers - ready["t_log"]),
        activator_wait_ms=ms(prom_value(metrics, "gateway_cold_start_seconds_sum") or float("nan")),
    )
    out.update(
        # the activator's wait (enqueue -> replica granted) minus the two log-timed phases before it
        ready_to_grant_ms=round(out["activator_wait_ms"] - out["send_to_spawn_ms"] - out["spawn_to_ready_ms"], 1),
        grant_to_first_byte_ms=round(out["ttfb_ms"] - out["activator_wait_ms"], 1),
        warm_gateway_p50_ms=ms(float(np.median(warm_gw))),
        warm_direct_p50_ms=ms(float(np.median(warm_direct))),
    )
    out.pop("body", None)
    return out


async def direct_first_request(work: Path) -> dict[str, Any]:
    """The same model server started by hand (no gateway): spawn -> ready (polled every 20 ms, as the
    gateway's prober does) -> first predict. Its first-request time is the replica's own share of
    the gateway's "ready -> first byte"."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "modelserver",
        "--model",
        "models/iris.onnx",
        "--name",
        "iris",
        "--port",
        str(port),
    ]
    log = (work / "modelserver.log").open("wb")
    t_spawn = time.time()
    proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; the process is polled over HTTP
        argv,
        cwd=REPO / "config",
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            deadline = time.time() + 60
            while True:
                if proc.poll() is not None or time.time() > deadline:
                    raise BenchError(f"standalone modelserver not ready: {(work / 'modelserver.log').read_text()[-1000:]}")
                try:
                    async with s.get(f"{base}/v2/health/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
            t_ready = time.time()
            async with s.post(f"{base}/v1/models/iris:predict", json={"instances": SEED_ROWS}) as r:
                t_headers = time.time()
                await r.read()
                if r.status != 200:
                    raise BenchError(f"standalone predict answered {r.status}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "spawn_to_ready_ms": round((t_ready - t_spawn) * 1000, 1),
        "first_request_ms": round((t_headers - t_ready) * 1000, 1),
    }


async def run_demo(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    runs, direct = [], []
    for i in range(args.demo_runs):
        d = work / f"demo{i}"
        d.mkdir()
        runs.append(await demo_once(d, 20))
        direct.append(await direct_first_request(d))

    def med(rows: list[dict[str, Any]], k: str) -> float:
        return round(float(np.median([r[k] for r in rows])), 1)

    median = {k: med(runs, k) for k in runs[0] if k.endswith("_ms")}
    median_direct = {k: med(direct, k) for k in direct[0]}
    return {
        "runs": runs,
        "direct_runs": direct,
        "median": median,
        "median_direct": median_direct,
        # ready seen by the gateway -> first byte at the client, minus the replica's own first-request time
        "gateway_share_after_ready_ms": round(median["ready_to_first_byte_ms"] - median_direct["first_request_ms"], 1),
    }


# -- output -----------------------------------------------------------------------------------------
def write_outputs(out_dir: Path, stem: str, result: dict[str, Any], summary: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps({**result, "summary": summary}, indent=1, default=str))
    samples = result["burst"]["samples"]
    if samples:
        with (out_dir / f"{stem}.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(samples[0]))
            w.writeheader()
            w.writerows(samples)
    with (out_dir / f"{stem}_seconds.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(summary["seconds"][0]))
        w.writeheader()
        w.writerows(summary["seconds"])


def plot(path: Path, result: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, secs = result["burst"]["samples"], summary["seconds"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    x = [s["second"] + 0.5 for s in secs]
    ax1.step([s["second"] for s in secs], [s["sent"] for s in secs], where="post", color="tab:blue", label="requests sent /s")
    ax1.set_ylabel("requests sent per second", color="tab:blue")
    ax1b = ax1.twinx()
    ax1b.plot(x, [s["p95_ms"] for s in secs], "o-", color="tab:red", ms=3, label="p95 latency (by send second)")
    ax1b.plot(x, [s["p50_ms"] for s in secs], "-", color="salmon", lw=1, label="p50 latency")
    ax1b.set_ylim(bottom=0)
    ax1b.set_ylabel("latency ms", color="tab:red")
    ax1b.axhline(args.ms, color="grey", ls=":", lw=1)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax1b.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax1.set_title(
        f"Scale from zero: open-loop steps {'/'.join(f'{r:g}' for r in args.steps)} rps x {args.step_seconds:g}s, "
        f"{args.ms} ms/request, target {args.target}, util {args.util}%, maxScale {args.max_scale}\n"
        f"stableWindow {args.stable_window} (panic window 10%), tick {args.tick}"
        + (f", scaleDownDelay {args.scale_down_delay}" if args.scale_down_delay else ""),
        fontsize=10,
    )
    t = [s["t"] for s in samples]
    ax2.step(t, [s["ready"] for s in samples], where="post", color="tab:green", lw=2, label="ready replicas")
    ax2.step(t, [s["desired"] for s in samples], where="post", color="black", ls="--", label="desired replicas")
    ax2.set_ylabel("replicas")
    ax2.set_xlabel("seconds since the first request")
    ax2b = ax2.twinx()
    ax2b.plot(
        t,
        [s["stable"] if s["stable"] is not None else math.nan for s in samples],
        color="tab:purple",
        label="stable concurrency",
    )
    ax2b.plot(
        t,
        [s["panic"] if s["panic"] is not None else math.nan for s in samples],
        color="tab:orange",
        alpha=0.8,
        label="panic concurrency",
    )
    ax2b.step(t, [s["queued"] for s in samples], where="post", color="grey", lw=1, ls=":", label="queued in activator")
    ax2b.set_ylabel("concurrency / requests (revision total)")
    for s0, s1 in itertools.pairwise(samples):
        if s0["panicking"]:
            ax2.axvspan(s0["t"], s1["t"], color="orange", alpha=0.12, lw=0)
    for ax in (ax1, ax2):
        for i in range(len(args.steps) + 1):
            ax.axvline(i * args.step_seconds, color="grey", lw=0.5, ls=":")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2 + [], loc="upper left", fontsize=8, title="shaded: panic mode", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict[str, Any], result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nsteps (open loop, {args.step_seconds:g}s each, {args.ms} ms/request, target {args.target}, maxScale {args.max_scale}):"
    )
    print(
        f"{'rps':>5} {'reqs':>5} {'err':>4} {'cold':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'ready':>5} {'desired':>7} {'panic%':>6} {'cpu%':>5}  gw/lg/rep%"
    )
    blank = dict.fromkeys(
        (
            "ready_end",
            "desired_max",
            "panicking_pct",
            "cpu_machine_max",
            "cpu_gateway_mean",
            "cpu_loadgen_mean",
            "cpu_replicas_mean",
        ),
        "",
    )
    for s in summary["steps"] + [dict(summary["total"], rate="all", **blank)]:
        err = s["non_200"] + s["exceptions"] + s["unanswered"]
        print(
            f"{s['rate']!s:>5} {s['requests']:>5} {err:>4} {s['cold']:>4} {s['p50_ms']!s:>7} {s['p95_ms']!s:>7} {s['p99_ms']!s:>7} "
            f"{s['max_ms']!s:>7} {s['ready_end']!s:>5} {s['desired_max']!s:>7} {s['panicking_pct']!s:>6} {s['cpu_machine_max']!s:>5}  "
            f"{s['cpu_gateway_mean']}/{s['cpu_loadgen_mean']}/{s['cpu_replicas_mean']}"
        )
    print(
        "(latencies ms; ready = at step end; desired = max in step; cpu% = machine max over 250 ms samples, 100 = all cores;"
        " gw/lg/rep% = mean % of one core: gateway, load generator, replicas)"
    )
    print("\nreplicas (ready, desired, panicking) changes:")
    print(
        "  " + ", ".join(f"{x['t']:.1f}s {x['ready']}/{x['desired']}{'P' if x['panicking'] else ''}" for x in summary["timeline"])
    )
    print("\nper replica: start(s) ready_after(s) max_in_flight served source")
    for r in result["burst"]["replicas"]:
        print(
            f"  pid {r['pid']}: {r.get('t_start')} {r.get('gateway_ready_after')} {r.get('max_in_flight')} {r.get('served')} {r['source']}"
        )
    f = summary["first_request"]
    print(
        f"\nfirst request: {f['latency_ms']} ms cold={f['cold']}; cold-start responses {summary['total']['cold']}; "
        f"gateway_cold_start_seconds count={result['burst']['metrics']['cold_start_count']}"
    )
    print(f"checks: {summary['checks']}")
    if "demo" in result:
        d = result["demo"]
        print("\ndemo (config/demo.yaml, iris) cold start, median of", len(d["runs"]), "runs:", d["median"])
        print(
            "  standalone modelserver (no gateway):",
            d["median_direct"],
            "-> ready->first byte minus replica's own first request:",
            d["gateway_share_after_ready_ms"],
            "ms",
        )


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop's run when it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 s steps, one demo run")
    p.add_argument("--steps", default="10,20,40,80,120,160", help="request rates per step (rps)")
    p.add_argument("--step-seconds", type=float, default=None, help="seconds per step (default 10, --quick 4)")
    p.add_argument("--ms", type=int, default=100, help="replica sleep per request")
    p.add_argument("--target", type=int, default=5, help="per-replica target and container concurrency")
    p.add_argument("--util", type=int, default=70, help="targetUtilization percent")
    p.add_argument("--max-scale", type=int, default=8)
    p.add_argument("--stable-window", default="20s", help="KPA stable window (panic window = 10%%)")
    p.add_argument("--tick", default="1s", help="autoscaler tick interval")
    p.add_argument("--grace", default="10s", help="scaleToZeroGracePeriod")
    p.add_argument("--scale-down-delay", default=None, help="Knative scaleDownDelay (default: unset = 0)")
    p.add_argument("--name", default="burst", help="output file stem in --out (default burst -> burst.json ...)")
    p.add_argument(
        "--tail", type=float, default=45.0, help="seconds to keep sampling after the last answer (scale-down, to zero)"
    )
    p.add_argument(
        "--idle-wait",
        type=float,
        default=300.0,
        help="wait up to this long for the machine to be idle (<25%% CPU) before starting",
    )
    p.add_argument("--connections", type=int, default=2000, help="aiohttp connector limit")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout")
    p.add_argument("--demo-runs", type=int, default=None, help="cold starts of config/demo.yaml (default 5, --quick 1; 0 = skip)")
    p.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = p.parse_args()
    args.steps = [float(x) for x in args.steps.split(",")]
    args.step_seconds = args.step_seconds or (4.0 if args.quick else 10.0)
    args.demo_runs = args.demo_runs if args.demo_runs is not None else (1 if args.quick else 5)
    if args.quick:
        args.tail = min(args.tail, 5.0)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # runs the finally blocks: the gateway gets its SIGTERM

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: v for k, v in vars(args).items()},
        "machine": {
            "nproc": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
        },
    }
    result["background_cpu_pct"] = wait_idle(args.idle_wait)
    try:
        with tempfile.TemporaryDirectory(prefix="burst_bench.") as tmp:
            work = Path(tmp)
            (work / "burst").mkdir()
            print(f"burst: steps {args.steps} rps x {args.step_seconds:g}s ...", flush=True)
            result["burst"] = run_loop(run_burst(args, work / "burst"))
            if args.demo_runs > 0:
                print(f"demo cold start x {args.demo_runs} ...", flush=True)
                (work / "demo").mkdir()
                result["demo"] = run_loop(run_demo(args, work / "demo"))
    except KeyboardInterrupt:
        print("interrupted; gateway stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"burst_bench: {exc}", file=sys.stderr)
        return 1
    summary = analyse(result["burst"], args)
    out = Path(args.out)
    write_outputs(out, args.name, result, summary)
    plot(out / f"{args.name}.png", result, summary, args)
    report(summary, result, args)
    print(f"\nwrote {out}/{args.name}.json, {args.name}.csv, {args.name}_seconds.csv, {args.name}.png")
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
