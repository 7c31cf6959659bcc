"""The retry decisions as tables: every combination that matters, with the answer a user would expect."""

from __future__ import annotations

import pytest

from gateway.router.retry import MAX_ATTEMPTS, AfterConnectFailure, after_connect_failure, may_resend

RETRY, QUEUE, FAIL_502, FAIL_504 = (
    AfterConnectFailure.RETRY,
    AfterConnectFailure.QUEUE,
    AfterConnectFailure.FAIL_502,
    AfterConnectFailure.FAIL_504,
)


@pytest.mark.parametrize(
    ("timed_out", "attempts", "next_same_replica", "scalable", "expected"),
    [
        # refused at once: another slot anywhere is worth a try
        (False, 1, False, True, RETRY),
        (False, 1, True, True, RETRY),
        (False, 2, False, False, RETRY),
        # refused, no free slot now: a scalable revision waits in its queue, a fixed set of endpoints has no one else
        (False, 1, None, True, QUEUE),
        (False, 1, None, False, FAIL_502),
        # timed out: never the same replica again (another whole connect timeout), another replica is fine
        (True, 1, True, True, FAIL_504),
        (True, 1, None, True, FAIL_504),
        (True, 1, False, True, RETRY),
        (True, 2, False, False, RETRY),
        # out of attempts: refused (nothing sent), a scalable revision holds it in its queue until a replica that
        # answers, or its activation timeout; a fixed set of endpoints, or a timed-out connect, fails
        (False, MAX_ATTEMPTS, False, True, QUEUE),
        (False, MAX_ATTEMPTS, None, True, QUEUE),
        (False, MAX_ATTEMPTS, False, False, FAIL_502),
        (False, MAX_ATTEMPTS, None, False, FAIL_502),
        (True, MAX_ATTEMPTS, False, True, FAIL_504),
    ],
)
def test_after_connect_failure(
    timed_out: bool, attempts: int, next_same_replica: bool | None, scalable: bool, expected: AfterConnectFailure
) -> None:
    decision = after_connect_failure(
        timed_out=timed_out, attempts=attempts, next_same_replica=next_same_replica, scalable=scalable
    )
    assert decision is expected


def resend(
    *,
    reused: bool = True,
    bytes_received: int = 0,
    attempts: int = 1,
    method: bytes = b"GET",
    body_done: bool = True,
    replayable: bool = True,
) -> bool:
    return may_resend(
        reused=reused,
        bytes_received=bytes_received,
        attempts=attempts,
        method=method,
        body_done=body_done,
        replayable=replayable,
    )


def test_may_resend() -> None:
    assert resend() is True
    for method in (b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"):
        assert resend(method=method) is True, method
    for method in (b"POST", b"PATCH"):
        assert resend(method=method) is False, method  # not idempotent: the replica may have acted on it
    assert resend(reused=False) is False  # a fresh connection that drops a request is a failing replica, not a race
    assert resend(bytes_received=1) is False  # the replica began answering
    assert resend(attempts=MAX_ATTEMPTS) is False
    assert resend(attempts=MAX_ATTEMPTS - 1) is True
    assert resend(body_done=False) is False  # the rest of the body is still with the client
    assert resend(replayable=False) is False  # the body was longer than what is kept for a replay
