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
DISCARD_LIMIT = 1 << 20  # bytes read and dropped after a connection's last request before reading stops
SLICE = 16 * 1024  # bytes fed to the parser at a time between requests (see _parse)
WORK_PER_TURN = 128  # parser events (requests, body pieces) one connection may cause per turn of the loop


class StopParsing(Exception):
    """Raised from a parser callback: the request just read is the connection's last."""


class ClientConnection(asyncio.Protocol):
    # Reasons to stop reading from the client; reading resumes when none is left.
    BUFFER = 2
    UPSTREAM = 4
    STOPPED = 8  # nothing more will be parsed on this connection
    BACKLOG = 16  # bytes already received wait to be parsed

    __slots__ = (
        "server",
        "transport",
        "parser",
        "peer",
        "trusted",
        "trusted_for",
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
        "http10",
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
        self.marks = 0  # parser events seen: a slice that adds none is a line the parser is still collecting
        self.stalled = 0  # bytes fed since the parser last reported anything
        self.work = 0  # parser events this turn of the loop (see _parse)
        self.backlog: bytearray | None = None  # received, to be parsed on a later turn (from backlog_pos)
        self.backlog_pos = 0
        self.discarded = 0
        self.scheduled = False  # a _continue is due
        self.advancing = False  # an _advance_now is due
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
            self._hold(data)
            return
        if self.stopped:
            # Read and dropped, so that a client that leaves is noticed and its request aborted;
            # past a megabyte of it, reading stops.
            self.discarded += len(data)
            if self.discarded > DISCARD_LIMIT:
                self.pause_reading(self.STOPPED)
            return
        if self.backlog is not None:
            self._defer(data)  # earlier bytes still wait their turn
            return
        if len(data) <= SLICE and not self.pipeline and self.work < WORK_PER_TURN:
            # The common case, one call: a read that fits one slice, nothing queued. (A new
            # request's first byte starts its header clock in on_message_begin.)
            self.fresh = False
            self._feed(data, b"")
            return
        self._parse(data)

    def _parse(self, data: bytes | bytearray, pos: int = 0) -> None:
        # `data` is a fresh read, or the backlog taken by _continue (then kept again without a copy).
        """Feed the parser a slice at a time; stop once a request waits behind the one being answered.

        As nginx reads a pipelined request only when the previous one is answered: a client's bytes
        never turn into thousands of request objects at once, and one client's flood cannot keep
        the loop from everyone else (after WORK_PER_TURN parser events the rest waits a turn).
        """
        self.fresh = False
        if not self.in_head and self.parsing is None:
            self.in_head = True
            self.head_started = time.monotonic()
        size = len(data)
        while pos < size:
            if self.pipeline or self.work >= WORK_PER_TURN:
                if isinstance(data, bytearray) and self.backlog is None:
                    self.backlog = data  # kept where it is: no copy of what remains
                    self.backlog_pos = pos
                    self._backlog_changed()
                else:
                    self._defer(data[pos:])
                return
            parsing = self.parsing
            step = SLICE
            if parsing is not None and parsing.body_left > 0:
                step = max(step, parsing.body_left)  # the rest of a Content-Length body in one go
            end = pos + step
            chunk = data if pos == 0 and end >= size and isinstance(data, bytes) else bytes(data[pos:end])
            if not self._feed(chunk, bytes(data[end:]) if end < size else b""):
                return
            pos = end

    def _feed(self, chunk: bytes, rest: bytes) -> bool:
        """One parser call; False when the connection stopped being parsed (error, upgrade, close)."""
        marks = self.marks
        size = self.head_size
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(chunk)
            self._upgrade_requested(chunk[offset:] + rest)
            return False
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, StopParsing):
                return False
            if isinstance(cause, BadRequest):
                self._reject(cause.status, str(cause))
            else:
                log.debug("request parser callback failed", exc_info=cause)
                self._reject(400, "invalid HTTP request")
            return False
        except httptools.HttpParserError as exc:
            self._reject(400, f"invalid HTTP request: {exc}")
            return False
        finally:
            parsing = self.parsing
            if parsing is not None and parsing.outbox:
                parsing.flush_body()  # the body bytes of this call, to the replica in one write
        if self.marks == marks and self.head_size == size:
            # Nothing came out of the whole slice: the parser is collecting a header line, a
            # trailer or a chunk line. Those count against the head limit, however they arrive.
            self.stalled += len(chunk)
            if self.stalled > self.server.settings.max_header_bytes:
                if self.in_head:
                    self._reject(431, "request header too large")
                else:
                    self._reject(400, "request trailers or chunk line too long")
                return False
        else:
            self.stalled = 0
        return not self.stopped

    def _defer(self, data: bytes | bytearray) -> None:
        """Keep bytes for later: behind a queued request, or for the next turn of the loop."""
        backlog = self.backlog
        if backlog is None:
            self.backlog = bytearray(data)
            self.backlog_pos = 0
        else:
            if self.backlog_pos:
                del backlog[: self.backlog_pos]  # once per read: what was parsed goes
                self.backlog_pos = 0
            backlog += data
        self._backlog_changed()

    def _backlog_changed(self) -> None:
        """Read no more while a buffer's worth waits (nginx reads a pipelined request when there is room)."""
        backlog = self.backlog
        if backlog is not None and len(backlog) - self.backlog_pos > self.server.settings.buffer_bytes:
            self.pause_reading(self.BACKLOG)
        else:
            self.resume_reading(self.BACKLOG)
        if backlog is not None and not self.pipeline:
            self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        """A later turn of the loop: parse what was kept."""
        self.scheduled = False
        self.work = 0
        if self.closed or self.stopped or self.pipeline:
            return
        data = self.backlog
        if data is None:
            return
        self.backlog = None  # taken: _parse keeps what it does not get to (the same bytearray)
        self.resume_reading(self.BACKLOG)
        if self.upgraded or self.held is not None:
            self.data_received(bytes(data[self.backlog_pos :]))
        else:
            self._parse(data, self.backlog_pos)

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
        """The upgrade was declined: what the client sent after it is its next request (parsed next turn)."""
        held = self.held
        self.held = None
        if self.closed:
            return
        self.parser = httptools.HttpRequestParser(self)
        self.in_head = False
        if held:
            self._defer(bytes(held))
        else:
            self.resume_reading(self.BUFFER)

    def _reject(self, status: int, message: str) -> None:
        """Input we cannot parse: answer every request accepted before it, then `status`, then close."""
        if self.closed or self.stopped:
            return
        self.stopped = True
        self.in_head = False
        self.backlog = None
        self.resume_reading(self.BACKLOG)
        parsing = self.parsing
        self.parsing = None
        if parsing is not None:
            parsing.reject(status, message)  # its body was cut short by the bad bytes
            return
        self.pipeline.append(RequestCycle(self, b"", b"", None, None, False, b"", (status, message)))
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
        self.head_size += len(url)  # a growing head_size is progress (see _feed)
        if len(self.url) > self.server.settings.max_header_bytes:
            raise BadRequest("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.server.settings.max_header_bytes:
            raise BadRequest("request header too large", 431)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.marks += 1
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(f"HTTP/{version} is not supported on this port: HTTP/1.1 or 1.0", 505)
        self.http10 = version == "1.0"
        keep_alive = parser.should_keep_alive() and not self.server.draining
        cycle = self.server.make_cycle(self, method, self.url, self.headers, keep_alive)
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
        cycle.on_request_complete()
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
                    self._schedule()  # the rest of its body may be waiting there
        elif self.backlog is not None:
            self._schedule()

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
        if self.server.starved and not self.pipeline and self.backlog is None and self.held is None:
            self.close()  # at the connection limit with clients waiting: an idle keep-alive connection yields
            return
        self.idle_since = time.monotonic()
        # Pauses on behalf of the finished cycle's upload end with it.
        self.resume_reading(self.UPSTREAM | self.BUFFER)
        if self.pipeline:
            self._advance_soon()
        elif self.held is not None:
            self._resume_parsing()
        elif self.backlog is not None:
            self._schedule()
        elif self.server.draining:
            self.close()

    def _advance_soon(self) -> None:
        """The next pipelined request starts on the next turn: no recursion through answers made at once."""
        if not self.advancing:
            self.advancing = True
            asyncio.get_running_loop().call_soon(self._advance_now)

    def _advance_now(self) -> None:
        self.advancing = False
        self._advance()

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
