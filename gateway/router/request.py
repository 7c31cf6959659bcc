"""The request half of a request cycle: the client's body relayed to the replica, or held until one is there.

`RequestRelay` is a part of `cycle.RequestCycle`, which keeps the state both halves share.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from gateway.router.framing import LAST_CHUNK
from gateway.router.phases import DONE, SENT, Phase
from gateway.router.retry import REPLAY_LIMIT

if TYPE_CHECKING:
    from gateway.router.headers import RequestHead
    from gateway.router.sides import ClientSide
    from gateway.router.state import ProxyState
    from gateway.router.upstream import UpstreamConnection


# An empty tuple standing for a list of pieces until its first piece (most requests and answers never have one,
# or have just one): no list is made for nothing. Appending to it fails loudly, so it is replaced, never grown.
NO_PIECES: list[bytes] = cast("list[bytes]", ())


class RequestRelay:
    if not TYPE_CHECKING:  # no instance dict; the slots are declared by the class that mixes this in
        __slots__ = ()

    # State kept by RequestCycle, read and written here.
    client: ClientSide
    state: ProxyState
    head: RequestHead | None
    head_only: bool
    upstream_head: bytes
    keep_alive: bool
    phase: Phase
    sent_at: float
    upstream: UpstreamConnection | None
    body_buf: list[bytes]
    body_buffered: int
    body_done: bool
    body_seen: int
    outbox: list[bytes]
    replay: list[bytes] | None

    # Provided by RequestCycle.
    def fail(self, status: int, message: str) -> None:
        raise NotImplementedError

    @property
    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come (0 when chunked or done)."""
        head = self.head
        if head is None or head.chunked or self.body_done:
            return 0
        return head.content_length - self.body_seen

    def on_request_body(self, data: bytes) -> None:
        if self.phase == DONE:
            return
        self.body_seen += len(data)
        if self.body_seen > self.state.settings.max_body_bytes:
            self.keep_alive = False
            self.fail(413, "request body larger than the limit")
            return
        if self.outbox:
            self.outbox.append(data)
        else:
            self.outbox = [data]

    def flush_body(self) -> None:
        """What one parser call delivered of the body goes on as one piece (one chunk, one write):
        a client sending a million 1-byte chunks costs the replica connection no million writes."""
        outbox = self.outbox
        if not outbox:
            return
        self.outbox = NO_PIECES
        if self.phase == DONE:
            return
        head = self.head
        assert head is not None
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        if head.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        replay = self.replay
        if replay is not None:
            if self.body_seen > REPLAY_LIMIT:
                self.replay = None
            elif replay:
                replay.append(data)
            else:
                self.replay = [data]
        self._to_replica(data)

    def _to_replica(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
            return
        if self.body_buf:
            self.body_buf.append(data)
        else:
            self.body_buf = [data]
        self.body_buffered += len(data)
        if self.body_buffered > self.state.settings.buffer_bytes:
            self.client.hold_body()

    def on_request_complete(self) -> None:
        if self.body_done:
            return  # no body (or given up on): send() already started the response-start clock
        if self.outbox:
            self.flush_body()
        self.body_done = True
        if self.phase == SENT:
            self.sent_at = time.monotonic()
        if self.phase == DONE or self.head is None or not self.head.chunked:
            return
        if self.replay is not None:
            self.replay = [*self.replay, LAST_CHUNK]
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(LAST_CHUNK)
        else:
            self.body_buf = [*self.body_buf, LAST_CHUNK]

    def on_client_raw(self, data: bytes) -> None:
        """Client bytes after the replica switched protocols: spliced as they are."""
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)

    def pause_request(self) -> None:
        self.client.pause_for_replica()

    def resume_request(self) -> None:
        self.client.resume_for_replica()
