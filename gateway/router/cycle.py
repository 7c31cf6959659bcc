"""One request from its head to its last response byte: admission, a replica slot, the endings.

The request body's way to the replica is `request.RequestRelay`, the answer's way back
`response.ResponseRelay`; the decisions about retrying are `retry`; timeouts are applied from
outside by `timeouts`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.resources import is_local_shortage
from gateway.router.error_responses import error_response
from gateway.router.framing import NO_BODY
from gateway.router.phases import CONNECTING, DONE, QUEUED, SENT, Phase
from gateway.router.request import NO_PIECES, RequestRelay
from gateway.router.response import ResponseRelay
from gateway.router.retry import MAX_ATTEMPTS, AfterConnectFailure, after_connect_failure
from gateway.router.routing import Rejected, Routed, reroute
from gateway.router.sides import ClientSide
from gateway.router.state import ProxyState
from gateway.router.throttler import QueueFull, Tracker
from gateway.router.upstream import UpstreamConnection

log = logging.getLogger(__name__)

# Backend states in which a revision without a ready replica will not get one soon.
UNAVAILABLE = frozenset({"failed", "crash-backoff"})

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def unavailable_message(state: tuple[str, str | None]) -> str:
    if state[0] == "crash-backoff":
        return f"revision's replicas are failing (crash back-off): {state[1]}"
    return f"revision cannot start: {state[1]}"


class RequestCycle(RequestRelay, ResponseRelay):
    """Owns one request: its revision's slot, the upstream connection it borrows, its answer."""

    __slots__ = (
        "client",
        "state",
        "method",
        "url",
        "head",
        "runtime",
        "keep_alive",
        "upstream_head",
        "error",
        "phase",
        "started",
        "sent_at",
        "tracker",
        "upstream",
        "body_buf",
        "body_buffered",
        "body_done",
        "body_seen",
        "outbox",
        "replay",
        "attempts",
        "waiter",
        "cold_start",
        "wait_started",
        "in_stats",
        "connecting",
        "timeout",
        "head_only",
        "http10",
        "response_started",
        "framing",
        "upgraded",
        "pending",
        "out",
        "reusable",
        "status",
    )

    def __init__(self, request: Routed | Rejected, client: ClientSide, state: ProxyState) -> None:
        self.client = client
        self.state = state
        self.method = request.method
        self.url = request.url
        head = self.head = request.head
        runtime = self.runtime = request.runtime
        self.keep_alive = request.keep_alive
        if isinstance(request, Routed):
            self.upstream_head = request.upstream_head
            self.error: tuple[int, str] | None = None
        else:
            self.upstream_head = b""
            self.error = (request.status, request.message)  # answered instead of proxied
        self.phase: Phase = QUEUED
        self.started = 0.0
        self.sent_at = 0.0
        self.tracker: Tracker | None = None
        self.upstream: UpstreamConnection | None = None
        self.body_buf = NO_PIECES  # framed body pieces waiting for a replica connection
        self.body_buffered = 0
        self.body_done = head is None or (head.content_length <= 0 and not head.chunked)
        self.body_seen = 0
        self.outbox = NO_PIECES  # body bytes of the current parser call, framed and sent together
        # the framed body so far, to send again on a retry; None past REPLAY_LIMIT
        self.replay: list[bytes] | None = NO_PIECES
        self.attempts = 0
        self.waiter: asyncio.Future[Tracker] | None = None
        self.cold_start = False  # waited for its revision's first replica
        self.wait_started = 0.0
        self.in_stats = False  # entered the revision's concurrency stats
        self.connecting: asyncio.Task[None] | None = None  # the connect under way (kept: the loop holds tasks weakly)
        self.timeout = runtime.request_timeout if runtime is not None else 0.0
        self.head_only = self.method == b"HEAD"
        self.http10 = False  # an HTTP/1.0 request: no chunked response, no 100 Continue (set by the client)
        self.response_started = False  # the response head was handed to the client
        self.framing = NO_BODY
        self.upgraded = False
        self.pending = b""  # the response head, written with the first body bytes
        self.out = NO_PIECES  # response pieces of the current read of the replica
        self.reusable = False
        self.status = 0

    # -- admission ------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = time.monotonic()
        if self.error is not None:
            self.fail(*self.error)
            return
        runtime = self.runtime
        assert runtime is not None
        if runtime.stats is not None:
            runtime.stats.request_in(self.started)
            self.in_stats = True
        tracker = runtime.throttler.try_acquire()
        if tracker is not None:
            self.dispatch(tracker)
        else:
            self.enqueue()

    def enqueue(self) -> None:
        runtime = self.runtime
        assert runtime is not None
        throttler = runtime.throttler
        if not runtime.scalable and throttler.reachable == 0:
            tracker = throttler.take_down() if self.attempts < MAX_ATTEMPTS else None
            if tracker is None:
                self.fail(502, "no replica of this revision is reachable")
            else:
                self.dispatch(tracker)
            return
        try:
            waiter = throttler.wait()
        except QueueFull:
            self.fail(503, "too many requests waiting for this revision")
            return
        self.phase = QUEUED
        self.waiter = waiter
        if not self.wait_started:
            self.wait_started = time.monotonic()
        if throttler.ready == 0:
            state = self.backend_state()
            if state[0] in UNAVAILABLE:
                self.fail(503, unavailable_message(state))
                return
            self.cold_start = True
            if runtime.poke is not None:
                runtime.poke()
        waiter.add_done_callback(self._granted)

    def backend_state(self) -> tuple[str, str | None]:
        """(state, message) of the revision from its backend; read only when no replica is ready."""
        runtime = self.runtime
        if runtime is None or runtime.backend_state is None:
            return ("ok", None)
        return runtime.backend_state(runtime.key)

    def _granted(self, waiter: asyncio.Future[Tracker]) -> None:
        if waiter.cancelled():
            return
        if waiter.exception() is not None:  # Retired: a reload removed the revision while this waited
            if self.waiter is waiter and self.phase != DONE:
                self.waiter = None
                self._reroute()
            return
        tracker = waiter.result()
        runtime = self.runtime
        assert runtime is not None
        if self.waiter is not waiter or self.phase == DONE:
            runtime.throttler.release(tracker)  # given up while the grant was in flight
            return
        self.waiter = None
        if self.cold_start:
            runtime.record_cold_start(time.monotonic() - self.wait_started)
        self.dispatch(tracker)

    def _reroute(self) -> None:
        """Its revision was retired before a replica took the request (nothing was sent): the service's current
        route takes it (same Host, the new split), or a 503 at once when the service is gone."""
        old = self.runtime
        assert old is not None and self.head is not None
        runtime = reroute(self.state, self.head)
        if runtime is None:
            self.fail(
                503,
                f"revision {old.key} was removed by a reload while this request waited for it, and no service has its host now",
            )
            return
        now = time.monotonic()
        if self.in_stats and old.stats is not None:
            old.stats.request_out(now)
        self.in_stats = False
        self.runtime = runtime
        self.timeout = runtime.request_timeout
        self.cold_start = False
        self.wait_started = 0.0  # the new revision gets its own activation window
        if runtime.stats is not None:
            runtime.stats.request_in(now)
            self.in_stats = True
        tracker = runtime.throttler.try_acquire()
        if tracker is not None:
            self.dispatch(tracker)
        else:
            self.enqueue()

    # -- a replica connection -------------------------------------------------------------------
    def dispatch(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.attempts += 1
        conn = self.state.pools.get(tracker.endpoint)
        if conn is not None:
            self.send(conn)
        else:
            self.phase = CONNECTING
            self.connecting = asyncio.get_running_loop().create_task(self._connect(tracker))

    async def _connect(self, tracker: Tracker) -> None:
        try:
            conn = await self.state.pools.connect(tracker.endpoint)
        except (TimeoutError, OSError) as exc:
            self.connecting = None
            if self.phase != DONE:
                self._connect_failed(tracker, exc)
            return
        self.connecting = None
        if self.phase == DONE or self.tracker is not tracker:
            conn.release(True)
            return
        self.send(conn)

    def _connect_failed(self, tracker: Tracker, exc: BaseException) -> None:
        runtime = self.runtime
        assert runtime is not None
        self.tracker = None
        if is_local_shortage(exc):
            # The gateway is out of descriptors or buffers; the replica is not to blame.
            runtime.throttler.release(tracker)
            self.fail(503, f"the gateway cannot open a connection right now: {exc}")
            return
        self.state.pools.drop(tracker.endpoint)
        timed_out = isinstance(exc, TimeoutError)
        if not timed_out:
            runtime.endpoint_failed(tracker.endpoint)  # before the release, so no waiter is handed it
        runtime.throttler.release(tracker)
        nxt = runtime.throttler.try_acquire() if self.attempts < MAX_ATTEMPTS else None
        decision = after_connect_failure(
            timed_out=timed_out,
            attempts=self.attempts,
            next_same_replica=None if nxt is None else nxt.endpoint == tracker.endpoint,
            scalable=runtime.scalable,
        )
        if decision is AfterConnectFailure.RETRY:
            assert nxt is not None
            self.dispatch(nxt)
            return
        if nxt is not None:
            runtime.throttler.release(nxt)
        if decision is AfterConnectFailure.QUEUE:
            self.enqueue()
        elif decision is AfterConnectFailure.FAIL_504:
            self.fail(504, f"timed out connecting to replica {tracker.endpoint}")
        else:
            self.fail(502, f"could not connect to replica {tracker.endpoint}: {exc}")

    def resend(self) -> None:
        """The same request again, to the same replica, on another connection (see retry.may_resend)."""
        tracker = self.tracker
        assert tracker is not None
        self.body_buf = list(self.replay or [])
        self.dispatch(tracker)

    def send(self, upstream: UpstreamConnection) -> None:
        self.upstream = upstream
        upstream.begin(self, self.head_only)
        transport = upstream.transport
        assert transport is not None
        head = self.head
        assert head is not None
        client = self.client
        if head.expect_continue and self.body_seen == 0 and not self.body_done and not self.http10:
            client.write(CONTINUE)
        data = self.upstream_head
        if self.body_buf:
            # Buffered body pieces (a chunked body's last chunk among them, put there by on_request_complete).
            data += b"".join(self.body_buf)
            self.body_buf = NO_PIECES
            self.body_buffered = 0
            client.release_body()
        transport.write(data)
        self.phase = SENT
        if self.body_done:
            self.sent_at = time.monotonic()  # the response-start timeout runs from the end of the request
        if client.write_paused:
            upstream.pause_reading()

    def reject(self, status: int, message: str) -> None:
        """The client's bytes after this request's head were not HTTP: this is the connection's last answer."""
        self.keep_alive = False
        if self.phase == DONE:
            return
        if self.started:
            self.fail(status, message)  # under way: the replica must not get a request cut short
        else:
            self.error = (status, message)  # waiting behind pipelined requests: answered in turn
            self.body_done = True

    # -- endings --------------------------------------------------------------------------------
    def _let_go(self) -> None:
        """The one teardown: the borrowed replica connection is cut, a place in the queue given up."""
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abort()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.cancel()

    def fail(self, status: int, message: str) -> None:
        """Answer with a JSON error if nothing of the response has left yet; else cut the connection."""
        if self.phase == DONE:
            return
        self._let_go()
        runtime = self.runtime
        if runtime is not None and status >= 502:
            runtime.report(status, message)  # the replica's (or the gateway's) failure, not the client's
        if self.response_started:
            self.finish(status)
            self.client.abort()  # the head has left: the only honest signal is closing the connection
            return
        if not self.body_done:
            self.keep_alive = False
        body = error_response(
            status,
            message,
            service=runtime.service_label if runtime else None,
            revision=runtime.revision_label if runtime else None,
            close=not self.keep_alive or self.state.draining,
            extra_headers=runtime.header if runtime else b"",
        )
        self.status = status
        self.client.write(body)
        self.finish(status)

    def abort(self) -> None:
        """The client went away: drop everything without answering."""
        if self.phase == DONE:
            return
        self._let_go()
        self.keep_alive = False
        self.finish(499)

    def finish(self, status: int) -> None:
        if self.phase == DONE:
            return
        self.phase = DONE
        runtime = self.runtime
        if runtime is not None:
            if self.tracker is not None:
                runtime.throttler.release(self.tracker)
                self.tracker = None
            if self.started:
                now = time.monotonic()
                if self.in_stats and runtime.stats is not None:
                    runtime.stats.request_out(now)
                runtime.record(status, now - self.started)
        else:
            self.state.count_unrouted(status)
        self.client.cycle_done(self)
