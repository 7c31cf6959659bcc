"""Client side of the proxy: one asyncio Protocol per accepted connection, httptools parsing.

Bytes reach the parser through `intake.ParserIntake`; each request becomes a `cycle.RequestCycle`
answered in order; timeouts are applied by `timeouts`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import httptools

from gateway.router.cycle import RequestCycle
from gateway.router.headers import BadRequest
from gateway.router.intake import REQUEST_EVENTS_PER_TURN, SLICE, ParserIntake, Pause, StopParsing
from gateway.router.routing import HeadMemo, Rejected, route
from gateway.router.state import ProxyState

LINGER = 2.0  # seconds to keep reading (and dropping) a client's bytes after answering it with a close
DISCARD_LIMIT = 1 << 20  # bytes read and dropped after a connection's last request before reading stops
FINISHED_PAUSES: frozenset[Pause] = frozenset({"replica", "buffer"})  # pauses that end with the request that caused them


class ClientConnection(ParserIntake, asyncio.Protocol):
    __slots__ = (
        "state",
        "on_open",
        "on_close",
        "transport",
        "parser",
        "peer",
        "trusted",
        "trusted_for",
        "memo",
        "url",
        "headers",
        "head_size",
        "in_head",
        "fresh",
        "head_started",
        "idle_since",
        "cycle",
        "parsing",
        "pipeline",
        "paused",
        "write_paused",
        "write_paused_since",
        "upgraded",
        "held",
        "stopped",
        "closed",
        "closed_at",
        "latest",
        "lingering",
        "body_at",
        "marks",
        "stalled",
        "work",
        "backlog",
        "scheduled",
        "advancing",
        "backlog_pos",
        "discarded",
    )

    def __init__(
        self, state: ProxyState, on_open: Callable[[ClientConnection], None], on_close: Callable[[ClientConnection], None]
    ) -> None:
        self.state = state
        self.on_open = on_open
        self.on_close = on_close
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.trusted = False  # the peer is one of spec.proxy.trustedProxies
        self.trusted_for: object = None  # the settings `trusted` was computed with
        self.memo = HeadMemo()  # the last request head read, for a client that sends the same again
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0  # request line and header bytes of the head being read, as the parser reports them
        self.marks = 0  # parser events seen: a slice that adds none is a line the parser is still collecting
        self.stalled = 0  # bytes fed since the parser last reported anything
        self.work = 0  # parser events this turn of the loop (see intake)
        self.backlog: bytearray | None = None  # received, to be parsed on a later turn (from backlog_pos)
        self.backlog_pos = self.discarded = 0
        self.scheduled = False  # intake's _continue is due
        self.advancing = False  # an _advance_now is due
        self.in_head = True  # the header timeout runs from accept
        self.fresh = True  # no byte received yet
        self.head_started = self.idle_since = 0.0
        self.cycle: RequestCycle | None = None  # the one whose response is being written
        self.parsing: RequestCycle | None = None  # the one whose body is being read
        self.pipeline: deque[RequestCycle] = deque()
        self.latest: RequestCycle | None = None  # the last request whose head was read
        self.paused: set[Pause] = set()  # why the transport is not being read
        self.write_paused = False
        self.write_paused_since = 0.0
        self.upgraded = False  # a 101 was relayed: bytes are spliced both ways
        # Bytes after an Upgrade request's head, held until its replica answers: spliced after a
        # 101, parsed as the next request otherwise. Never sent upstream before the 101.
        self.held: bytearray | None = None
        self.stopped = self.closed = False
        self.closed_at = 0.0
        self.lingering = False
        self.body_at = 0.0  # when the request body being read last advanced

    # -- lifecycle ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.head_started = self.idle_since = time.monotonic()
        self.on_open(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_close(self)
        if self.parsing is not None and self.parsing is not self.cycle:
            self.parsing.abort()
        if self.cycle is not None:
            self.cycle.abort()
        for cycle in self.pipeline:
            cycle.abort()
        self.pipeline.clear()

    def is_trusted(self) -> bool:
        settings = self.state.settings
        if self.trusted_for is not settings:
            self.trusted_for = settings
            self.trusted = self.state.trusts(self.peer)
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
            self.paused.clear()
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
    def pause_reading(self, reason: Pause) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume_reading(self, reason: Pause) -> None:
        paused = self.paused
        if reason in paused:
            paused.discard(reason)
            if not paused and not self.closed:
                self.transport.resume_reading()

    # What a request cycle may ask (sides.ClientSide).
    def hold_body(self) -> None:
        self.pause_reading("buffer")

    def release_body(self) -> None:
        self.resume_reading("buffer")

    def pause_for_replica(self) -> None:
        self.pause_reading("replica")

    def resume_for_replica(self) -> None:
        self.resume_reading("replica")

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
        else:
            self._advance()  # answers held back while the client was not reading

    # -- data -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # lingering: dropped
        if self.upgraded:
            if self.cycle is not None:
                self.cycle.on_client_raw(data)
            return
        if self.held is not None:
            self.hold(data)
            return
        if self.stopped:
            # Read and dropped, so that a client that leaves is noticed and its request aborted;
            # past a megabyte of it, reading stops.
            self.discarded += len(data)
            if self.discarded > DISCARD_LIMIT:
                self.pause_reading("discarding")
            return
        if self.backlog is not None:
            self.defer(data)  # earlier bytes still wait their turn
            return
        if len(data) <= SLICE and not self.pipeline and self.work < REQUEST_EVENTS_PER_TURN:
            # The common case, one call: a read that fits one slice, nothing queued. (A new
            # request's first byte starts its header clock in on_message_begin.)
            self.fresh = False
            self.feed(data, b"")
            return
        self.parse(data)

    def start_splice(self) -> bytes:
        """The replica answered 101: from now on bytes pass through; returns what was held."""
        self.upgraded = True
        held = bytes(self.held or b"")
        self.held = None
        self.resume_reading("buffer")
        return held

    def reject(self, status: int, message: str) -> None:
        """Input we cannot parse: answer every request accepted before it, then `status`, then close."""
        if self.closed or self.stopped:
            return
        self.stopped = True
        self.in_head = False
        self.backlog = None
        self.resume_reading("backlog")
        parsing = self.parsing
        self.parsing = None
        if parsing is not None:
            parsing.reject(status, message)  # its body was cut short by the bad bytes
            return
        self.pipeline.append(
            RequestCycle(Rejected(b"", b"", None, None, keep_alive=False, status=status, message=message), self, self.state)
        )
        self._advance()

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.in_head = True
        self.head_started = time.monotonic()  # headerTimeout runs per request, also when pipelined
        self.head_size = 0
        self.marks += 1
        self.work += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)  # a growing head_size is progress (see intake.feed)
        if len(self.url) > self.state.settings.max_header_bytes:
            raise BadRequest("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.state.settings.max_header_bytes:
            raise BadRequest("request header too large", 431)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.marks += 1
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(f"HTTP/{version} is not supported on this port: HTTP/1.1 or 1.0", 505)
        keep_alive = parser.should_keep_alive() and not self.state.draining
        state = self.state
        cycle = RequestCycle(route(state, method, self.url, self.headers, keep_alive, self), self, state)
        cycle.http10 = version == "1.0"  # the request's own: a pipelined request of another version must not reframe it
        self.parsing = self.latest = cycle
        if not cycle.body_done:
            self.body_at = time.monotonic()
        if self.cycle is None and not self.pipeline and not self.write_paused:
            self.cycle = cycle
            cycle.start()
        else:
            self.pipeline.append(cycle)
            self._advance()

    def on_body(self, body: bytes) -> None:
        self.marks += 1
        self.work += 1
        if self.parsing is not None:
            self.body_at = time.monotonic()
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        self.marks += 1
        cycle = self.parsing
        self.parsing = None
        if cycle is None:
            return
        if not cycle.body_done:
            cycle.on_request_complete()  # (without a body there is nothing to finish)
        if not cycle.keep_alive and (cycle.head is None or cycle.head.upgrade is None):
            # Connection: close (or an error that ends the connection): nothing after it is read,
            # so garbage behind it cannot cost the answer to this request.
            self.stopped = True
            raise StopParsing()

    # -- sequencing -----------------------------------------------------------------------------
    def _advance(self) -> None:
        """Start the next request when nothing is being answered and the client takes what it is sent."""
        if self.cycle is not None or self.closed:
            return
        if self.pipeline:
            if not self.write_paused:
                nxt = self.pipeline.popleft()
                self.cycle = nxt
                nxt.start()  # may finish at once (an error) and come back through cycle_done
                if not self.pipeline and self.backlog is not None:
                    self.schedule()  # the rest of its body may be waiting there
        elif self.backlog is not None:
            self.schedule()

    def cycle_done(self, cycle: object) -> None:
        current = self.cycle
        if cycle is not current or current is None:
            return
        self.cycle = None
        state = self.state
        if current.keep_alive and not current.upgraded and not self.closed and not state.starved and not self.paused:
            # _after's common case, inline: the connection goes on, maybe with something waiting.
            self.idle_since = time.monotonic()
            if self.pipeline or self.held is not None or self.backlog is not None or state.draining:
                self._next()
        else:
            self._after(current)
        if state.on_request_end is not None:
            state.on_request_end()  # draining: once this connection has settled what comes next

    def _after(self, done: RequestCycle) -> None:
        if done.upgraded:
            return  # the splice ends when either side closes
        if not done.keep_alive or self.closed:
            if self.parsing is done:
                self.parsing = None
            self.close(linger=self.stopped or not done.body_done)
            return
        if self.state.starved and not self.pipeline and self.backlog is None and self.held is None:
            self.close()  # at the connection limit with clients waiting: an idle keep-alive connection yields
            return
        self.idle_since = time.monotonic()
        paused = self.paused
        if paused:
            paused -= FINISHED_PAUSES  # pauses on behalf of the finished request's upload end with it
            if not paused and not self.closed:
                self.transport.resume_reading()
        self._next()

    def _next(self) -> None:
        """Between requests: the next pipelined one, bytes held after a declined upgrade, or what waits unparsed."""
        if self.pipeline:
            self._advance_soon()
        elif self.held is not None:
            self.resume_parsing()
        elif self.backlog is not None:
            self.schedule()
        elif self.state.draining:
            self.close()

    def _advance_soon(self) -> None:
        """The next pipelined request starts on the next turn: no recursion through answers made at once."""
        if not self.advancing:
            self.advancing = True
            asyncio.get_running_loop().call_soon(self._advance_now)

    def _advance_now(self) -> None:
        self.advancing = False
        self._advance()
