"""Descriptor limits, and a local shortage told apart from a replica's failure."""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gateway.backends.probe import Prober
from gateway.resources import default_max_connections, is_local_shortage
from tests.router.support import Replica, start_replica


@pytest.mark.parametrize(
    "limit, want",
    [(64, 16), (256, (256 - 64) * 4 // 9), (1024, (1024 - 64) * 4 // 9), (65536, (65536 - 4096) * 4 // 9)],
)
def test_default_max_connections_leaves_room_for_upstreams_and_a_reserve(limit: int, want: int) -> None:
    clients = default_max_connections(limit)
    assert clients == want
    reserve = max(64, limit // 16)
    assert clients * 2 + clients // 4 <= limit - reserve or clients == 16


def test_local_shortage_is_recognised_also_when_wrapped() -> None:
    emfile = OSError(errno.EMFILE, "Too many open files")
    assert is_local_shortage(emfile)
    assert is_local_shortage(OSError(errno.ENOBUFS, "No buffer space available"))
    assert not is_local_shortage(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert not is_local_shortage(TimeoutError())
    try:
        try:
            raise emfile
        except OSError as inner:
            raise RuntimeError("connect failed") from inner
    except RuntimeError as outer:
        assert is_local_shortage(outer)


@contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """Fill this process's descriptor table (under a lowered soft limit), restore it afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        while True:
            try:
                opened.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("path", [None, "/ready"])
async def test_a_probe_the_gateway_cannot_make_gives_no_verdict(path: str | None) -> None:
    replica: Replica = await start_replica("r")
    prober = Prober(timeout=1)
    try:
        assert await prober.check(replica.port, path) is True
        with descriptors_exhausted():
            assert await prober.check(replica.port, path) is None, "EMFILE is not the replica failing"
        assert await prober.check(replica.port, path) is True
    finally:
        await prober.close()
        await replica.runner.cleanup()
