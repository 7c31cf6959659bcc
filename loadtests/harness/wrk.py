"""wrk for closed-loop ceilings: a fixed number of connections as fast as the target answers."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

from loadtests.harness.procs import HarnessError, pin, tool

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise HarnessError(f"wrk printed a latency it cannot be read from: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> dict[str, Any]:
    """wrk's --latency report as figures: req/s, requests, p50..p99 in ms, non-2xx, socket errors."""
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    for p, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.MULTILINE):
        res[f"p{p}_ms"] = round(_ms(value), 3)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return res


def run(port: int, host: str, *, connections: int, seconds: float, cpu: int | None, threads: int = 1) -> dict[str, Any]:
    exe = tool("wrk")
    if exe is None:
        raise HarnessError("wrk is not installed (Debian: wrk)")
    argv = [*pin(cpu), exe, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    argv += ["-H", f"Host: {host}", f"http://127.0.0.1:{port}/"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False, start_new_session=True)
    if proc.returncode != 0 or "Requests/sec" not in proc.stdout:
        raise HarnessError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return {"cmd": shlex.join(argv), **parse(proc.stdout)}
