"""When a request that failed on one replica may be tried again: pure decisions, no I/O."""

from __future__ import annotations

from enum import Enum

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
REPLAY_LIMIT = 64 * 1024  # body bytes kept to send again; a longer body is never retried
MAX_ATTEMPTS = 3


class AfterConnectFailure(Enum):
    """What to do with a request whose connection to a replica could not be opened."""

    RETRY = "retry"  # another replica (or the same, when it refused at once) has a free slot
    QUEUE = "queue"  # wait in the revision's queue for the next free slot
    FAIL_502 = "fail-502"
    FAIL_504 = "fail-504"


def after_connect_failure(
    *, timed_out: bool, attempts: int, next_same_replica: bool | None, scalable: bool
) -> AfterConnectFailure:
    """`next_same_replica`: None when no other slot is free now, else whether the free slot is on the
    replica that just failed. A timed-out connect is not tried again on the same replica: that would
    wait the whole connect timeout once more."""
    if attempts >= MAX_ATTEMPTS:
        # refused: nothing was sent, so a revision that scales may hold it like any request waiting for a replica
        # (its replicas went at once: a leader's local replicas with it, a node); a timeout has waited long enough
        if not timed_out and scalable:
            return AfterConnectFailure.QUEUE
        return AfterConnectFailure.FAIL_504 if timed_out else AfterConnectFailure.FAIL_502
    if timed_out and (next_same_replica is None or next_same_replica):
        return AfterConnectFailure.FAIL_504
    if next_same_replica is not None:
        return AfterConnectFailure.RETRY
    return AfterConnectFailure.QUEUE if scalable else AfterConnectFailure.FAIL_502


def may_resend(*, reused: bool, bytes_received: int, attempts: int, method: bytes, body_done: bool, replayable: bool) -> bool:
    """A kept-alive connection closed before any byte of the response: the replica likely closed it
    idle just as the request left (a race every keep-alive proxy meets). Safe to send again only
    for an idempotent request whose whole body is still at hand."""
    return reused and bytes_received == 0 and attempts < MAX_ATTEMPTS and method in IDEMPOTENT and body_done and replayable
