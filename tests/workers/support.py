"""A `gateway serve --workers N` process for the tests, raw keep-alive clients, and which worker holds a connection."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, serve_argv, wait_until, wait_until_blocking

REPLICA = Path(__file__).parents[1] / "e2e" / "sleepy_replica.py"
HOST = "sleepy.default.example.com"


def config(
    *,
    min_scale: int = 1,
    max_scale: int = 5,
    target: int = 10,
    container_concurrency: int = 0,
    window: str = "6s",
    name: str = "sleepy",
    extra: str = "",
) -> str:
    head = f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  proxy:
    drainTimeout: 10s
  autoscaler:
    stableWindow: {window}
    scaleToZeroGracePeriod: 1s
    tickInterval: 0.25s
    initialScale: {min_scale}
    allowZeroInitialScale: true
"""
    if container_concurrency:  # a PaddleService has no containerConcurrency: a KServe InferenceService
        return f"""{head}---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    minReplicas: {min_scale}
    maxReplicas: {max_scale}
    containerConcurrency: {container_concurrency}
    containers:
      - name: kserve-container
        command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
{extra}"""
    return f"""{head}---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: {name}
spec:
  default:
    command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
  service:
    minScale: {min_scale}
    maxScale: {max_scale}
    target: {target}
    targetUtilization: "100"
{extra}"""


class Served:
    """One `gateway serve --workers N` process and its addresses."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: int, cfg: Path) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin
        self.cfg = cfg
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin}"

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.admin_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def services(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"{self.admin_url}/admin/services", timeout=5).json()
        return doc

    def revision(self) -> dict[str, Any]:
        rev: dict[str, Any] = self.services()["services"][0]["revisions"][0]
        return rev

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.admin_url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                head, value = line.rsplit(" ", 1)
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total

    def workers(self) -> list[int]:
        """The worker processes' pids (children started with `gateway worker`)."""
        return worker_pids(self.proc.pid)


def worker_pids(parent: int) -> list[int]:
    """The pids of `parent`'s worker processes (children started with `gateway worker`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"worker" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


@contextmanager
def serving(tmp_path: Path, text: str, workers: str = "2", *, wait: bool = True) -> Iterator[Served]:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(text)
    port, admin = free_port(), free_port()
    argv = serve_argv(cfg, listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=tmp_path / "state")
    proc = subprocess.Popen([*argv, "--workers", workers], stdin=subprocess.DEVNULL)
    served = Served(proc, port, admin, cfg)
    try:
        if wait:
            wait_until_blocking(served.ready, "the gateway's /readyz", within=30)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Conn:
    """One keep-alive HTTP/1.1 client connection (raw: the test knows which socket is which)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.local_port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, host: str = HOST) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def worker_of(conns: list[Conn], server_port: int, workers: list[int]) -> dict[int, int]:
    """Which worker pid holds each connection (by the client's local port), from /proc."""
    by_inode = {inode: pid for pid in workers for inode in _socket_inodes(pid)}
    out: dict[int, int] = {}
    wanted = {c.local_port for c in conns}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == server_port and remote_port in wanted and fields[9] in by_inode:
            out[remote_port] = by_inode[fields[9]]
    return out


async def first_per_worker(conns: list[Conn], server_port: int, workers: list[int]) -> list[Conn]:
    """One of `conns` held by each worker, in `workers`' order, once every connection has been accepted.

    A connection the kernel has queued but no worker has accepted yet belongs to no worker's fds, so
    this waits until all of them are held before choosing.
    """
    held: dict[int, int] = {}

    def all_accepted() -> bool:
        held.update(worker_of(conns, server_port, workers))
        return len(held) == len(conns)

    await wait_until(all_accepted, f"the workers to accept all {len(conns)} connections")
    return [next(c for c in conns if held[c.local_port] == pid) for pid in workers]


async def split_connections(port: int, workers: list[int], each: int) -> dict[int, list[Conn]]:
    """`each` connections held by every worker (opening more until the kernel spread them so)."""
    by_worker: dict[int, list[Conn]] = {pid: [] for pid in workers}
    spare: list[Conn] = []
    for _ in range(50 * each):
        if all(len(c) >= each for c in by_worker.values()):
            break
        conn = await Conn.open(port)
        await conn.get("/stats")  # accepted by now
        pid = worker_of([conn], port, workers).get(conn.local_port)
        if pid is not None and len(by_worker[pid]) < each:
            by_worker[pid].append(conn)
        else:
            spare.append(conn)
    for conn in spare:
        conn.close()
    assert all(len(c) == each for c in by_worker.values()), f"connections did not spread: {by_worker}"
    return by_worker
