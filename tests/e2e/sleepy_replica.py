"""A replica for end-to-end tests: stdlib only (fast start), HTTP/1.1 keep-alive.

GET /work?ms=N sleeps N ms and answers; GET /stats answers {"pid", "max_in_flight", "served"}.
It records the highest number of requests it ever held at once: the breaker's witness.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

state = {"in_flight": 0, "max_in_flight": 0, "served": 0}


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
                body = json.dumps({"pid": os.getpid(), **state}).encode()
            else:
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                try:
                    ms = int(path.split("ms=")[1]) if "ms=" in path else 0
                    await asyncio.sleep(ms / 1000)
                finally:
                    state["in_flight"] -= 1
                state["served"] += 1
                body = json.dumps({"pid": os.getpid()}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])))
