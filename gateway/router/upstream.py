"""Upstream side of the proxy: one Protocol per connection to a replica, lent to one request cycle at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httptools

from gateway.router.headers import ResponseHead
from gateway.router.sides import ResponseSink
from gateway.types import Endpoint


class HeadTooLarge(Exception):
    """The replica's response head passed spec.proxy.maxResponseHeaderBytes."""


class TooManyInterim(Exception):
    """The replica keeps sending 1xx responses instead of an answer."""


MAX_INTERIM = 16  # 1xx responses to one request (103 Early Hints, 100 Continue) before it is a 502
RESPONSE_EVENTS_PER_TURN = 256  # parser events one replica connection may cause per turn of the loop


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "head_limit",
        "head_size",
        "stalled",
        "marks",
        "in_head",
        "interim",
        "endpoint",
        "on_idle",
        "buffer_bytes",
        "transport",
        "parser",
        "sink",
        "head",
        "on_header",
        "reason",
        "idle_since",
        "closed",
        "upgraded",
        "reused",
        "bytes_received",
        "skip_body",
        "message_done",
        "parser_stale",
        "in_parser",
        "release_after_parse",
        "untrusted",
        "reading_paused",
    )

    def __init__(
        self, endpoint: Endpoint, on_idle: Callable[[UpstreamConnection], None], head_limit: int, buffer_bytes: int
    ) -> None:
        self.endpoint = endpoint
        self.on_idle = on_idle  # takes the connection back when a response left it reusable (the pool's put)
        self.head_limit = head_limit
        self.buffer_bytes = buffer_bytes
        self.head_size = 0  # bytes read while the response head was still incomplete
        self.stalled = 0  # bytes read since the parser last reported anything (a trailer line still growing)
        self.marks = 0  # parser events: a read that adds none is a line the parser is still collecting
        self.in_head = False
        self.interim = 0  # 1xx responses to the current request
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.head = ResponseHead()  # reused response after response (reset), so the parser can feed it directly
        self.on_header = self.head.add  # httptools' on_header callback: no call through the connection per header
        self.parser = httptools.HttpResponseParser(self)
        self.reason = b""
        self.idle_since = 0.0
        self.closed = False
        self.upgraded = False
        self.reused = False
        self.bytes_received = 0
        self.skip_body = False  # response to HEAD: ends with its head
        self.message_done = False
        self.parser_stale = False  # the parser is mid-message after a HEAD response: a new one is needed
        self.in_parser = False  # inside parser.feed_data: the connection must not be lent out yet
        self.release_after_parse: bool | None = None  # a release asked for from a parser callback
        self.untrusted = False  # bytes beyond the response: the replica cannot be trusted on this connection
        self.reading_paused = False  # paused through pause_reading (a slow client, a turn given up)

    # -- lifecycle ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.buffer_bytes)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink = self.sink
        self.sink = None
        if sink is not None:
            sink.on_upstream_lost(exc)

    def begin(self, sink: ResponseSink, head_only: bool) -> None:
        """Lend this connection to one request cycle."""
        self.sink = sink
        if self.parser_stale:
            self.parser = httptools.HttpResponseParser(self)
            self.parser_stale = False
        # self.head is empty: every complete head resets it, and a connection left mid-head is never lent again.
        self.reason = b""
        self.in_head = True
        self.head_size = self.stalled = self.interim = 0
        self.bytes_received = 0
        self.skip_body = head_only
        self.message_done = False
        self.untrusted = False

    def release(self, reusable: bool) -> None:
        """Give the connection back: to the pool when reusable, else closed."""
        self.sink = None
        if self.in_parser:
            self.release_after_parse = reusable
            return
        if reusable and not self.untrusted and not self.closed and self.transport is not None and not self.transport.is_closing():
            if self.reading_paused:
                self.resume_reading()  # paused for a slow client
            self.reused = True
            self.idle_since = time.monotonic()
            self.on_idle(self)
        else:
            self.close()

    def close(self) -> None:
        self.sink = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.sink = None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- flow control ---------------------------------------------------------------------------
    def pause_reading(self) -> None:
        """Stop reading the replica (the client is not taking what it sends); every pause goes through here."""
        if self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.pause_request()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.resume_request()

    # -- data -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            # Bytes on an idle connection: the replica is confused or closing; never reuse it.
            self.close()
            return
        if self.upgraded:
            sink.on_upstream_raw(data)
            return
        self.bytes_received += len(data)
        marks = self.marks
        self.in_parser = True
        try:
            self.parser.feed_data(data)
            if self.in_head or self.marks == marks:
                self._bound(len(data))
            else:
                self.stalled = 0  # the parser moved on: no line is growing
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.upgraded = True
            if self.sink is not None and offset < len(data):
                self.sink.on_upstream_raw(data[offset:])
        except (httptools.HttpParserError, HeadTooLarge) as exc:
            self._parse_failed(sink, exc)
        finally:
            self.in_parser = False
        if self.release_after_parse is not None:
            reusable = self.release_after_parse
            self.release_after_parse = None
            self.release(reusable)
        elif self.sink is not None:
            self.sink.flush()
            if self.marks - marks > RESPONSE_EVENTS_PER_TURN and self.transport is not None:
                # A replica streaming tiny pieces: let the loop serve others before reading on.
                self.pause_reading()
                asyncio.get_running_loop().call_soon(self._resume_turn)

    def _bound(self, size: int) -> None:
        """Bounds without a per-header cost: a head still incomplete after this read counts the whole
        read (so a head is cut at most one read past the limit); a read from which the parser
        reported nothing is a trailer line (or chunk line) still growing."""
        if self.in_head:
            self.head_size += size
            if self.head_size > self.head_limit:
                raise HeadTooLarge()
        else:
            self.stalled += size
            if self.stalled > self.head_limit:
                raise HeadTooLarge()

    def _parse_failed(self, sink: ResponseSink, exc: Exception) -> None:
        if isinstance(exc.__context__, TooManyInterim):
            sink.on_upstream_error(f"replica sent more than {MAX_INTERIM} interim (1xx) responses")
        elif isinstance(exc, HeadTooLarge) or isinstance(exc.__context__, HeadTooLarge):
            what = "a response head" if self.in_head else "response trailers"
            sink.on_upstream_error(f"replica sent {what} larger than {self.head_limit} bytes")
        elif self.message_done:
            self.untrusted = True
        else:
            sink.on_upstream_error(f"invalid response from replica: {exc}")

    def _resume_turn(self) -> None:
        sink = self.sink
        if self.transport is not None and not self.closed and sink is not None and not sink.client_write_paused():
            self.resume_reading()

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.message_done:
            self.untrusted = True
        self.in_head = True
        self.head_size = self.stalled = 0
        self.marks += 1

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_headers_complete(self) -> None:
        head = self.head
        # Exact, once per head (data_received bounds a head still arriving). A forwarded line is at most
        # one byte longer than it came ("a:\r\n" -> "a: \r\n"), so under half the limit read needs no sum.
        if 2 * self.bytes_received > self.head_limit and len(self.reason) + sum(map(len, head.lines)) > self.head_limit:
            raise HeadTooLarge()
        self.in_head = False
        self.marks += 1
        sink = self.sink
        if sink is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            head.reset()
            self.reason = b""
            self.interim += 1
            if self.interim > MAX_INTERIM:
                raise TooManyInterim()
            return  # interim response: dropped (the gateway answers Expect itself)
        if head.connection is not None:
            head.finish()
        if status == 101:
            self.upgraded = True
        sink.on_response_head(status, self.reason, head, self.parser.should_keep_alive())
        # What the cycle needed of the head was taken synchronously: empty again (head.reset(), inline).
        head.lines = []
        head.content_length = -1
        head.chunked = False
        head.upgrade = head.connection = None
        if self.skip_body and status != 101 and self.sink is sink:
            self.message_done = True
            self.parser_stale = True
            sink.on_response_complete()

    def on_body(self, body: bytes) -> None:
        self.marks += 1
        if self.message_done:
            self.untrusted = True
        elif self.sink is not None:
            self.sink.on_response_body(body)

    def on_message_complete(self) -> None:
        self.marks += 1
        if self.message_done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # interim, or 101 whose bytes after the head arrive as HttpParserUpgrade
        self.message_done = True
        if self.sink is not None:
            self.sink.on_response_complete()
