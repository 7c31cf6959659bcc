"""The response half of a request cycle: the replica's answer relayed to the client, framed for it.

`ResponseRelay` is what an upstream connection reports to (`sides.ResponseSink`); `RequestCycle`
(cycle.py) is one, and keeps the state both halves share.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.router.error_responses import reason
from gateway.router.framing import LAST_CHUNK, LENGTH, Framing, choose_framing
from gateway.router.headers import ResponseHead
from gateway.router.phases import DONE, STREAMING, Phase
from gateway.router.request import NO_PIECES
from gateway.router.retry import may_resend

if TYPE_CHECKING:
    from gateway.router.headers import RequestHead
    from gateway.router.revision import RevisionRuntime
    from gateway.router.sides import ClientSide
    from gateway.router.state import ProxyState
    from gateway.router.throttler import Tracker
    from gateway.router.upstream import UpstreamConnection

log = logging.getLogger(__name__)

CHUNKED_HEADER = b"transfer-encoding: chunked\r\n"
CLOSE_HEADER = b"connection: close\r\n"
KEEP_ALIVE_HEADER = b"connection: keep-alive\r\n"
COLD_START_HEADER = b"x-gateway-cold-start: true\r\n"


# Status lines and Content-Length lines already made, by (status, reason) and by length: a response head
# costs a dict lookup instead of formatting. Bounded: past the limit a new one is formatted and not kept.
_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}
_LENGTH_LINES: dict[int, bytes] = {}
KEEP_LINES = 256


def status_line(status: int, reason_: bytes) -> bytes:
    line = b"HTTP/1.1 %d %s\r\n" % (status, reason_ or reason(status))
    if len(_STATUS_LINES) < KEEP_LINES and len(reason_) <= 64:
        _STATUS_LINES[status, reason_] = line
    return line


def length_line(length: int) -> bytes:
    line = b"content-length: %d\r\n" % length
    if len(_LENGTH_LINES) < KEEP_LINES:
        _LENGTH_LINES[length] = line
    return line


class ResponseRelay:
    if not TYPE_CHECKING:  # no instance dict; the slots are declared by the class that mixes this in
        __slots__ = ()

    # State kept by RequestCycle, read and written here.
    client: ClientSide
    state: ProxyState
    method: bytes
    head: RequestHead | None
    runtime: RevisionRuntime | None
    keep_alive: bool
    phase: Phase
    tracker: Tracker | None
    upstream: UpstreamConnection | None
    body_done: bool
    replay: list[bytes] | None
    attempts: int
    cold_start: bool
    head_only: bool
    http10: bool
    response_started: bool
    framing: Framing
    upgraded: bool
    pending: bytes
    out: list[bytes]
    reusable: bool
    status: int

    # Provided by RequestCycle.
    def fail(self, status: int, message: str) -> None:
        raise NotImplementedError

    def finish(self, status: int) -> None:
        raise NotImplementedError

    def resend(self) -> None:
        raise NotImplementedError

    # -- the head -------------------------------------------------------------------------------
    def on_response_head(self, status: int, reason_: bytes, resp: ResponseHead, keep_alive: bool) -> None:
        if self.phase == DONE:
            return
        upgrade = self.head.upgrade if self.head is not None else None
        if status == 101 and upgrade is None:
            self.on_upstream_error("replica switched protocols without being asked to")
            return
        self.phase = STREAMING
        self.status = status
        # A declined upgrade: the replica may still expect the other protocol; never reuse it.
        self.reusable = keep_alive and upgrade is None
        runtime = self.runtime
        assert runtime is not None
        parts = [_STATUS_LINES.get((status, reason_)) or status_line(status, reason_), *resp.lines, runtime.header]
        if self.cold_start:
            parts.append(COLD_START_HEADER)
        if status == 101:
            self._switch_protocols(parts, resp)
            return
        length = resp.content_length
        if length >= 0 and not resp.chunked and not self.head_only and status != 204 and status != 304:
            framing = self.framing = LENGTH  # choose_framing's commonest answer, without the call
        else:
            framing = self.framing = choose_framing(status, resp, self.head_only, self.http10)
        if framing.sends_length:
            parts.append(_LENGTH_LINES.get(length) or length_line(length))
        elif framing.chunked:
            parts.append(CHUNKED_HEADER)
        if framing.close_after or not self.keep_alive or self.state.draining:
            self.keep_alive = False
            parts.append(CLOSE_HEADER)
        elif self.http10:
            parts.append(KEEP_ALIVE_HEADER)
        parts.append(b"\r\n")
        self.pending = b"".join(parts)
        self.response_started = True

    def _switch_protocols(self, parts: list[bytes], resp: ResponseHead) -> None:
        """A 101: the head goes out now and from here on bytes pass through both ways."""
        self.upgraded = True
        self.keep_alive = False
        parts.append(b"connection: upgrade\r\nupgrade: " + (resp.upgrade or b"websocket") + b"\r\n\r\n")
        self.client.write(b"".join(parts))
        self.response_started = True
        held = self.client.start_splice()
        upstream = self.upstream
        if held and upstream is not None and upstream.transport is not None:
            upstream.transport.write(held)

    # -- the body -------------------------------------------------------------------------------
    def on_response_body(self, data: bytes) -> None:
        if self.phase == DONE:
            return
        if self.framing.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        # written once per read of the replica (flush), not once per chunk
        if self.out:
            self.out.append(data)
        else:
            self.out = [data]

    def flush(self) -> None:
        """After each read of the replica: what it produced for the client, in one write."""
        out = self.out
        if out:
            self.out = NO_PIECES
            data = self.pending + (out[0] if len(out) == 1 else b"".join(out))
            self.pending = b""
            self.client.write(data)
        elif self.pending:
            pending = self.pending
            self.pending = b""
            self.client.write(pending)

    def on_upstream_raw(self, data: bytes) -> None:
        self.client.write(data)

    def on_response_complete(self) -> None:
        if self.phase == DONE:
            return
        tail = LAST_CHUNK if self.framing.chunked else b""
        out = self.out
        if out:
            self.out = NO_PIECES
            self.client.write(self.pending + (out[0] if len(out) == 1 else b"".join(out)) + tail)
            self.pending = b""
        elif self.pending or tail:
            self.client.write(self.pending + tail)
            self.pending = b""
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.release(self.reusable and self.body_done)
        if not self.body_done or self.framing.close_after:
            self.keep_alive = False
        self.finish(self.status)

    # -- flow control ---------------------------------------------------------------------------
    def client_write_paused(self) -> bool:
        return self.client.write_paused

    def pause_response(self) -> None:
        """The client's write buffer is full: stop reading the replica until it drains."""
        upstream = self.upstream
        if upstream is not None:
            upstream.pause_reading()

    def resume_response(self) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.resume_reading()

    # -- failures -------------------------------------------------------------------------------
    def on_upstream_lost(self, exc: Exception | None) -> None:
        if self.phase == DONE:
            return
        upstream = self.upstream
        self.upstream = None
        if self.upgraded:
            self.finish(101)
            self.client.close()  # what the replica sent last still reaches the client
            return
        if self.response_started and self.framing.replica_until_close:
            self.reusable = False
            self.on_response_complete()  # the replica's close is the end of its body
            return
        if upstream is None:
            self.fail(502, f"replica closed the connection before responding{f': {exc}' if exc else ''}")
            return
        self.state.pools.drop(upstream.endpoint)  # its other idle connections are suspect too
        if not self.response_started and self._may_resend(upstream):
            log.debug("%s: reused connection closed before any response, retrying", self.runtime.key if self.runtime else "")
            self.resend()
            return
        if self.runtime is not None:
            # A replica that drops a request it cannot be given again has likely died; while it
            # dies its listening socket may still accept and then reset. Out of rotation (before
            # this cycle frees its slot) until it accepts connections again.
            self.runtime.endpoint_failed(upstream.endpoint)
        if self.response_started:
            self.pending = b""
            self.out = NO_PIECES
            self.fail(502, f"replica closed the connection in the middle of its response: {exc or 'EOF'}")
        else:
            self.fail(502, f"replica closed the connection before responding{f': {exc}' if exc else ''}")

    def _may_resend(self, upstream: UpstreamConnection) -> bool:
        return may_resend(
            reused=upstream.reused,
            bytes_received=upstream.bytes_received,
            attempts=self.attempts,
            method=self.method,
            body_done=self.body_done,
            replayable=self.replay is not None,
        )

    def on_upstream_error(self, message: str) -> None:
        self.fail(502, message)
