"""One runner over the scenario modules of loadtests/scenarios/: each runs in a scratch folder of its
own, its figures, tables, checks and plots are gathered into loadtests/results/<timestamp>/
(results.json, summary.md, *.png). Exit 1 when a check failed or a scenario could not run."""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.harness import machine, procs, report
from loadtests.harness.report import Context, Result

HERE = Path(__file__).resolve().parent
SCENARIOS = ("ceiling", "latency", "burst", "coldstarts", "canary", "scale", "soak")
SMOKE = ("latency", "canary")  # the CI smoke: one comparison and one admin-API scenario at minimal size


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the scenarios and write a report")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="size", help="every scenario, small (< 5 min)")
    size.add_argument(
        "--smoke", action="store_const", const="smoke", dest="size", help=f"{', '.join(SMOKE)} at minimal size (CI)"
    )
    run.add_argument("--only", nargs="+", metavar="NAME", choices=SCENARIOS, help=f"only these scenarios: {', '.join(SCENARIOS)}")
    run.add_argument("--out", type=Path, help="results folder (default loadtests/results/<UTC timestamp>)")
    run.add_argument("--keep", action="store_true", help="keep the scratch folders (configs, process logs) and say where")
    sub.add_parser("list", help="the scenarios and what each measures")
    args = p.parse_args(argv)
    if args.command == "run" and args.size is None:
        args.size = "full"
    if args.command == "run" and args.out is not None and args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out}: exists and is not a folder")
    return args


def scenario(name: str) -> Any:
    return importlib.import_module(f"loadtests.scenarios.{name}")


def run_one(name: str, size: str, out: Path, scratch: Path) -> dict[str, Any]:
    mod = scenario(name)
    work = scratch / name
    work.mkdir()
    started = time.monotonic()
    print(f"== {name}: {mod.TITLE}", flush=True)
    try:
        res: Result = mod.run(Context(size, work, out))
        doc = {"title": mod.TITLE, **report.as_dict(res)}
    except Exception as exc:  # a scenario that cannot run is reported, and the others still run
        traceback.print_exc()
        doc = {"title": mod.TITLE, "error": f"{type(exc).__name__}: {exc}"}
    doc["wall_s"] = round(time.monotonic() - started, 1)
    for check in doc.get("checks", []):
        print(f"   {'ok  ' if check['ok'] else 'FAIL'} {check['name']} {check['detail']}", flush=True)
    print(f"   {doc['wall_s']:.0f} s" + (f", ERROR {doc['error']}" if "error" in doc else ""), flush=True)
    return doc


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "list":
        for name in SCENARIOS:
            print(f"{name:<11} {scenario(name).TITLE}")
        return 0
    names = args.only or (SMOKE if args.size == "smoke" else SCENARIOS)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or HERE / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    run: dict[str, Any] = {"size": args.size, "started": stamp, "scenarios_run": list(names), "machine": machine.facts()}
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="loadtests-"))
    print(f"scratch: {scratch}, report: {out}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGTERM stops the processes like Ctrl-C does
        signal.signal(signum, procs.interrupt)  # held back while a process is being started, then raised
    try:
        for name in names:
            results[name] = run_one(name, args.size, out, scratch)
            run["wall_s"] = round(time.monotonic() - started, 1)
            report.write(out, run, results)  # after each scenario: an interrupted run keeps what it measured
    except KeyboardInterrupt:
        print(f"interrupted: every process stopped; what was measured before is in {out}", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"scratch folders kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = [n for n, r in results.items() if "error" in r or not all(c["ok"] for c in r.get("checks", []))]
    print(f"report: {out / 'summary.md'} ({run['wall_s']:.0f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
