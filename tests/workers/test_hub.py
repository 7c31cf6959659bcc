"""The hub's frames, and the supervisor's bookkeeping of what its workers report (no processes)."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from gateway.autoscale.stats import RevisionStats
from gateway.types import Endpoint, RevisionKey
from gateway.workers.hub import Hub, WorkerLink
from gateway.workers.protocol import MAX_FRAME, ProtocolError, frame, key_out, read_frame
from gateway.workers.supervisor import hub_path

KEY = RevisionKey("default", "sleepy", "default")
REPLICA = Endpoint("127.0.0.1", 5000)


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_carry_one_json_object_each() -> None:
    reader = reader_of(frame({"t": "hello", "index": 1}) + frame({"t": "reload", "id": 2}))
    assert await read_frame(reader) == {"t": "hello", "index": 1}
    assert await read_frame(reader) == {"t": "reload", "id": 2}
    assert await read_frame(reader) is None  # a clean end


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\x00", "inside a frame header"),
        (struct.pack(">I", 10) + b"{}", "inside a frame"),
        (struct.pack(">I", MAX_FRAME + 1), "over the"),
        (struct.pack(">I", 3) + b"{x}", "not JSON"),
        (struct.pack(">I", 2) + b"[]", "not an object with a type"),
        (struct.pack(">I", 9) + b'{"t": 1 }', "not an object with a type"),
    ],
)
async def test_a_bad_frame_is_a_protocol_error(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        await read_frame(reader_of(data))


class Writer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.sent.append(data)


class Autoscaler:
    def __init__(self, stats: RevisionStats) -> None:
        self._stats = stats
        self.poked: list[RevisionKey] = []

    def __contains__(self, key: object) -> bool:
        return key == KEY

    def stats(self, key: RevisionKey) -> RevisionStats:
        return self._stats

    def poke(self, key: RevisionKey) -> None:
        self.poked.append(key)


def hub_with(stats: RevisionStats, tmp_path: Path, workers: int = 2) -> tuple[Hub, Autoscaler]:
    autoscaler = Autoscaler(stats)
    gateway = SimpleNamespace(autoscaler=autoscaler, runtimes={}, proxy=SimpleNamespace(state=SimpleNamespace(unrouted={})))
    return Hub(cast(Any, gateway), tmp_path / "hub.sock", workers), autoscaler


def link(hub: Hub, index: int) -> tuple[WorkerLink, Writer]:
    writer = Writer()
    worker = WorkerLink(index, 1000 + index, cast(Any, writer))
    hub.links[index] = worker
    return worker, writer


class Sink:
    def __init__(self) -> None:
        self.activated: list[RevisionStats] = []

    def activate(self, stats: RevisionStats) -> None:
        self.activated.append(stats)


def test_worker_seconds_reach_the_decider_and_a_poke_the_autoscaler(tmp_path: Path) -> None:
    stats = RevisionStats(60, 6)
    hub, autoscaler = hub_with(stats, tmp_path)
    worker, _ = link(hub, 0)
    stats.observe(0.0, ready=1)
    hub._handle(worker, {"t": "poke", "key": key_out(KEY), "stats": [[0, 1.0, 1.0]]})
    assert autoscaler.poked == [KEY]
    report = {"t": "report", "load": [], "replicas": [], "counters": [], "unrouted": {}, "connections": [0, 0, 0, 0]}
    hub._handle(worker, {**report, "stats": [[key_out(KEY), [[1, 3.0, 4.0], [2, 3.0, 0.0]]]]})
    concurrency = stats.concurrency(2.5)
    assert concurrency is not None and concurrency[0] == pytest.approx(
        7.0 / 3
    )  # (1 + 3 + 3) over the seconds stamped 0..2, the local ones idle
    assert stats.outbox is None  # not shared further: nothing kept to publish


def test_with_redis_the_supervisor_publishes_its_workers_seconds_as_its_own(tmp_path: Path) -> None:
    stats = RevisionStats(60, 6)
    sink = Sink()
    stats.share(sink, KEY)
    hub, _ = hub_with(stats, tmp_path)
    worker, _ = link(hub, 0)
    stats.observe(0.0, ready=1)
    hub._record([[key_out(KEY), [[1, 2.0, 3.0]]]])
    assert sink.activated == [stats]
    assert stats.take(1.5) == [(1, 2.0, 3.0)]


def test_a_replica_that_left_the_ready_set_counts_as_busy_until_every_worker_answered(tmp_path: Path) -> None:
    hub, _ = hub_with(RevisionStats(60, 6), tmp_path)
    first, first_out = link(hub, 0)
    second, _ = link(hub, 1)
    hub.publish(KEY, frozenset({REPLICA}))
    assert first_out.sent and hub.in_flight(REPLICA) == 0
    hub.publish(KEY, frozenset())
    assert hub.in_flight(REPLICA) == 2  # neither worker has said yet
    hub._handle(first, {"t": "replicas", "replicas": [[["127.0.0.1", 5000], 3]]})
    assert hub.in_flight(REPLICA) == 3 + 1
    hub._handle(second, {"t": "replicas", "replicas": [[["127.0.0.1", 5000], 0]]})
    assert hub.in_flight(REPLICA) == 3
    hub._handle(first, {"t": "replicas", "replicas": [[["127.0.0.1", 5000], 0]]})
    assert hub.in_flight(REPLICA) == 0


def test_set_planes_gives_each_worker_its_plane_and_refuses_what_does_not_fit(tmp_path: Path) -> None:
    hub, _ = hub_with(RevisionStats(60, 6), tmp_path)
    _, out0 = link(hub, 0)
    _, out1 = link(hub, 1)
    hub.set_planes(2, 5)
    assert out0.sent[-1] == frame({"t": "share", "index": 2, "count": 5, "also": []})
    assert out1.sent[-1] == frame({"t": "share", "index": 3, "count": 5, "also": []})
    hub.set_planes(2, 4, also=((0, 5), (2, 5)))  # renumbering: every share still in force goes with it
    assert out0.sent[-1] == frame({"t": "share", "index": 2, "count": 4, "also": [[0, 5], [2, 5]]})
    assert out1.sent[-1] == frame({"t": "share", "index": 3, "count": 4, "also": [[1, 5], [3, 5]]})
    with pytest.raises(ValueError, match="do not fit"):
        hub.set_planes(2, 4, also=((4, 5),))
    with pytest.raises(ValueError, match="do not fit"):
        hub.set_planes(4, 5)
    with pytest.raises(ValueError, match="do not fit"):
        hub.set_planes(-1, 5)


class ClosingWriter(Writer):
    def close(self) -> None:
        self.closed = True


async def test_a_report_of_the_wrong_shape_drops_the_link_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub, _ = hub_with(RevisionStats(60, 6), tmp_path)
    report = {"t": "report", "stats": [], "load": [], "replicas": [], "counters": [], "unrouted": [1, 2]}
    data = frame({"t": "hello", "index": 0, "pid": 1}) + frame(report)  # unrouted: a list, not an object
    writer = ClosingWriter()
    await hub._serve(reader_of(data), cast(Any, writer))  # no exception escapes
    assert writer.closed and 0 not in hub.links
    assert any("dropping a worker's connection" in r.getMessage() for r in caplog.records)


async def test_a_state_dir_too_long_for_a_socket_gets_a_private_folder_removed_at_close(tmp_path: Path) -> None:
    state = tmp_path / ("x" * 120)
    path = hub_path(state)
    assert path.parent.name.startswith("gateway-workers-") and str(os.getpid()) not in str(path)  # no guessable name
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    hub, _ = hub_with(RevisionStats(60, 6), tmp_path)
    hub.path = path
    await hub.start()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await hub.close()
    assert not path.parent.exists()
