"""Client side of the proxy: one asyncio Protocol per accepted connection, httptools parsing."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from gateway.router.cycle import DONE, RequestCycle
from gateway.router.errors import error_response
from gateway.router.headers import BadRequest, RequestHead, normalise_host, read_request_head

if TYPE_CHECKING:
    from gateway.router.server import ProxyServer


class ClientConnection(asyncio.Protocol):
    # Reasons to stop reading from the client; reading resumes when none is left.
    PIPELINE = 1
    BUFFER = 2
    UPSTREAM = 4

    __slots__ = (
        "server", "transport", "parser", "peer", "url", "headers", "head_size", "in_head",
        "head_started", "idle_since", "cycle", "parsing", "pipeline", "paused", "write_paused",
        "upgraded", "closed", "http10",
    )

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.in_head = False
        self.head_started = 0.0
        self.idle_since = 0.0
        self.cycle: RequestCycle | None = None  # the one whose response is being written
        self.parsing: RequestCycle | None = None  # the one whose body is being read
        self.pipeline: deque[RequestCycle] = deque()
        self.paused = 0
        self.write_paused = False
        self.upgraded = False
        self.closed = False
        self.http10 = False

    # -- lifecycle ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.head_started = self.idle_since = time.monotonic()
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.parsing is not None and self.parsing is not self.cycle:
            self.parsing.abort()
        if self.cycle is not None:
            self.cycle.abort()
        for cycle in self.pipeline:
            cycle.abort()
        self.pipeline.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    # -- flow control ---------------------------------------------------------------------------
    def pause_reading(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        cycle = self.cycle
        if cycle is not None and cycle.upstream is not None and cycle.upstream.transport is not None:
            cycle.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        cycle = self.cycle
        if cycle is not None and cycle.upstream is not None and cycle.upstream.transport is not None:
            cycle.upstream.transport.resume_reading()

    # -- data -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            if self.cycle is not None:
                self.cycle.on_client_raw(data)
            return
        if not self.in_head and self.parsing is None:
            self.in_head = True
            self.head_started = time.monotonic()
            self.head_size = 0
        if self.in_head:
            self.head_size += len(data)
            if self.head_size > 2 * self.server.settings.max_header_bytes + 65536:
                self._reject(431, "request header too large")
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            cycle = self.cycle
            if cycle is None or cycle.head is None or cycle.head.upgrade is None:
                self._reject(400, "unsupported upgrade or CONNECT request")
                return
            self.parsing = None
            self.upgraded = True  # from here on bytes are spliced, never parsed
            if offset < len(data):
                cycle.on_client_raw(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc
            if isinstance(cause, BadRequest):
                self._reject(cause.status, str(cause))
            else:
                self._reject(400, "invalid HTTP request")
        except httptools.HttpParserError as exc:
            self._reject(400, f"invalid HTTP request: {exc}")

    def _reject(self, status: int, message: str) -> None:
        """A request we cannot parse: answer once (if no response is under way) and close."""
        if self.closed:
            return
        if self.cycle is None or self.cycle.phase == DONE:
            self.write(error_response(status, message, close=True))
            unrouted = self.server.unrouted
            unrouted[status] = unrouted.get(status, 0) + 1
        self.close()
        if self.parsing is not None:
            self.parsing.abort()

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.in_head = True
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.server.settings.max_header_bytes:
            raise BadRequest("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value)
        if self.head_size > self.server.settings.max_header_bytes:
            raise BadRequest("request header too large", 431)

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        self.http10 = version == "1.0"
        keep_alive = parser.should_keep_alive() and not self.server.draining
        cycle = self.server.make_cycle(self, method, self.url, self.headers, keep_alive)
        self.parsing = cycle
        if self.cycle is None:
            self.cycle = cycle
            cycle.start()
        else:
            self.pipeline.append(cycle)
            self.pause_reading(self.PIPELINE)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        if cycle is not None:
            cycle.on_request_complete()

    # -- sequencing -----------------------------------------------------------------------------
    def cycle_done(self, cycle: RequestCycle) -> None:
        if cycle is not self.cycle:
            return
        self.cycle = None
        if not cycle.keep_alive or self.closed:
            if cycle.upgraded:
                return
            if self.parsing is cycle:
                self.parsing = None
            self.close()
            return
        self.idle_since = time.monotonic()
        # Pauses on behalf of the finished cycle's upload end with it.
        self.resume_reading(self.UPSTREAM | self.BUFFER)
        if self.pipeline:
            nxt = self.pipeline.popleft()
            self.cycle = nxt
            nxt.start()
            if not self.pipeline:
                self.resume_reading(self.PIPELINE)
        else:
            self.resume_reading(self.PIPELINE)
            if self.server.draining:
                self.close()

    def expire(self, now: float) -> None:
        """Called by the sweeper: header-read, keep-alive and request timeouts."""
        settings = self.server.settings
        cycle = self.cycle
        if cycle is not None:
            cycle.expire(now, settings.response_start_timeout)
            return
        if self.in_head:
            if now - self.head_started > settings.header_timeout:
                self._reject(408, "timed out reading the request header")
        elif self.parsing is None and now - self.idle_since > settings.keepalive_timeout:
            self.close()


def absolute_form(url: bytes, head: RequestHead) -> bytes:
    """``GET http://host/path``: route by the URI's authority (RFC 9112 §3.2.2), forward origin-form."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise BadRequest("request target must be a path or an absolute http URI")
    authority, slash, path = rest.partition(b"/")
    authority, query_sep, query = authority.partition(b"?")
    if not authority or b"@" in authority:
        raise BadRequest("absolute request target without a usable host")
    target = b"/" + path if slash else b"/"
    if query_sep:
        target += b"?" + query
    if normalise_host(authority) != normalise_host(head.host):
        head.lines = [line for line in head.lines if line[:5].lower() != b"host:"]
        head.lines.append(b"host: " + authority + b"\r\n")
        head.host = authority
    return target


