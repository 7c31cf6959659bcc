"""Control plane at scale: N services (default + canary each) on the static backend.

    python3 loadtests/scale_bench.py [--sizes 100,1000,10000] [--out loadtests/results/scale_bench.json]

Per size, one `gateway serve` process (its own session, killed at the end):
- start to healthy: from spawning the process to the first 200 from a service through the data plane;
- reload wall time: `POST /admin/reload` with one service edited (every service is re-read and
  re-validated), while a probe sends `GET /` to another service every 10 ms on a keep-alive
  connection: the worst probe latency during the reload says whether the data plane stalled;
- coalescing: 10 reload requests at once (how many reloads ran, wall time, worst probe latency);
- RSS after start and after the reloads (VmRSS).

`--gateway-cmd` runs another build (e.g. `env PYTHONPATH=/path/to/old/checkout python3 -m gateway`)
for a before/after table in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, n: int, backend: int, percent: int, every: bool = False) -> None:
    """N services with a 20 % canary; `percent` for the last one, or for all of them with `every`."""
    parts = ["apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n"]
    for i in range(n):
        p = percent if every or i == n - 1 else 20
        parts.append(
            "---\napiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\n"
            f"metadata:\n  name: svc-{i}\n  namespace: bench\nspec:\n"
            f"  canaryTrafficPercent: {p}\n"
            f'  default:\n    endpoints: ["http://127.0.0.1:{backend}"]\n'
            f'  canary:\n    endpoints: ["http://127.0.0.1:{backend}"]\n'
        )
    path.write_text("".join(parts))


async def backend_server() -> tuple[asyncio.base_events.Server, int, set[asyncio.StreamWriter]]:
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], writers


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Probe:
    """GET every `interval` on one keep-alive connection; latencies recorded with their start time."""

    def __init__(self, port: int, host: str, interval: float = 0.01) -> None:
        self.port, self.host, self.interval = port, host, interval
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._stop = False

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = f"GET / HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        while not self._stop:
            started = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                self.errors += 1
            self.samples.append((started, time.monotonic() - started))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        writer.close()

    def worst(self, since: float, until: float) -> float:
        return max((lat for t, lat in self.samples if since - 0.05 <= t <= until), default=0.0)

    def stop(self) -> None:
        self._stop = True


async def measure(n: int, cmd: list[str], tmp: Path, backend: int) -> dict[str, object]:
    cfg = tmp / f"services-{n}.yaml"
    write_config(cfg, n, backend, 20)
    port, admin = free_port(), free_port()
    log = (tmp / f"gateway-{n}.log").open("wb")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        "serve",
        "-f",
        str(cfg),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--state-dir",
        str(tmp / f"state-{n}"),
        "--log-level",
        "warning",
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result: dict[str, object] = {"services": n}
    try:
        host = "svc-0.bench.example.com"
        async with aiohttp.ClientSession() as session:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"gateway exited {proc.returncode}: see {log.name}")
                try:
                    async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
            result["start_to_healthy_s"] = round(time.monotonic() - started, 3)
            await asyncio.sleep(0.5)
            result["rss_after_start_mib"] = round(rss_mib(proc.pid), 1)

            probe = Probe(port, f"svc-{n - 1}.bench.example.com")
            probing = asyncio.create_task(probe.run())
            await asyncio.sleep(0.3)
            write_config(cfg, n, backend, 30)  # one service edited
            t0 = time.monotonic()
            async with session.post(f"http://127.0.0.1:{admin}/admin/reload", timeout=aiohttp.ClientTimeout(total=600)) as resp:
                body = await resp.json()
            t1 = time.monotonic()
            await asyncio.sleep(0.3)
            result["reload_s"] = round(t1 - t0, 3)
            result["reload_ok"] = bool(body.get("reloaded"))
            result["worst_probe_during_reload_s"] = round(probe.worst(t0, t1), 3)

            write_config(cfg, n, backend, 40)
            t0 = time.monotonic()
            answers = await asyncio.gather(
                *(
                    session.post(f"http://127.0.0.1:{admin}/admin/reload", timeout=aiohttp.ClientTimeout(total=1200))
                    for _ in range(10)
                )
            )
            docs = [await a.json() for a in answers]
            t1 = time.monotonic()
            await asyncio.sleep(0.3)
            write_config(cfg, n, backend, 35, every=True)  # every service changes
            t2 = time.monotonic()
            async with session.post(f"http://127.0.0.1:{admin}/admin/reload", timeout=aiohttp.ClientTimeout(total=600)) as resp:
                await resp.json()
            t3 = time.monotonic()
            await asyncio.sleep(0.3)
            result["reload_all_changed_s"] = round(t3 - t2, 3)
            result["worst_probe_during_reload_all_changed_s"] = round(probe.worst(t2, t3), 3)
            result["ten_reloads_s"] = round(t1 - t0, 3)
            result["ten_reloads_ran"] = len({d.get("generation") for d in docs}) if all("generation" in d for d in docs) else 10
            result["worst_probe_during_ten_reloads_s"] = round(probe.worst(t0, t1), 3)
            probe.stop()
            await probing
            result["probe_errors"] = probe.errors
            result["rss_after_reloads_mib"] = round(rss_mib(proc.pid), 1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        log.close()
    return result


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    server, backend, writers = await backend_server()
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        for n in args.sizes:
            row = await measure(n, shlex.split(args.gateway_cmd), Path(tmp), backend)
            print(
                f"{n:>7,} services  start {row['start_to_healthy_s']:>7.2f} s  reload {row['reload_s']:>7.2f} s  "
                f"worst probe during reload {row['worst_probe_during_reload_s']:>7.3f} s  "
                f"10 reloads: {row['ten_reloads_s']:.2f} s, ran {row['ten_reloads_ran']}, worst probe {row['worst_probe_during_ten_reloads_s']:.3f} s  "
                f"all changed: {row['reload_all_changed_s']:.2f} s, worst probe {row['worst_probe_during_reload_all_changed_s']:.3f} s  "
                f"RSS {row['rss_after_start_mib']} -> {row['rss_after_reloads_mib']} MiB",
                flush=True,
            )
            rows.append(row)
    server.close()
    for writer in writers:
        writer.transport.abort()
    await asyncio.sleep(0.05)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 10000])
    parser.add_argument("--gateway-cmd", default=f"{shlex.quote(sys.executable)} -m gateway")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale_bench.json")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"gateway_cmd": args.gateway_cmd, "rows": rows}, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
