"""How a client's bytes reach the request parser: a slice at a time, and never ahead of the answers.

As nginx reads a pipelined request only when the previous one is answered: a client's bytes never
turn into thousands of request objects at once, and one client's flood cannot keep the loop from
everyone else (after REQUEST_EVENTS_PER_TURN parser events the rest waits a turn of the loop).
`ParserIntake` is a part of `client.ClientConnection`, which keeps the state both share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Literal

import httptools

from gateway.router.headers import BadRequest
from gateway.router.phases import DONE

if TYPE_CHECKING:
    from gateway.router.cycle import RequestCycle
    from gateway.router.state import ProxyState

log = logging.getLogger(__name__)

SLICE = 16 * 1024  # bytes fed to the parser at a time between requests
REQUEST_EVENTS_PER_TURN = 128  # parser events (requests, body pieces) one connection may cause per turn of the loop

# Why the client connection is not being read; reading resumes when no reason is left.
Pause = Literal["buffer", "replica", "discarding", "backlog"]


class StopParsing(Exception):
    """Raised from a parser callback: the request just read is the connection's last."""


class ParserIntake:
    if not TYPE_CHECKING:  # no instance dict; the slots are declared by the class that mixes this in
        __slots__ = ()

    # State kept by ClientConnection.
    state: ProxyState
    parser: httptools.HttpRequestParser
    parsing: RequestCycle | None
    pipeline: deque[RequestCycle]
    in_head: bool
    fresh: bool
    head_started: float
    head_size: int
    marks: int
    stalled: int
    work: int
    backlog: bytearray | None
    backlog_pos: int
    scheduled: bool
    stopped: bool
    closed: bool
    upgraded: bool
    held: bytearray | None
    cycle: RequestCycle | None
    latest: RequestCycle | None

    # Provided by ClientConnection.
    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def pause_reading(self, reason: Pause) -> None:
        raise NotImplementedError

    def resume_reading(self, reason: Pause) -> None:
        raise NotImplementedError

    def reject(self, status: int, message: str) -> None:
        raise NotImplementedError

    # -- the parser, a slice at a time ---------------------------------------------------------------------
    def parse(self, data: bytes | bytearray, pos: int = 0) -> None:
        """Feed the parser a slice at a time; stop once a request waits behind the one being answered.

        `data` is a fresh read, or the backlog taken by `_continue` (then kept again without a copy).
        """
        self.fresh = False
        if not self.in_head and self.parsing is None:
            self.in_head = True
            self.head_started = time.monotonic()
        size = len(data)
        while pos < size:
            if self.pipeline or self.work >= REQUEST_EVENTS_PER_TURN:
                if isinstance(data, bytearray) and self.backlog is None:
                    self.backlog = data  # kept where it is: no copy of what remains
                    self.backlog_pos = pos
                    self._backlog_changed()
                else:
                    self.defer(data[pos:])
                return
            parsing = self.parsing
            step = SLICE
            if parsing is not None and parsing.body_left > 0:
                step = max(step, parsing.body_left)  # the rest of a Content-Length body in one go
            end = pos + step
            chunk = data if pos == 0 and end >= size and isinstance(data, bytes) else bytes(data[pos:end])
            if not self.feed(chunk, bytes(data[end:]) if end < size else b""):
                return
            pos = end

    def feed(self, chunk: bytes, rest: bytes) -> bool:
        """One parser call; False when the connection stopped being parsed (error, upgrade, close)."""
        marks = self.marks
        size = self.head_size
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(chunk)
            self.upgrade_requested(chunk[offset:] + rest)
            return False
        except httptools.HttpParserCallbackError as exc:
            self._callback_failed(exc.__context__)
            return False
        except httptools.HttpParserError as exc:
            self.reject(400, f"invalid HTTP request: {exc}")
            return False
        finally:
            parsing = self.parsing
            if parsing is not None and parsing.outbox:
                parsing.flush_body()  # the body bytes of this call, to the replica in one write
        if self.marks == marks and self.head_size == size:
            # Nothing came out of the whole slice: the parser is collecting a header line, a
            # trailer or a chunk line. Those count against the head limit, however they arrive.
            self.stalled += len(chunk)
            if self.stalled > self.state.settings.max_header_bytes:
                if self.in_head:
                    self.reject(431, "request header too large")
                else:
                    self.reject(400, "request trailers or chunk line too long")
                return False
        else:
            self.stalled = 0
        return not self.stopped

    def _callback_failed(self, cause: BaseException | None) -> None:
        if isinstance(cause, StopParsing):
            return
        if isinstance(cause, BadRequest):
            self.reject(cause.status, str(cause))
        else:
            log.debug("request parser callback failed", exc_info=cause)
            self.reject(400, "invalid HTTP request")

    # -- bytes kept for later -------------------------------------------------------------------
    def defer(self, data: bytes | bytearray) -> None:
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
        if backlog is not None and len(backlog) - self.backlog_pos > self.state.settings.buffer_bytes:
            self.pause_reading("backlog")
        else:
            self.resume_reading("backlog")
        if backlog is not None and not self.pipeline:
            self.schedule()

    def schedule(self) -> None:
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
        self.backlog = None  # taken: parse keeps what it does not get to (the same bytearray)
        self.resume_reading("backlog")
        if self.upgraded or self.held is not None:
            self.data_received(bytes(data[self.backlog_pos :]))
        else:
            self.parse(data, self.backlog_pos)

    # -- bytes after an Upgrade request ---------------------------------------------------------
    def upgrade_requested(self, rest: bytes) -> None:
        """The parser stopped after an Upgrade request; what follows waits for the replica's answer."""
        last = self.latest
        if last is None or last.head is None or last.head.upgrade is None:
            self.reject(400, "unsupported upgrade or CONNECT request")
            return
        self.held = bytearray()
        self.hold(rest)
        if last.phase == DONE and self.cycle is None:  # answered already (an error): what was held is the next request
            self.resume_parsing()

    def hold(self, data: bytes) -> None:
        held = self.held
        assert held is not None
        held += data
        if len(held) > self.state.settings.buffer_bytes:
            self.pause_reading("buffer")

    def resume_parsing(self) -> None:
        """The upgrade was declined: what the client sent after it is its next request (parsed next turn)."""
        held = self.held
        self.held = None
        if self.closed:
            return
        self.parser = httptools.HttpRequestParser(self)
        self.in_head = False
        if held:
            self.defer(bytes(held))
        else:
            self.resume_reading("buffer")