def route_and_build(server: ProxyServer, conn: ClientConnection, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> RequestCycle:
    """Read the head, pick the revision, build the upstream request head (or an error)."""
    try:
        if method == b"CONNECT":
            raise BadRequest("CONNECT is not supported: the gateway is not a forward proxy")
        head = read_request_head(headers)
        if url[:1] != b"/" and url != b"*":
            url = absolute_form(url, head)
    except BadRequest as exc:
        return RequestCycle(conn, method, url, None, None, False, b"", (exc.status, str(exc)))
    found = server.routes.lookup(normalise_host(head.host))
    if found is None:
        host = head.host.decode("latin-1")
        return RequestCycle(conn, method, url, head, None, keep_alive, b"", (404, f"no service for host {host!r}"))
    route, pinned = found
    rt = pinned if pinned is not None else route.choose(head.tag)
    if head.content_length > server.settings.max_body_bytes:
        return RequestCycle(conn, method, url, head, rt, False, b"", (413, "request body larger than the limit"))
    if head.upgrade is not None:
        keep_alive = False
    parts = [method, b" ", url, b" HTTP/1.1\r\n"]
    parts.extend(head.lines)
    peer = conn.peer
    parts.append(b"x-forwarded-for: " + (head.forwarded_for + b", " + peer if head.forwarded_for else peer) + b"\r\n")
    if not head.has_forwarded_proto:
        parts.append(b"x-forwarded-proto: http\r\n")
    if not head.has_forwarded_host:
        parts.append(b"x-forwarded-host: " + head.host + b"\r\n")
    if head.chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif head.content_length >= 0:
        parts.append(b"content-length: %d\r\n" % head.content_length)
    if head.upgrade is not None:
        parts.append(b"connection: upgrade\r\nupgrade: " + head.upgrade + b"\r\n")
    parts.append(b"\r\n")
    return RequestCycle(conn, method, url, head, rt, keep_alive, b"".join(parts))
