"""Soak: mixed traffic through the gateway for a minute, RSS and open descriptors sampled each second.

    python3 loadtests/soak.py [--seconds 60] [--warmup 15] [--out loadtests/results/soak.json]

Starts the soak replica (aiohttp) and `gateway serve` (static backend) as processes, then runs, all
at once until the time is up: keep-alive GETs, pipelined GETs, uploads (Content-Length and chunked),
streamed downloads (Content-Length and chunked), WebSocket echo sessions, slow readers, one request
per connection, a client that stops reading (cut off by sendTimeout) and bad requests (expected
400/431 and a close). Every well-formed request's answer is checked (status, path, digest, length).

Exit status 1 if any well-formed request got a wrong answer, a process died, or RSS or open
descriptors grew after the warm-up (RSS by more than --rss-growth MiB, descriptors by more than
--fd-growth); the figures go to stdout and to the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, cast, overload

import aiohttp

HERE = Path(__file__).resolve().parent
HOST = "soak.default.example.com"
BLOCK = bytes(range(256)) * 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_digest(size: int) -> str:
    h = hashlib.sha256()
    for start in range(0, size, len(BLOCK)):
        h.update(BLOCK[: min(len(BLOCK), size - start)])
    return h.hexdigest()


class Wrong(Exception):
    """A well-formed request got a wrong answer."""


@overload
async def read_response(reader: asyncio.StreamReader, digest: Literal[False] = False) -> tuple[int, dict[str, str], bytes]: ...
@overload
async def read_response(reader: asyncio.StreamReader, digest: Literal[True]) -> tuple[int, dict[str, str], str]: ...
async def read_response(reader: asyncio.StreamReader, digest: bool = False) -> tuple[int, dict[str, str], bytes | str]:
    """Status, headers and the body (with `digest`, "size:sha256" of the body instead)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    h = hashlib.sha256()
    body = b""
    size = 0

    def take(data: bytes) -> None:
        nonlocal body, size
        size += len(data)
        if digest:
            h.update(data)
        else:
            body += data

    if headers.get("transfer-encoding") == "chunked":
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if n == 0:
                await reader.readuntil(b"\r\n")
                break
            take(await reader.readexactly(n))
            await reader.readexactly(2)
    else:
        remaining = int(headers.get("content-length", "0"))
        while remaining:
            data = await reader.read(min(remaining, 1 << 20))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            take(data)
            remaining -= len(data)
    return status, headers, (f"{size}:{h.hexdigest()}" if digest else body)


def expect_echo(status: int, body: bytes | str, path: str, payload: bytes = b"") -> None:
    if status != 200:
        raise Wrong(f"{path}: status {status}: {body!r:.200}")
    doc = json.loads(body)
    if doc["path"] != path or doc["len"] != len(payload) or doc["sha256"] != hashlib.sha256(payload).hexdigest():
        raise Wrong(f"{path}: wrong echo {doc}")


