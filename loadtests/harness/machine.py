"""Machine facts for the report: CPU, cores, kernel, Python and the versions of the tools compared."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

from loadtests.harness.procs import REPO, tool


def _version(argv: list[str]) -> str:
    exe = tool(argv[0])
    if exe is None:
        return "not installed"
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=5, check=False)
        lines = (p.stdout + p.stderr).strip().splitlines()
        return lines[0] if lines else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        return "?"


def _commit() -> str:
    try:
        p = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "gateway"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return p.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def facts() -> dict[str, Any]:
    import httptools
    import uvloop

    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "uvloop": getattr(uvloop, "__version__", "?"),
        "httptools": getattr(httptools, "__version__", "?"),
        "nginx": _version(["nginx", "-v"]),
        "haproxy": _version(["haproxy", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "gateway_commit": _commit(),
        "loadavg_at_start": loadavg(),
    }
