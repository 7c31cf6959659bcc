#!/usr/bin/env python3
"""Worker processes against nginx's: requests/s of `gateway serve --workers 1` and `--workers 2`, beside an
nginx proxy with `worker_processes 1` and `2`; same backend, same load generator, one run.

    python3 -m loadtests.workers_bench            # ~1.5 min: 3 rounds x 4 targets x 6 s, after a warm-up
    python3 -m loadtests.workers_bench --quick    # ~20 s

The question (issue 11): does the gateway scale with its workers as nginx does with its own? So the
figure is the ratio gateway / nginx at 1 and at 2 processes; the 2-process ratio should be at least
the 1-process one. On a 2-core machine nothing is pinned here: the proxies, the backend nginx
(1 worker) and wrk (2 threads, 64 connections) share both cores, as a proxy with 2 processes must.
The order of the four targets rotates each round; ratios are of the medians, and also per round.

Reuses proxy_bench.py's processes, configs and wrk parsing (see loadtests/README.md). Results:
a table on stdout and loadtests/results/workers_bench.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.proxy_bench import (
    HERE,
    REPO,
    BenchError,
    Stack,
    backend_conf,
    foreign_load,
    free_port,
    gateway_conf,
    machine_info,
    make_big,
    on_signal,
    proxy_conf,
    rotate,
    run_wrk,
    wait_ready,
)

TARGETS = ["nginx-1", "gateway-1", "nginx-2", "gateway-2"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round of 3 s, 1 s warm-up")
    p.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 6, quick 3)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per target (default 2, quick 1)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--out", default=str(HERE / "results" / "workers_bench.json"), help="JSON results path")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (3.0 if a.quick else 6.0)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    return a


def start(args: argparse.Namespace, stack: Stack, d: Path, result: dict[str, Any]) -> dict[str, int]:
    www = d / "www"
    www.mkdir()
    os.chmod(www, 0o755)
    make_big(www / "big", 1 << 20)  # backend_conf serves /big; 1 MiB is enough here
    os.chmod(www / "big", 0o644)
    ports = {name: free_port() for name in ["backend", *TARGETS]}
    (d / "backend.conf").write_text(backend_conf(d, ports["backend"], www))
    (d / "gateway.yaml").write_text(gateway_conf(ports["backend"]))
    configs = {"backend.conf": (d / "backend.conf").read_text(), "gateway.yaml": (d / "gateway.yaml").read_text()}
    cmds = result["commands"]
    argv = ["nginx", "-p", str(d), "-c", str(d / "backend.conf"), "-g", "daemon off;"]
    cmds["backend"] = shlex.join(argv)
    stack.start("backend", argv)
    wait_ready(stack, ports["backend"])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for n in (1, 2):
        name = f"proxy{n}"
        conf = proxy_conf(d, ports[f"nginx-{n}"], ports["backend"]).replace("worker_processes 1;", f"worker_processes {n};")
        conf = conf.replace(f"{d}/proxy.pid", f"{d}/{name}.pid").replace(f"{d}/proxy-error.log", f"{d}/{name}-error.log")
        (d / f"{name}.conf").write_text(conf)
        configs[f"{name}.conf"] = conf
        argv = ["nginx", "-p", str(d), "-c", str(d / f"{name}.conf"), "-g", "daemon off;"]
        cmds[f"nginx-{n}"] = shlex.join(argv)
        stack.start(f"nginx-{n}", argv)
        argv = [sys.executable, "-m", "gateway", "serve", "-f", str(d / "gateway.yaml")]
        argv += ["--listen", f"127.0.0.1:{ports[f'gateway-{n}']}", "--admin-listen", f"127.0.0.1:{free_port()}"]
        argv += ["--state-dir", str(d / f"state{n}"), "--log-level", "warning", "--workers", str(n)]
        cmds[f"gateway-{n}"] = shlex.join(argv)
        stack.start(f"gateway-{n}", argv, env=env)
    result["configs"] = configs
    for name in TARGETS:
        wait_ready(stack, ports[name], timeout=30)
    return ports


def measure(args: argparse.Namespace, stack: Stack, ports: dict[str, int], result: dict[str, Any]) -> None:
    ours = {p.popen.pid for p in stack.procs}
    foreign = result["foreign_processes"]

    def run(name: str, seconds: float, log: list[dict[str, Any]]) -> dict[str, Any]:
        res = run_wrk([], ports[name], args.connections, seconds, log, threads=args.threads)
        stack.check_alive()
        for line in foreign_load(ours):
            # The gateway's workers run in sessions of their own, so not in `ours`; their argv names our temp dir.
            if line not in foreign and str(stack.workdir) not in line:
                foreign.append(line)
                print(f"warning: another load on this machine: {line}", flush=True)
        for problem in res["problems"]:
            result["problems"].append(f"{name}: {problem}")
        return res

    if args.warmup > 0:
        print(f"warm-up {args.warmup:g} s per target ...", flush=True)
        for name in TARGETS:
            run(name, args.warmup, [])
    rps: dict[str, list[float]] = {name: [] for name in TARGETS}
    for r in range(args.rounds):
        for name in rotate(TARGETS, r):
            res = run(name, args.duration, result["wrk_runs"])
            res.update(target=name, round=r + 1)
            rps[name].append(res["rps"])
            print(
                f"round {r + 1}/{args.rounds}: {name:10s} {res['rps']:>10.0f} req/s  p99 {res.get('p99_ms', 0):.2f} ms",
                flush=True,
            )
    medians = {name: statistics.median(values) for name, values in rps.items()}
    result["rps"] = {name: {"median": medians[name], "runs": rps[name]} for name in TARGETS}
    ratios: dict[str, dict[str, Any]] = {}
    for n in (1, 2):
        nginx, gateway = f"nginx-{n}", f"gateway-{n}"
        ratios[f"workers_{n}"] = {
            "gateway_over_nginx": round(medians[gateway] / medians[nginx], 3) if medians[nginx] else 0.0,
            "per_round": [round(g / x, 3) for g, x in zip(rps[gateway], rps[nginx]) if x],
        }
    result["ratios"] = ratios
    result["scaling"] = {
        "gateway_2_over_1": round(medians["gateway-2"] / medians["gateway-1"], 3) if medians["gateway-1"] else 0.0,
        "nginx_2_over_1": round(medians["nginx-2"] / medians["nginx-1"], 3) if medians["nginx-1"] else 0.0,
    }
    one: float = ratios["workers_1"]["gateway_over_nginx"]
    two: float = ratios["workers_2"]["gateway_over_nginx"]
    result["check"] = {"ok": two >= one, "detail": f"gateway/nginx {two:.0%} at 2 processes vs {one:.0%} at 1"}


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'target':12s} {'req/s':>10s}   runs")
    for name in TARGETS:
        entry = result["rps"][name]
        print(f"{name:12s} {entry['median']:>10.0f}   {' '.join(f'{x:.0f}' for x in entry['runs'])}")
    for n in (1, 2):
        ratio = result["ratios"][f"workers_{n}"]
        print(
            f"gateway/nginx at {n}: {ratio['gateway_over_nginx']:.0%}  (per round {', '.join(f'{x:.0%}' for x in ratio['per_round'])})"
        )
    print(
        f"scaling 1 -> 2: gateway x{result['scaling']['gateway_2_over_1']:.2f}, nginx x{result['scaling']['nginx_2_over_1']:.2f}"
    )
    print(("ok: " if result["check"]["ok"] else "MISSED: ") + result["check"]["detail"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"workers_bench: {tool} not found on PATH", file=sys.stderr)
            return 1
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="workers_bench-"))
    os.chmod(workdir, 0o755)
    stack = Stack(workdir)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "load_average_before": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "commands": {"bench": shlex.join([sys.executable, "-m", "loadtests.workers_bench", *(argv or sys.argv[1:])])},
        "wrk_runs": [],
        "foreign_processes": [],
        "problems": [],
    }
    rc = 0
    try:
        ports = start(args, stack, workdir, result)
        measure(args, stack, ports, result)
        print_table(result)
        if result["problems"]:
            print("FAILED:\n  " + "\n  ".join(result["problems"]))
            rc = 1
    except KeyboardInterrupt:
        result["problems"].append("interrupted")
        rc = 130
    except BenchError as exc:
        print(f"workers_bench: FAILED: {exc}", file=sys.stderr)
        result["problems"].append(str(exc))
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {out}")
        if args.keep:
            print(f"temp dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