class Soak:
    def __init__(self, port: int, deadline: float) -> None:
        self.port = port
        self.deadline = deadline
        self.ok: Counter[str] = Counter()
        self.wrong: Counter[str] = Counter()
        self.errors: list[str] = []

    async def connect(self, rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not rcvbuf:
            return await asyncio.open_connection("127.0.0.1", self.port)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        return await asyncio.open_connection(sock=sock, limit=rcvbuf)

    async def loop(self, kind: str, body: Callable[[int], Awaitable[int]]) -> None:
        i = 0
        while time.monotonic() < self.deadline:
            try:
                self.ok[kind] += await body(i)
            except (
                Wrong,
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                aiohttp.ClientError,
            ) as exc:
                self.wrong[kind] += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{kind}: {exc!r:.300}")
            i += 1

    def req(self, method: str, path: str, extra: str = "", body: bytes = b"") -> bytes:
        length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
        return f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{length}{extra}\r\n".encode() + body

    async def keepalive(self, worker: int) -> None:
        reader, writer = await self.connect()

        async def one(i: int) -> int:
            path = f"/ka/{worker}/{i}"
            writer.write(self.req("GET", path))
            status, _, body = await read_response(reader)
            expect_echo(status, body, path)
            return 1

        try:
            await self.loop("keep-alive", one)
        finally:
            writer.close()

    async def pipelined(self, worker: int) -> None:
        async def batch(i: int) -> int:
            reader, writer = await self.connect()
            try:
                paths = [f"/pipe/{worker}/{i}/{k}" for k in range(16)]
                writer.write(b"".join(self.req("GET", p) for p in paths))
                for path in paths:
                    status, _, body = await read_response(reader)
                    expect_echo(status, body, path)
                return len(paths)
            finally:
                writer.close()

        await self.loop("pipelined", batch)

    async def uploads(self, worker: int) -> None:
        reader, writer = await self.connect()

        async def one(i: int) -> int:
            payload = os.urandom(256 * 1024)
            path = f"/up/{worker}/{i}"
            if i % 2:
                chunks = b"".join(
                    b"%x\r\n%b\r\n" % (len(payload[k : k + 50_000]), payload[k : k + 50_000])
                    for k in range(0, len(payload), 50_000)
                )
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"
                )
            else:
                writer.write(self.req("POST", path, body=payload))
            status, _, body = await read_response(reader)
            expect_echo(status, body, path, payload)
            return 1

        try:
            await self.loop("upload", one)
        finally:
            writer.close()

    async def streams(self, worker: int, size: int, expected: str) -> None:
        reader, writer = await self.connect()

        async def one(i: int) -> int:
            writer.write(self.req("GET", f"/stream?size={size}&chunked={i % 2}"))
            status, _, got = await read_response(reader, digest=True)
            if status != 200 or got != expected:
                raise Wrong(f"stream: status {status}, got {got}")
            return 1

        try:
            await self.loop("stream", one)
        finally:
            writer.close()

    async def slow_reader(self, worker: int, size: int, expected: str) -> None:
        async def one(i: int) -> int:
            reader, writer = await self.connect(rcvbuf=16 * 1024)
            try:
                writer.write(self.req("GET", f"/stream?size={size}", "Connection: close\r\n"))
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise Wrong(f"slow reader: {head[:100]!r}")
                h, got = hashlib.sha256(), 0
                while data := await reader.read(16 * 1024):
                    h.update(data)
                    got += len(data)
                    await asyncio.sleep(0.005)
                if f"{got}:{h.hexdigest()}" != expected:
                    raise Wrong(f"slow reader: got {got} bytes")
                return 1
            finally:
                writer.close()

        await self.loop("slow-reader", one)

    async def websocket(self, worker: int) -> None:
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> int:
                url = f"http://127.0.0.1:{self.port}/ws"
                async with session.ws_connect(url, headers={"Host": HOST}) as ws:
                    for k in range(20):
                        text = f"m{worker}.{i}.{k}"
                        await ws.send_str(text)
                        if (await ws.receive_str()) != text:
                            raise Wrong("websocket echo mismatch")
                        blob = os.urandom(1000 + k)
                        await ws.send_bytes(blob)
                        if (await ws.receive_bytes()) != blob:
                            raise Wrong("websocket binary echo mismatch")
                return 1

            await self.loop("websocket", one)

    async def one_per_connection(self, worker: int) -> None:
        async def one(i: int) -> int:
            reader, writer = await self.connect()
            try:
                path = f"/close/{worker}/{i}"
                writer.write(self.req("GET", path, "Connection: close\r\n"))
                status, _, body = await read_response(reader)
                expect_echo(status, body, path)
                if await reader.read() != b"":
                    raise Wrong("bytes after a Connection: close response")
                return 1
            finally:
                writer.close()

        await self.loop("connection-per-request", one)

    async def stalled(self, worker: int) -> None:
        """Asks for 32 MiB and reads none of it for 5 s: the gateway must have cut it off (sendTimeout 3 s)."""
        size = 32 * 1024 * 1024

        async def one(i: int) -> int:
            reader, writer = await self.connect(rcvbuf=4096)
            transport = cast(asyncio.Transport, writer.transport)
            transport.pause_reading()
            writer.write(self.req("GET", f"/stream?size={size}"))
            try:
                await asyncio.sleep(5)
                transport.resume_reading()
                got = 0
                try:
                    while data := await asyncio.wait_for(reader.read(1 << 20), 5):
                        got += len(data)
                except ConnectionResetError:
                    pass
                except TimeoutError:
                    raise Wrong("a client that read nothing for 5 s is still connected") from None
                if got >= size:
                    raise Wrong("a client that read nothing for 5 s got the whole body")
                return 1
            finally:
                writer.close()

        await self.loop("stalled-reader (cut off)", one)

    async def bad(self, worker: int) -> None:
        cases = [
            (b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nBad Header\r\n\r\n", b"400"),
            (
                b"POST / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"400",
            ),
            (b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b":80@evil.com\r\n\r\n", b"400"),
            (b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64), b"400"),
            (b"GET / HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n", b"404"),
        ]

        async def one(i: int) -> int:
            data, want = cases[i % len(cases)]
            reader, writer = await self.connect()
            try:
                writer.write(data)
                out = await asyncio.wait_for(reader.read(65536), 10)
                if not out.startswith(b"HTTP/1.1 " + want):
                    raise Wrong(f"bad request {i % len(cases)}: {out[:80]!r}")
                return 1
            finally:
                writer.close()

        await self.loop("bad-request (expected error)", one)


