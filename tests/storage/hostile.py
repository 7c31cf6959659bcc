"""An HTTP server on loopback that lies: wrong Content-Length, HTML pages, redirect chains, endless and
dripping bodies. Paths: /short/NAME, /long/NAME, /html/NAME, /redirect/N/NAME (N hops to localhost, another host, then the model),
/to-file/NAME, /endless/NAME, /drip/NAME (a byte every `drip_every` seconds), /ok/NAME."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HostileServer:
    model: bytes
    url: str = ""
    drip_every: float = 0.2
    stop: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    state: HostileServer
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self.wfile.flush()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        route, _, rest = self.path.strip("/").partition("/")
        model = self.state.model
        binary = {"Content-Type": "application/octet-stream"}
        if route == "short":  # declares more than it sends, then closes
            self.close_connection = True
            self._send(200, {**binary, "Content-Length": str(len(model) + 1000)}, model)
        elif route == "long":  # declares less than it sends
            self.close_connection = True
            self._send(200, {**binary, "Content-Length": "100"}, model)
        elif route == "html":
            self._send(
                200,
                {"Content-Type": "text/html; charset=utf-8", "Content-Length": "40"},
                b"<html><body>Log in</body></html>".ljust(40),
            )
        elif route == "redirect":
            hops, _, name = rest.partition("/")
            where = f"/redirect/{int(hops) - 1}/{name}" if int(hops) > 1 else f"/ok/{name}"
            self._send(302, {"Location": self.state.url.replace("127.0.0.1", "localhost") + where, "Content-Length": "0"})
        elif route == "to-file":
            self._send(302, {"Location": "file:///etc/passwd", "Content-Length": "0"})
        elif route == "endless":
            self._endless()
        elif route == "drip":
            self._drip()
        elif route == "ok":
            self._send(200, {**binary, "Content-Length": str(len(model))}, model)
        else:
            self._send(404, {"Content-Length": "0"})

    def _endless(self) -> None:
        self.close_connection = True
        self._send(200, {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"})
        if self.command == "HEAD":
            return
        chunk = b"\0" * 65536
        try:
            while not self.state.stop.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            return

    def _drip(self) -> None:
        self.close_connection = True
        self._send(200, {"Content-Type": "application/octet-stream", "Content-Length": "1000"})
        if self.command == "HEAD":
            return
        try:
            for _ in range(1000):
                if self.state.stop.wait(self.state.drip_every):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_hostile(model: bytes) -> Iterator[HostileServer]:
    state = HostileServer(model)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for the next poll: 50 ms rather than the default half second per test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
