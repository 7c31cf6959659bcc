"""The open-loop load generator: request k leaves at its scheduled time whatever the earlier ones are
doing, and its latency is measured from that *scheduled* time, so a stalled proxy cannot hide the
requests it delayed (no coordinated omission). It runs in a process of its own (pinned to a core away
from the proxy when there are two), started by `run()`:

    python -m loadtests.harness.openloop PLAN.json RESULT.json

PLAN: {"port", "start_wall" (a time.time() to start at), "timeout", "connections", "keep_header",
"requests": [[offset_s, host, path], ...]}. RESULT: {"t0_wall", "results": [[offset_s, lag_s,
latency_s, status, error, header], ...]} in the plan's order, `status` -1 when no response came, `lag_s`
how late the request actually left (the generator's own delay, reported, never subtracted).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.harness.procs import HarnessError, pin, tail


@dataclass
class Plan:
    port: int
    requests: list[tuple[float, str, str]]
    timeout: float = 30.0
    connections: int = 1000
    keep_header: str = ""  # a response header whose value each result keeps (X-Gateway-Revision, say)


@dataclass
class Outcome:
    t0_wall: float
    rows: list[list[Any]] = field(default_factory=list)  # [offset, lag, latency, status, error, header]

    @property
    def sent(self) -> int:
        return len(self.rows)

    @property
    def answered(self) -> int:
        return sum(1 for r in self.rows if r[3] > 0)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.rows if 200 <= r[3] < 300)

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    def latencies(self) -> list[float]:
        return [r[2] for r in self.rows if 200 <= r[3] < 300]


def steps(rates: list[float], seconds: float, host: str, path: str, start: float = 0.0) -> list[tuple[float, str, str]]:
    """Constant pacing within each step: rate r for `seconds`, one after the other."""
    out: list[tuple[float, str, str]] = []
    for i, rate in enumerate(rates):
        n = round(rate * seconds)
        out.extend((start + i * seconds + k / rate, host, path) for k in range(n))
    return out


def run(
    plan: Plan, work: Path, name: str, *, cpu: int | None = 1, every: float = 0.25, tick: Callable[[], None] | None = None
) -> Outcome:
    """Run the generator in its own process; call `tick` every `every` s meanwhile (the admin API monitor)."""
    plan_path, out_path, log = work / f"{name}-plan.json", work / f"{name}-result.json", work / f"{name}.log"
    start_wall = time.time() + 0.5  # the child's interpreter start must not eat into the schedule
    doc = {**plan.__dict__, "start_wall": start_wall}
    plan_path.write_text(json.dumps(doc))
    argv = [*pin(cpu), sys.executable, "-m", "loadtests.harness.openloop", str(plan_path), str(out_path)]
    last = plan.requests[-1][0] if plan.requests else 0.0
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = start_wall + last + plan.timeout + 30
        while proc.poll() is None:
            if tick is not None and time.time() >= start_wall:
                tick()
            if time.time() > deadline:
                raise HarnessError(f"load generator {name} still running past its schedule:\n{tail(log)}")
            time.sleep(every)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != 0:
        raise HarnessError(f"load generator {name} exited {proc.returncode}:\n{tail(log)}")
    res = json.loads(out_path.read_text())
    return Outcome(res["t0_wall"], res["results"])


# -- the child process --------------------------------------------------------------------------
async def _one(session: Any, url: str, host: str, at: float, keep: str, row: list[Any]) -> None:
    import aiohttp

    started = time.monotonic()
    row[1] = round(started - at, 6)
    try:
        async with session.get(url, headers={"Host": host}) as resp:
            await resp.read()
            row[3] = resp.status
            row[5] = resp.headers.get(keep, "") if keep else ""
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        row[4] = f"{type(exc).__name__}: {exc}"[:200]
    row[2] = round(time.monotonic() - at, 6)  # from the scheduled send time


async def _main(plan: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    base = f"http://127.0.0.1:{plan['port']}"
    rows: list[list[Any]] = [[off, None, None, -1, "", ""] for off, _h, _p in plan["requests"]]
    connector = aiohttp.TCPConnector(limit=plan["connections"], limit_per_host=plan["connections"])
    timeout = aiohttp.ClientTimeout(total=plan["timeout"])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        await asyncio.sleep(max(0.0, plan["start_wall"] - time.time()))
        t0_wall, t0 = time.time(), time.monotonic()
        tasks = []
        for row, (off, host, path) in zip(rows, plan["requests"]):
            at = t0 + off
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, base + path, host, at, plan["keep_header"], row)))
        if tasks:
            await asyncio.wait(tasks)
    for row in rows:
        if row[2] is None:
            row[2] = 0.0
    return {"t0_wall": t0_wall, "results": rows}


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop

        result = uvloop.run(_main(plan))
    except ImportError:
        result = asyncio.run(_main(plan))
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
