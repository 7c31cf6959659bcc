#!/usr/bin/env python3
"""The replica burst_bench.py scales: stdlib only (fast start), HTTP/1.1 keep-alive.

Same protocol as tests/e2e/sleepy_replica.py (``GET /work?ms=N`` sleeps N ms, ``GET /stats`` answers
``{"pid", "port", "max_in_flight", "served", ...}``), plus what a bench needs to account for replicas
that were scaled down and are gone by the end of the run:

* on SIGTERM/SIGINT (the local backend's stop) it writes its final stats to
  ``$BURST_STATS_DIR/replica-<pid>.json`` before exiting, so none is lost;
* it records wall-clock times: process start (``t_start``), listening (``t_listen``), first and
  last request (``t_first``, ``t_last``).

Usage: ``burst_replica.py PORT`` (or ``$PORT``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

T_START = time.time()
state: dict[str, object] = {
    "in_flight": 0,
    "max_in_flight": 0,
    "served": 0,
    "t_start": T_START,
    "t_listen": None,
    "t_first": None,
    "t_last": None,
}


def snapshot(port: int) -> dict[str, object]:
    return {"pid": os.getpid(), "port": port, **state}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            path = line.split(" ")[1]
            length = 0
            for h in head.split(b"\r\n")[1:]:
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if path.startswith("/stats"):
                body = json.dumps(snapshot(writer.get_extra_info("sockname")[1])).encode()
            else:
                now = time.time()
                if state["t_first"] is None:
                    state["t_first"] = now
                state["in_flight"] += 1  # type: ignore[operator]
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])  # type: ignore[call-overload]
                try:
                    ms = int(path.split("ms=")[1].split("&")[0]) if "ms=" in path else 0
                    await asyncio.sleep(ms / 1000)
                finally:
                    state["in_flight"] -= 1  # type: ignore[operator]
                state["served"] += 1  # type: ignore[operator]
                state["t_last"] = time.time()
                body = json.dumps({"pid": os.getpid()}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def write_final(port: int) -> None:
    folder = os.environ.get("BURST_STATS_DIR")
    if not folder:
        return
    data = snapshot(port)
    data["t_exit"] = time.time()
    tmp = os.path.join(folder, f".replica-{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, os.path.join(folder, f"replica-{os.getpid()}.json"))


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    state["t_listen"] = time.time()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        write_final(port)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])))
