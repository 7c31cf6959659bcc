"""Helpers for the backend tests: a tiny replica server and polling utilities."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.backends.local import LocalBackend
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

# A tiny HTTP/1.1 server on plain asyncio (fast to start); environment variables tell it how
# to misbehave. GET /pid and /port answer with its pid and $PORT; /ready is 200 unless
# READY_FILE is set and missing (each answer to /ready is logged). IGNORE_TERM: SIGTERM is logged, not obeyed.
REPLICA = r"""
import asyncio, os, signal, sys, time

port = int(sys.argv[1])
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
if os.environ.get("FAIL"):
    print("boom:", os.environ["FAIL"], flush=True)
    sys.exit(1)


async def handle(reader, writer):
    line = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    path = line.split()[1].decode() if line else "/"
    ready_file = os.environ.get("READY_FILE")
    status = b"200 OK"
    if path == "/ready" and ready_file and not os.path.exists(ready_file):
        status = b"503 Service Unavailable"
    if path == "/ready":
        print("GET /ready", status.decode(), flush=True)
    body = {"/pid": str(os.getpid()), "/port": os.environ.get("PORT", "")}.get(path, "ok").encode()
    head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (status, len(body))
    writer.write(head + body)
    await writer.drain()
    writer.close()


async def main():
    await asyncio.sleep(float(os.environ.get("LISTEN_DELAY", "0")))
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening", port, time.time(), flush=True)
    if os.environ.get("CRASH_AFTER"):
        await asyncio.sleep(float(os.environ["CRASH_AFTER"]))
        print("crashing now", flush=True)
        os._exit(3)
    await asyncio.Event().wait()


asyncio.run(main())
"""


def alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def service(name: str = "iris", namespace: str = "default", **revision: Any) -> ServiceSpec:
    return ServiceSpec(name=name, namespace=namespace, default=RevisionSpec("default", **revision))


class Recorder:
    """An endpoint listener that keeps every call with its time."""

    def __init__(self) -> None:
        self.calls: list[tuple[RevisionKey, EndpointSet, float]] = []

    def __call__(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        self.calls.append((key, endpoints, time.time()))

    def last(self, key: RevisionKey) -> EndpointSet:
        return next((eps for k, eps, _ in reversed(self.calls) if k == key), frozenset())


async def get(endpoint: Endpoint, path: str) -> str:
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data.split(b"\r\n\r\n", 1)[1].decode()


def make_backend(tmp_path: Path, **options: Any) -> LocalBackend:
    options.setdefault("grace_period", 1.0)
    return LocalBackend(tmp_path / "state", **options)
