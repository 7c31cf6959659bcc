"""A plain HTTP/1.1 keep-alive replica that ignores ``Upgrade`` (answers 200, keeps the connection).

It records every request it parses (method, target, Host), so a test can prove what reached a replica.
Stdlib only; runs in-process (``start``) or as a process (``python plain_replica.py PORT LOGFILE``),
appending one JSON line per request to LOGFILE.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

Record = Callable[[dict[str, str]], None]


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def handler(record: Record) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                fields = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        fields[name.strip().lower()] = value.strip()
                if fields.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(fields.get("content-length", "0")))
                entry = {"method": method, "target": target, "host": fields.get("host", "")}
                record(entry)
                doc = json.dumps({**entry, "body": body.decode("latin-1"), "headers": fields}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(doc), doc)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    return handle


async def start(record: Record, port: int = 0) -> tuple[asyncio.base_events.Server, int]:
    server = await asyncio.start_server(handler(record), "127.0.0.1", port)
    return server, server.sockets[0].getsockname()[1]


async def _main(port: int, log: TextIO) -> None:
    def record(entry: dict[str, str]) -> None:
        log.write(json.dumps(entry) + "\n")

    server, _ = await start(record, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[2], "a", buffering=1) as log:
        asyncio.run(_main(int(sys.argv[1]), log))
