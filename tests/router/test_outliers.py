"""Passive outlier ejection on an injected sleep and connection check: no real time, no sockets."""

from __future__ import annotations

import asyncio

from gateway.router.outliers import FIRST_DELAY, MAX_DELAY, Ejections
from gateway.router.throttler import Throttler
from gateway.types import Endpoint, RevisionKey

KEY = RevisionKey("default", "iris", "default")
A, B = Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2)


class Script:
    """The injected sleep and connection check: sleeps are recorded, each check answers the next scripted answer."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.slept: list[float] = []
        self.checked: list[Endpoint] = []
        self.done = asyncio.Event()
        self.checking = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)

    async def accepts(self, endpoint: Endpoint) -> bool:
        self.checked.append(endpoint)
        self.checking.set()
        answer = self.answers.pop(0)
        if not self.answers:
            self.done.set()
        return answer


def ejections(script: Script) -> tuple[Throttler, Ejections]:
    throttler = Throttler(0, 10)
    throttler.update_endpoints(frozenset({A, B}))
    return throttler, Ejections(KEY, throttler, sleep=script.sleep, accepts=script.accepts)


async def test_an_ejected_replica_is_readmitted_once_it_accepts_with_a_doubling_back_off() -> None:
    script = Script([False, False, False, False, False, True])
    throttler, ejected = ejections(script)
    ejected.eject(A)
    assert throttler.reachable == 1 and A in ejected
    ejected.eject(A)  # a second failure while ejected starts nothing new
    await script.done.wait()
    await asyncio.sleep(0)
    assert script.slept == [FIRST_DELAY, 0.2, 0.4, 0.8, 1.6, MAX_DELAY]
    assert script.checked == [A] * 6
    assert throttler.reachable == 2 and A not in ejected


async def test_a_replica_that_leaves_the_set_is_no_longer_waited_for() -> None:
    script = Script([False] * 1000)
    throttler, ejected = ejections(script)
    ejected.eject(B)
    await script.checking.wait()
    ejected.forget(B)
    checked = len(script.checked)
    for _ in range(10):
        await asyncio.sleep(0)  # turns of the loop, in which a live wait would sleep and check again
    assert len(script.checked) == checked and B not in ejected
    ejected.eject(Endpoint("127.0.0.1", 3))  # not an endpoint of the revision: nothing to eject
    assert Endpoint("127.0.0.1", 3) not in ejected


async def test_close_cancels_every_wait() -> None:
    script = Script([False] * 1000)
    _, ejected = ejections(script)
    ejected.eject(A)
    ejected.eject(B)
    ejected.close()
    assert A not in ejected and B not in ejected