def sample(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def start(argv: list[str], log: Path, cpu: int | None) -> subprocess.Popen[bytes]:
    if cpu is not None and (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


async def run(args: argparse.Namespace, port: int, pid: int) -> tuple[Soak, list[dict[str, float]]]:
    soak = Soak(port, time.monotonic() + args.seconds)
    big = 8 * 1024 * 1024
    slow = 2 * 1024 * 1024
    big_digest, slow_digest = f"{big}:{stream_digest(big)}", f"{slow}:{stream_digest(slow)}"
    samples: list[dict[str, float]] = []

    async def sampler() -> None:
        t0 = time.monotonic()
        while time.monotonic() < soak.deadline:
            rss, fds = sample(pid)
            samples.append(
                {"t": round(time.monotonic() - t0, 2), "rss_mib": round(rss, 2), "fds": fds, "ok": sum(soak.ok.values())}
            )
            await asyncio.sleep(1)

    tasks = [
        *(soak.keepalive(i) for i in range(8)),
        *(soak.pipelined(i) for i in range(2)),
        *(soak.uploads(i) for i in range(2)),
        *(soak.streams(i, big, big_digest) for i in range(2)),
        *(soak.slow_reader(i, slow, slow_digest) for i in range(2)),
        *(soak.websocket(i) for i in range(2)),
        *(soak.one_per_connection(i) for i in range(2)),
        soak.stalled(0),
        soak.bad(0),
        sampler(),
    ]
    await asyncio.gather(*tasks)
    return soak, samples


def gateway_config(replica_port: int) -> str:
    """The soak's gateway: one service on the static backend, short send and header timeouts."""
    return (
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n"
        "  proxy: {sendTimeout: 3s, headerTimeout: 5s}\n---\n"
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: soak}\n"
        f"spec:\n  default: {{endpoints: ['http://127.0.0.1:{replica_port}']}}\n"
    )


def summarise(soak: Soak, samples: list[dict[str, float]], args: argparse.Namespace, alive: bool) -> dict[str, Any]:
    """Every figure of a run: answers by kind, RSS and descriptors after the warm-up, flat or not."""
    warm = [s for s in samples if s["t"] <= args.warmup]
    after = [s for s in samples if s["t"] > args.warmup]
    rss_growth = (max(s["rss_mib"] for s in after) - after[0]["rss_mib"]) if after else 0.0
    fd_growth = (max(s["fds"] for s in after) - max(s["fds"] for s in warm)) if after and warm else 0
    flat = rss_growth <= args.rss_growth and fd_growth <= args.fd_growth
    wrong = {k: v for k, v in soak.wrong.items() if v}
    return {
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "seconds": args.seconds,
        "warmup": args.warmup,
        "answered_correctly": dict(soak.ok),
        "wrong": wrong,
        "errors": soak.errors,
        "rss_mib": {
            "start": samples[0]["rss_mib"],
            "after_warmup": after[0]["rss_mib"] if after else None,
            "max_after_warmup": max(s["rss_mib"] for s in after) if after else None,
            "end": samples[-1]["rss_mib"],
            "growth_after_warmup": round(rss_growth, 2),
        },
        "fds": {
            "start": samples[0]["fds"],
            "max_warmup": max(s["fds"] for s in warm) if warm else None,
            "max_after_warmup": max(s["fds"] for s in after) if after else None,
            "end": samples[-1]["fds"],
            "growth_after_warmup": fd_growth,
        },
        "flat": flat,
        "processes_alive": alive,
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--rss-growth", type=float, default=8.0, help="MiB allowed after the warm-up (default 8)")
    parser.add_argument("--fd-growth", type=int, default=24, help="descriptors allowed above the warm-up's highest (default 24)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "soak.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    replica_port, port, admin = free_port(), free_port(), free_port()
    cfg = tmp / "gw.yaml"
    cfg.write_text(gateway_config(replica_port))
    replica = start([sys.executable, str(HERE / "soak_replica.py"), str(replica_port)], tmp / "replica.log", 1)
    gateway = start(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "-f",
            str(cfg),
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--state-dir",
            str(tmp / "state"),
            "--log-level",
            "warning",
        ],
        tmp / "gateway.log",
        0,
    )
    try:
        wait_port(replica_port, replica, "replica")
        wait_port(port, gateway, "gateway")
        soak, samples = asyncio.run(run(args, port, gateway.pid))
        alive = gateway.poll() is None and replica.poll() is None
    finally:
        for proc in (gateway, replica):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    result = summarise(soak, samples, args, alive)
    flat, wrong = result["flat"], result["wrong"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak: {args.seconds:g} s of mixed traffic, warm-up {args.warmup:g} s")
    for kind, count in sorted(soak.ok.items()):
        print(f"  {kind:32s} {count:8d} answered correctly   {soak.wrong.get(kind, 0):4d} wrong")
    r, f = result["rss_mib"], result["fds"]
    print(
        f"  RSS MiB: start {r['start']:.1f}, after warm-up {r['after_warmup']}, max after {r['max_after_warmup']}, end {r['end']:.1f}"
        f" (growth {r['growth_after_warmup']:+.1f})"
    )
    print(
        f"  open fds: start {f['start']}, max in warm-up {f['max_warmup']}, max after {f['max_after_warmup']}, end {f['end']}"
        f" (growth {f['growth_after_warmup']:+d})"
    )
    for error in soak.errors:
        print("  error:", error)
    print(f"  results: {args.out}")
    return 0 if flat and not wrong and alive else 1


if __name__ == "__main__":
    sys.exit(main())
