"""Every timeout of the data plane, applied by one sweep over the open connections a few times a
second instead of a timer per request: the request path arms nothing."""

from __future__ import annotations

from gateway.config.model import ProxySettings
from gateway.router.client import LINGER, ClientConnection
from gateway.router.cycle import UNAVAILABLE, RequestCycle, unavailable_message
from gateway.router.phases import QUEUED, SENT
from gateway.router.throttler import Throttler


def sweep_interval(settings: ProxySettings) -> float:
    """A quarter of the shortest timeout, between 20 ms and 0.5 s."""
    shortest = min(
        settings.header_timeout,
        settings.keepalive_timeout,
        settings.response_start_timeout,
        settings.upstream_keepalive_timeout,
        settings.send_timeout,
        settings.body_timeout,
    )
    return max(0.02, min(0.5, shortest / 4))


def expire_connection(conn: ClientConnection, now: float) -> None:
    """Header-read, keep-alive, body, send and (through its request) request timeouts."""
    settings = conn.state.settings
    if conn.closed:
        expire_closing(conn, now, settings)
        return
    if conn.write_paused and now - conn.write_paused_since > settings.send_timeout:
        conn.abort()  # the client read nothing for sendTimeout: its request's slot is freed
        return
    if conn.parsing is not None and not conn.stopped and body_stalled(conn, now, settings):
        conn.reject(408, "timed out reading the request body")  # nginx's client_body_timeout
        return
    cycle = conn.cycle
    if cycle is not None:
        expire_cycle(cycle, now, settings)
    elif conn.in_head:
        if now - conn.head_started > settings.header_timeout:
            if conn.fresh:
                conn.close()  # never said a word: nothing to answer
            else:
                conn.reject(408, "timed out reading the request header")
    elif conn.parsing is None and conn.held is None and now - conn.idle_since > settings.keepalive_timeout:
        conn.close()


def body_stalled(conn: ClientConnection, now: float, settings: ProxySettings) -> bool:
    if conn.paused:
        conn.body_at = now  # we stopped reading it (flow control): not the client's delay
        return False
    return now - conn.body_at > settings.body_timeout


def expire_closing(conn: ClientConnection, now: float, settings: ProxySettings) -> None:
    """Closing waits for the write buffer to drain; a peer that never reads must not hold it."""
    if now - conn.closed_at > settings.send_timeout:
        conn.transport.abort()
    elif conn.lingering and now - conn.closed_at > LINGER and not conn.transport.get_write_buffer_size():
        conn.lingering = False
        conn.transport.close()


def expire_cycle(cycle: RequestCycle, now: float, settings: ProxySettings) -> None:
    """The activation, response-start and total timeouts of one request."""
    runtime = cycle.runtime
    if runtime is None or cycle.upgraded:
        return
    if cycle.phase == QUEUED and cycle.waiter is not None:
        if runtime.throttler.ready == 0:
            state = cycle.backend_state()  # a revision that cannot start: say so now, not at the timeout
            if state[0] in UNAVAILABLE:
                cycle.fail(503, unavailable_message(state))
                return
        if now - cycle.wait_started > runtime.activation_timeout:
            starved = runtime.throttler.starved()
            cycle.fail(504, starved_message(runtime.throttler) if starved else activation_timeout_message(cycle.backend_state()))
            return
    if cycle.phase == SENT and cycle.body_done and now - cycle.sent_at > settings.response_start_timeout:
        cycle.fail(504, "timed out waiting for the replica's response")
    elif cycle.timeout and now - cycle.started > cycle.timeout:
        cycle.fail(504, "request timed out")


def activation_timeout_message(state: tuple[str, str | None]) -> str:
    message = "timed out waiting for a replica to become available"
    if state[1]:
        message += f" (revision {state[0]}: {state[1]})"
    return message


def starved_message(throttler: Throttler) -> str:
    return (
        f"timed out waiting for a replica: this data plane has no part of any of the {throttler.ready} ready replicas "
        f"(containerConcurrency {throttler.container_concurrency} is divided among {throttler.planes} data planes, "
        "and these replicas' slots all went to others); raise containerConcurrency, or run fewer gateway processes"
    )
