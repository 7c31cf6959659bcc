"""One request from its first header to its last response byte, relayed between two transports."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from gateway.resources import is_local_shortage
from gateway.router.errors import error_response, reason
from gateway.router.headers import RequestHead, ResponseHead
from gateway.router.revision import RevisionRuntime
from gateway.router.throttler import QueueFull, Tracker
from gateway.router.upstream import UpstreamConnection

if TYPE_CHECKING:
    from gateway.router.client import ClientConnection

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
REPLAY_LIMIT = 64 * 1024
MAX_ATTEMPTS = 3

# Backend states in which a revision without a ready replica will not get one soon.
UNAVAILABLE = frozenset({"failed", "crash-backoff"})


def unavailable_message(state: tuple[str, str | None]) -> str:
    if state[0] == "crash-backoff":
        return f"revision's replicas are failing (crash back-off): {state[1]}"
    return f"revision cannot start: {state[1]}"


# Phases, in order; the sweeper reads them to apply timeouts.
QUEUED, CONNECTING, SENT, STREAMING, DONE = range(5)


class RequestCycle:
    """Owns one request: routing decision, replica slot, upstream connection, response relay."""

    __slots__ = (
        "conn",
        "method",
        "url",
        "head",
        "rt",
        "keep_alive",
        "upstream_head",
        "phase",
        "started",
        "sent_at",
        "tracker",
        "upstream",
        "body_buf",
        "body_buffered",
        "body_done",
        "body_seen",
        "replay",
        "attempts",
        "waiter",
        "cold",
        "wait_started",
        "response_started",
        "resp_chunked",
        "resp_close",
        "close_framed",
        "upgraded",
        "pending",
        "reusable",
        "status",
        "head_only",
        "timeout",
        "error",
        "counted",
        "outbox",
        "out",
    )

    def __init__(
        self,
        conn: ClientConnection,
        method: bytes,
        url: bytes,
        head: RequestHead | None,
        rt: RevisionRuntime | None,
        keep_alive: bool,
        upstream_head: bytes,
        error: tuple[int, str] | None = None,
    ) -> None:
        self.conn = conn
        self.method = method
        self.url = url
        self.head = head
        self.rt = rt
        self.keep_alive = keep_alive
        self.upstream_head = upstream_head
        self.error = error  # (status, message) to answer instead of proxying
        self.phase = QUEUED
        self.started = 0.0
        self.sent_at = 0.0
        self.tracker: Tracker | None = None
        self.upstream: UpstreamConnection | None = None
        self.body_buf: list[bytes] = []
        self.body_buffered = 0
        self.body_done = head is None or (head.content_length <= 0 and not head.chunked)
        self.body_seen = 0
        self.outbox: list[bytes] = []
        self.out: list[
            bytes
        ] = []  # response pieces of the current read of the replica  # body bytes from the current parser call, framed and sent together
        self.replay: list[bytes] | None = []
        self.attempts = 0
        self.waiter: asyncio.Future[Tracker] | None = None
        self.cold = False
        self.wait_started = 0.0
        self.response_started = False  # head sent to the client
        self.resp_chunked = False
        self.resp_close = False
        self.close_framed = False  # the replica's body ends when it closes the connection
        self.upgraded = False
        self.pending = b""
        self.reusable = False
        self.status = 0
        self.head_only = method == b"HEAD"
        self.timeout = rt.request_timeout if rt is not None else 0.0
        self.counted = False  # entered the revision's concurrency stats

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = time.monotonic()
        if self.error is not None:
            self.fail(*self.error)
            return
        rt = self.rt
        assert rt is not None
        if rt.stats is not None:
            rt.stats.request_in(self.started)
            self.counted = True
        tracker = rt.throttler.try_acquire()
        if tracker is not None:
            self.dispatch(tracker)
        else:
            self.enqueue()

    def enqueue(self) -> None:
        rt = self.rt
        assert rt is not None
        throttler = rt.throttler
        if not rt.scalable and throttler.reachable == 0:
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
            state = rt.backend_state(rt.key) if rt.backend_state is not None else ("ok", None)
            if state[0] in UNAVAILABLE:
                self.fail(503, unavailable_message(state))
                return
            self.cold = True
            if rt.poke is not None:
                rt.poke()
        waiter.add_done_callback(self._granted)

    def _granted(self, waiter: asyncio.Future[Tracker]) -> None:
        if waiter.cancelled():
            return
        tracker = waiter.result()
        rt = self.rt
        assert rt is not None
        if self.waiter is not waiter or self.phase == DONE:
            rt.throttler.release(tracker)  # given up while the grant was in flight
            return
        self.waiter = None
        if self.cold:
            rt.record_cold_start(time.monotonic() - self.wait_started)
        self.dispatch(tracker)

    def dispatch(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.attempts += 1
        conn = self.conn.server.pools.get(tracker.endpoint)
        if conn is not None:
            self.send(conn)
        else:
            self.phase = CONNECTING
            asyncio.get_running_loop().create_task(self._connect(tracker))

    async def _connect(self, tracker: Tracker) -> None:
        try:
            conn = await self.conn.server.pools.connect(tracker.endpoint)
        except (TimeoutError, OSError) as exc:
            if self.phase == DONE:
                return
            self._connect_failed(tracker, exc)
            return
        if self.phase == DONE or self.tracker is not tracker:
            conn.release(True)
            return
        self.send(conn)

    def _connect_failed(self, tracker: Tracker, exc: BaseException) -> None:
        rt = self.rt
        assert rt is not None
        self.tracker = None
        if is_local_shortage(exc):
            # The gateway is out of descriptors or buffers; the replica is not to blame.
            rt.throttler.release(tracker)
            self.fail(503, f"the gateway cannot open a connection right now: {exc}")
            return
        self.conn.server.pools.drop(tracker.endpoint)
        if not isinstance(exc, asyncio.TimeoutError):
            rt.endpoint_failed(tracker.endpoint)  # before the release, so no waiter is handed it
        rt.throttler.release(tracker)
        timed_out = isinstance(exc, asyncio.TimeoutError)
        if self.attempts >= MAX_ATTEMPTS:
            if timed_out:
                self.fail(504, f"timed out connecting to replica {tracker.endpoint}")
            else:
                self.fail(502, f"could not connect to replica {tracker.endpoint}: {exc}")
            return
        nxt = rt.throttler.try_acquire()
        if timed_out and (nxt is None or nxt.endpoint == tracker.endpoint):
            # Another try would wait the whole connect timeout again on the same replica.
            if nxt is not None:
                rt.throttler.release(nxt)
            self.fail(504, f"timed out connecting to replica {tracker.endpoint}")
            return
        if nxt is not None:
            self.dispatch(nxt)
        elif rt.scalable:
            self.enqueue()
        else:
            self.fail(502, f"could not connect to replica {tracker.endpoint}: {exc}")

    # -- request relay --------------------------------------------------------------------------
    def send(self, upstream: UpstreamConnection) -> None:
        self.upstream = upstream
        upstream.begin(self, self.head_only)
        transport = upstream.transport
        assert transport is not None
        head = self.head
        assert head is not None
        conn = self.conn
        if head.expect_continue and self.body_seen == 0 and not self.body_done and not conn.closed and not conn.http10:
            self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.body_buf:
            data = self.upstream_head + b"".join(self.body_buf)
            self.body_buf = []
            self.body_buffered = 0
            self.conn.resume_reading(self.conn.BUFFER)
        else:
            data = self.upstream_head
        # A chunked body's last chunk is in body_buf (or the replay) already: on_request_complete put it there.
        transport.write(data)
        self.phase = SENT
        if self.body_done:
            self.sent_at = time.monotonic()  # the response-start timeout runs from the end of the request
        if self.conn.write_paused:
            transport.pause_reading()

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
        if self.body_seen > self.conn.server.settings.max_body_bytes:
            self.keep_alive = False
            self.fail(413, "request body larger than the limit")
            return
        self.outbox.append(data)

    def flush_body(self) -> None:
        """What one parser call delivered of the body goes on as one piece (one chunk, one write):
        a client sending a million 1-byte chunks costs the replica connection no million writes."""
        outbox = self.outbox
        if not outbox:
            return
        self.outbox = []
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
            else:
                replay.append(data)
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
            return
        self.body_buf.append(data)
        self.body_buffered += len(data)
        if self.body_buffered > self.conn.server.settings.buffer_bytes:
            self.conn.pause_reading(self.conn.BUFFER)

    def on_request_complete(self) -> None:
        self.flush_body()
        self.body_done = True
        if self.phase == SENT:
            self.sent_at = time.monotonic()
        if self.phase == DONE or self.head is None or not self.head.chunked:
            return
        if self.replay is not None:
            self.replay.append(b"0\r\n\r\n")
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(b"0\r\n\r\n")
        else:
            self.body_buf.append(b"0\r\n\r\n")

    def on_client_raw(self, data: bytes) -> None:
        """Client bytes after the replica switched protocols: spliced as they are."""
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)

    def pause_request(self) -> None:
        self.conn.pause_reading(self.conn.UPSTREAM)

    def resume_request(self) -> None:
        self.conn.resume_reading(self.conn.UPSTREAM)

    def client_write_paused(self) -> bool:
        return self.conn.write_paused

    def pause_response(self) -> None:
        """The client's write buffer is full: stop reading the replica until it drains."""
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.pause_reading()

    def resume_response(self) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.resume_reading()

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

    # -- response relay -------------------------------------------------------------------------
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
        rt = self.rt
        assert rt is not None
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason_ or reason(status))]
        parts.extend(resp.lines)
        parts.append(rt.header)
        if self.cold:
            parts.append(b"x-gateway-cold-start: true\r\n")
        conn = self.conn
        http10 = conn.http10
        if status == 101:
            self.upgraded = True
            self.keep_alive = False
            parts.append(b"connection: upgrade\r\nupgrade: " + (resp.upgrade or b"websocket") + b"\r\n\r\n")
            conn.write(b"".join(parts))
            self.response_started = True
            held = conn.start_splice()
            if held and self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.write(held)
            return
        no_body = self.head_only or status in (204, 304)
        if no_body:
            if resp.content_length >= 0 and self.head_only:
                parts.append(b"content-length: %d\r\n" % resp.content_length)
        elif resp.content_length >= 0 and not resp.chunked:
            parts.append(b"content-length: %d\r\n" % resp.content_length)
        else:
            self.close_framed = not resp.chunked
            if http10:
                self.resp_close = True
                self.keep_alive = False
            else:
                self.resp_chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or conn.server.draining:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
        elif http10:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.pending = b"".join(parts)
        self.response_started = True

    def on_response_body(self, data: bytes) -> None:
        if self.phase == DONE:
            return
        if self.resp_chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.out.append(data)  # written once per read of the replica (flush), not once per chunk

    def flush(self) -> None:
        """After each read of the replica: what it produced for the client, in one write."""
        out = self.out
        if out:
            self.out = []
            data = self.pending + (out[0] if len(out) == 1 else b"".join(out))
            self.pending = b""
            self.conn.write(data)
        elif self.pending:
            pending = self.pending
            self.pending = b""
            self.conn.write(pending)

    def on_upstream_raw(self, data: bytes) -> None:
        self.conn.write(data)

    def on_response_complete(self) -> None:
        if self.phase == DONE:
            return
        tail = b"0\r\n\r\n" if self.resp_chunked else b""
        out = self.out
        if out:
            self.out = []
            self.conn.write(self.pending + b"".join(out) + tail)
            self.pending = b""
        elif self.pending or tail:
            self.conn.write(self.pending + tail)
            self.pending = b""
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.release(self.reusable and self.body_done)
        if not self.body_done:
            self.keep_alive = False
        if self.resp_close:
            self.keep_alive = False
        self.finish(self.status)

    def on_upstream_lost(self, exc: Exception | None) -> None:
        if self.phase == DONE:
            return
        upstream = self.upstream
        self.upstream = None
        if self.upgraded:
            self.finish(101)
            self.conn.close()
            return
        if self.response_started and self.close_framed:
            self.reusable = False
            self.on_response_complete()
            return
        if upstream is not None:
            self.conn.server.pools.drop(upstream.endpoint)  # its other idle connections are suspect too
        if not self.response_started and upstream is not None and self._may_retry(upstream):
            tracker = self.tracker
            assert tracker is not None
            log.debug("%s: reused connection closed before any response, retrying", self.rt.key if self.rt else "")
            self.body_buf = list(self.replay or [])
            self.attempts += 1
            new = self.conn.server.pools.get(tracker.endpoint)
            if new is not None:
                self.send(new)
            else:
                self.phase = CONNECTING
                asyncio.get_running_loop().create_task(self._connect(tracker))
            return
        if upstream is not None and self.rt is not None:
            # A replica that drops a request it cannot be given again has likely died; while it
            # dies its listening socket may still accept and then reset. Out of rotation (before
            # this cycle frees its slot) until it accepts connections again.
            self.rt.endpoint_failed(upstream.endpoint)
        if self.response_started:
            # The head has left: the only honest signal is closing the client connection.
            self.pending = b""
            self.out = []
            if self.rt is not None:
                self.rt.report(502, f"replica closed the connection in the middle of its response: {exc or 'EOF'}")
            self.finish(502)
            self.conn.abort()
            return
        detail = f": {exc}" if exc else ""
        self.fail(502, f"replica closed the connection before responding{detail}")

    def _may_retry(self, upstream: UpstreamConnection) -> bool:
        return (
            upstream.reused
            and upstream.bytes_received == 0
            and self.attempts < MAX_ATTEMPTS
            and self.method in IDEMPOTENT
            and self.body_done
            and self.replay is not None
        )

    def on_upstream_error(self, message: str) -> None:
        if self.phase == DONE:
            return
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abort()
        if self.response_started:
            if self.rt is not None:
                self.rt.report(502, message)
            self.finish(502)
            self.conn.abort()
        else:
            self.fail(502, message)

    # -- endings --------------------------------------------------------------------------------
    def fail(self, status: int, message: str) -> None:
        """Answer with a JSON error if nothing of the response has left yet; else cut the connection."""
        if self.phase == DONE:
            return
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abort()
        if self.waiter is not None:
            waiter = self.waiter
            self.waiter = None
            waiter.cancel()
        rt = self.rt
        if rt is not None and status >= 502:
            rt.report(status, message)  # the replica's (or the gateway's) failure, not the client's
        if self.response_started:
            self.finish(status)
            self.conn.abort()
            return
        if not self.body_done:
            self.keep_alive = False
        body = error_response(
            status,
            message,
            service=rt.service_label if rt else None,
            revision=rt.revision_label if rt else None,
            close=not self.keep_alive or self.conn.server.draining,
            extra_headers=rt.header if rt else b"",
        )
        self.status = status
        self.conn.write(body)
        self.finish(status)

    def finish(self, status: int) -> None:
        if self.phase == DONE:
            return
        self.phase = DONE
        rt = self.rt
        if rt is not None:
            if self.tracker is not None:
                rt.throttler.release(self.tracker)
                self.tracker = None
            if self.started:
                now = time.monotonic()
                if self.counted and rt.stats is not None:
                    rt.stats.request_out(now)
                rt.record(status, now - self.started)
        else:
            unrouted = self.conn.server.unrouted  # 400/404/431… answered before any revision was chosen
            unrouted[status] = unrouted.get(status, 0) + 1
        self.conn.cycle_done(self)

    def abort(self) -> None:
        """The client went away: drop everything without answering."""
        if self.phase == DONE:
            return
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abort()
        if self.waiter is not None:
            waiter = self.waiter
            self.waiter = None
            waiter.cancel()
        self.keep_alive = False
        self.finish(499)

    def expire(self, now: float, settings_response_start: float) -> None:
        """Called by the sweeper: apply the activation, response-start and total timeouts."""
        rt = self.rt
        if rt is None or self.upgraded:
            return
        if self.phase == QUEUED and self.waiter is not None and rt.throttler.ready == 0 and rt.backend_state is not None:
            state = rt.backend_state(rt.key)  # a revision that cannot start: say so now, not at the timeout
            if state[0] in UNAVAILABLE:
                self.fail(503, unavailable_message(state))
                return
        if self.phase == QUEUED and self.waiter is not None and now - self.wait_started > rt.activation_timeout:
            message = "timed out waiting for a replica to become available"
            state = rt.backend_state(rt.key) if rt.backend_state is not None else ("ok", None)
            if state[1]:
                message += f" (revision {state[0]}: {state[1]})"
            self.fail(504, message)
        elif self.phase == SENT and self.body_done and now - self.sent_at > settings_response_start:
            self.fail(504, "timed out waiting for the replica's response")
        elif self.timeout and now - self.started > self.timeout:
            self.fail(504, "request timed out")
