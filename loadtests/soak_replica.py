"""The soak's replica (aiohttp): echo with a digest, deterministic streams, chunked bodies, WebSocket echo.

python3 loadtests/soak_replica.py PORT
"""

from __future__ import annotations

import hashlib
import sys

from aiohttp import WSMsgType, web

BLOCK = bytes(range(256)) * 256  # 64 KiB; stream bodies are this block repeated, so clients can check them


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"path": request.path_qs, "len": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def stream(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", "1048576"))
    chunked = request.query.get("chunked") == "1"
    resp = web.StreamResponse()
    if chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = size
    await resp.prepare(request)
    sent = 0
    while sent < size:
        n = min(len(BLOCK), size - sent)
        await resp.write(BLOCK[:n])
        sent += n
    await resp.write_eof()
    return resp


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            await sock.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await sock.send_bytes(msg.data)
    return sock


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
