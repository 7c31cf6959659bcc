"""Client side of the proxy: one asyncio Protocol per accepted connection, httptools parsing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from gateway.router.cycle import DONE, RequestCycle
from gateway.router.headers import BadRequest

if TYPE_CHECKING:
    from gateway.config.model import ProxySettings
    from gateway.router.server import ProxyServer

log = logging.getLogger(__name__)

LINGER = 2.0  # seconds to keep reading (and dropping) a client's bytes after answering it with a close


class StopParsing(Exception):
    """Raised from a parser callback: the request just read is the connection's last."""


class ClientConnection(asyncio.Protocol):
    # Reasons to stop reading from the client; reading resumes when none is left.
    PIPELINE = 1
    BUFFER = 2
    UPSTREAM = 4
    STOPPED = 8  # nothing more will be parsed on this connection

    __slots__ = (
        "server", "transport", "parser", "peer", "trusted", "trusted_for", "url", "headers", "head_size", "head_raw",
        "head_marks", "in_head", "fresh", "head_started", "idle_since", "cycle", "parsing", "pipeline", "paused",
        "write_paused", "write_paused_since", "upgraded", "held", "stopped", "closed", "closed_at", "http10", "latest", "lingering", "body_at",
    )

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.trusted = False  # the peer is one of spec.proxy.trustedProxies
        self.trusted_for: ProxySettings | None = None  # the settings `trusted` was computed with
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0  # request line and header bytes of the head being read, as the parser reports them
        self.head_raw = 0  # bytes of reads that fell entirely inside that head (a header line still growing)
        self.head_marks = 0  # message begins and head ends seen: tells whether a read crossed a head's border
        self.in_head = True  # the header timeout runs from accept
        self.fresh = True  # no byte received yet
        self.head_started = 0.0
        self.idle_since = 0.0
        self.cycle: RequestCycle | None = None  # the one whose response is being written
        self.parsing: RequestCycle | None = None  # the one whose body is being read
        self.pipeline: deque[RequestCycle] = deque()
        self.latest: RequestCycle | None = None  # the last request whose head was read
        self.paused = 0
        self.write_paused = False
        self.write_paused_since = 0.0
        self.upgraded = False  # a 101 was relayed: bytes are spliced both ways
        # Bytes after an Upgrade request's head, held until its replica answers: spliced after a
        # 101, parsed as the next request otherwise. Never sent upstream before the 101.
        self.held: bytearray | None = None
        self.stopped = False
        self.closed = False
        self.closed_at = 0.0
        self.lingering = False
        self.body_at = 0.0  # when the request body being read last advanced
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
        self.server.connection_closed(self)
        if self.parsing is not None and self.parsing is not self.cycle:
            self.parsing.abort()
        if self.cycle is not None:
            self.cycle.abort()
        for cycle in self.pipeline:
            cycle.abort()
        self.pipeline.clear()

    def is_trusted(self) -> bool:
        settings = self.server.settings
        if self.trusted_for is not settings:
            self.trusted_for = settings
            self.trusted = self.server.trusts(self.peer)
        return self.trusted

    def close(self, linger: bool = False) -> None:
        """Close after what was written has left; with `linger`, the client may still be sending.

        Closing a socket with unread input resets the connection, and a reset can destroy the
        answer just written (a 413 or 400, say). So, as nginx's lingering close: send FIN, keep
        reading and dropping what arrives until the client closes too, for at most LINGER seconds.
        """
        if self.closed:
            return
        self.closed = True
        self.closed_at = time.monotonic()
        transport = self.transport
        if linger and transport.can_write_eof():
            self.lingering = True
            transport.write_eof()
            self.paused = 0
            transport.resume_reading()
        else:
            transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.closed_at = time.monotonic()
        self.transport.abort()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def idle(self) -> bool:
        """Nothing in progress: no request being answered or read, no partial head."""
        return self.cycle is None and self.parsing is None and (not self.in_head or self.fresh)

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
        self.write_paused_since = time.monotonic()
        cycle = self.cycle
        if cycle is not None:
            cycle.pause_response()

    def resume_writing(self) -> None:
        self.write_paused = False
        cycle = self.cycle
        if cycle is not None:
            cycle.resume_response()

    # -- data -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # lingering: dropped
        if self.upgraded:
            if self.cycle is not None:
                self.cycle.on_client_raw(data)
            return
        if self.held is not None:
            self._hold(data)
            return
        if self.stopped:
            return
        self.fresh = False
        if not self.in_head and self.parsing is None:
            self.in_head = True
            self.head_started = time.monotonic()
        marks = self.head_marks
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._upgrade_requested(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, StopParsing):
                return
            if isinstance(cause, BadRequest):
                self._reject(cause.status, str(cause))
            else:
                log.debug("request parser callback failed", exc_info=cause)
                self._reject(400, "invalid HTTP request")
            return
        except httptools.HttpParserError as exc:
            self._reject(400, f"invalid HTTP request: {exc}")
            return
        if self.in_head and self.head_marks == marks and not self.stopped:
            # The whole read was inside one head: a header line the parser is still collecting.
            self.head_raw += len(data)
            if self.head_raw > self.server.settings.max_header_bytes:
                self._reject(431, "request header too large")

    def _upgrade_requested(self, rest: bytes) -> None:
        """The parser stopped after an Upgrade request; what follows waits for the replica's answer."""
        last = self.latest
        if last is None or last.head is None or last.head.upgrade is None:
            self._reject(400, "unsupported upgrade or CONNECT request")
            return
        self.held = bytearray()
        self._hold(rest)
        if last.phase == DONE and self.cycle is None:  # answered already (an error): what was held is the next request
            self._resume_parsing()

    def _hold(self, data: bytes) -> None:
        held = self.held
        assert held is not None
        held += data
        if len(held) > self.server.settings.buffer_bytes:
            self.pause_reading(self.BUFFER)

    def start_splice(self) -> bytes:
        """The replica answered 101: from now on bytes pass through; returns what was held."""
        self.upgraded = True
        held = bytes(self.held or b"")
        self.held = None
        self.resume_reading(self.BUFFER)
        return held

    def _resume_parsing(self) -> None:
        """The upgrade was declined: parse what the client sent after it as its next request."""
        held = bytes(self.held or b"")
        self.held = None
        if self.closed:
            return
        self.parser = httptools.HttpRequestParser(self)
        self.in_head = False
        self.resume_reading(self.BUFFER)
        if held:
            self.data_received(held)

    def _reject(self, status: int, message: str) -> None:
        """Input we cannot parse: answer every request accepted before it, then `status`, then close."""
        if self.closed or self.stopped:
            return
        self.stopped = True
        self.in_head = False
        self.pause_reading(self.STOPPED)
        parsing = self.parsing
        self.parsing = None
        if parsing is not None:
            parsing.reject(status, message)  # its body was cut short by the bad bytes
            return
        cycle = RequestCycle(self, b"", b"", None, None, False, b"", (status, message))
        if self.cycle is None:
            self.cycle = cycle
            cycle.start()
        else:
            self.pipeline.append(cycle)

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.in_head = True
        self.head_size = 0
        self.head_raw = 0
        self.head_marks += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if len(self.url) > self.server.settings.max_header_bytes:
            raise BadRequest("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.server.settings.max_header_bytes:
            raise BadRequest("request header too large", 431)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_marks += 1
        parser = self.parser
        method = parser.get_method()
        self.http10 = parser.get_http_version() == "1.0"
        keep_alive = parser.should_keep_alive() and not self.server.draining
        cycle = self.server.make_cycle(self, method, self.url, self.headers, keep_alive)
        self.parsing = self.latest = cycle
        self.body_at = time.monotonic()
        if self.cycle is None:
            self.cycle = cycle
            cycle.start()
        else:
            self.pipeline.append(cycle)
            self.pause_reading(self.PIPELINE)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.body_at = time.monotonic()
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        if cycle is None:
            return
        cycle.on_request_complete()
        if not cycle.keep_alive and (cycle.head is None or cycle.head.upgrade is None):
            # Connection: close (or an error that ends the connection): nothing after it is read,
            # so garbage behind it cannot cost the answer to this request.
            self.stopped = True
            raise StopParsing()

    # -- sequencing -----------------------------------------------------------------------------
    def cycle_done(self, cycle: RequestCycle) -> None:
        if cycle is not self.cycle:
            return
        self.cycle = None
        if cycle.upgraded:
            return  # the splice ends when either side closes
        if not cycle.keep_alive or self.closed:
            if self.parsing is cycle:
                self.parsing = None
            self.close(linger=self.stopped or not cycle.body_done)
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
            if self.held is not None:
                self._resume_parsing()
            elif self.server.draining:
                self.close()

    def expire(self, now: float) -> None:
        """Called by the sweeper: header-read, keep-alive, send and request timeouts."""
        settings = self.server.settings
        if self.closed:
            # Closing waits for the write buffer to drain; a peer that never reads must not hold it.
            if now - self.closed_at > settings.send_timeout:
                self.transport.abort()
            elif self.lingering and now - self.closed_at > LINGER and not self.transport.get_write_buffer_size():
                self.lingering = False
                self.transport.close()
            return
        if self.write_paused and now - self.write_paused_since > settings.send_timeout:
            self.abort()  # the client read nothing for sendTimeout: its request's slot is freed
            return
        if self.parsing is not None and not self.stopped:
            if self.paused:
                self.body_at = now  # we stopped reading it (flow control): not the client's delay
            elif now - self.body_at > settings.body_timeout:
                self._reject(408, "timed out reading the request body")  # nginx's client_body_timeout
                return
        cycle = self.cycle
        if cycle is not None:
            cycle.expire(now, settings.response_start_timeout)
            return
        if self.in_head:
            if now - self.head_started > settings.header_timeout:
                if self.fresh:
                    self.close()  # never said a word: nothing to answer
                else:
                    self._reject(408, "timed out reading the request header")
        elif self.parsing is None and self.held is None and now - self.idle_since > settings.keepalive_timeout:
            self.close()
