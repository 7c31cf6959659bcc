"""Workers restarted when they die, drained on SIGTERM, reloaded on SIGHUP, gone with their supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from gateway.workers.supervisor import RESUMED_GRACE, SILENT, STATES_EVERY
from tests.conftest import wait_until, wait_until_blocking
from tests.workers.support import Conn, Served, config, serving, split_connections

pytestmark = pytest.mark.e2e

OTHER = "other.default.example.com"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_a_killed_worker_is_started_again_and_the_port_keeps_serving(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        first, second = gw.workers()
        os.kill(first, signal.SIGKILL)
        # Connections already queued on the killed worker's socket are reset with it (as with any
        # SO_REUSEPORT server); once it is gone the kernel gives every new one to the other worker.
        await wait_until(lambda: not _alive(first), "the killed worker to be gone")
        for _ in range(20):  # meanwhile the other worker takes every new connection
            conn = await Conn.open(gw.port)
            assert (await conn.get("/work?ms=1"))[0] == 200
            conn.close()
        await wait_until(lambda: len(gw.workers()) == 2 and first not in gw.workers(), "a new worker", within=10)
        [new] = [pid for pid in gw.workers() if pid != second]
        by_worker = await split_connections(gw.port, [new, second], each=2)  # waits until the new one accepts
        for conns in by_worker.values():
            for conn in conns:
                assert (await conn.get("/work?ms=1"))[0] == 200
                conn.close()


async def test_a_stopped_worker_is_taken_for_hung_killed_and_started_again(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        first, second = gw.workers()
        os.kill(first, signal.SIGSTOP)  # alive but silent: its connections would hang with it
        try:
            await wait_until(lambda: not _alive(first), "the silent worker killed by its supervisor", within=20)
        finally:
            if _alive(first):
                os.kill(first, signal.SIGKILL)
        await wait_until(lambda: len(gw.workers()) == 2 and first not in gw.workers(), "a new worker", within=10)
        for _ in range(20):
            conn = await Conn.open(gw.port)
            assert (await conn.get("/work?ms=1"))[0] == 200
            conn.close()


async def test_a_paused_supervisor_does_not_take_its_serving_workers_for_hung(tmp_path: Path) -> None:
    # An outside check stopped the supervisor (SIGSTOP) for 10 s under load: on resuming it found every worker
    # "silent" (their reports were queued on its own socket) and killed both, breaking 12 requests in flight.
    with serving(tmp_path, config()) as gw:
        workers = sorted(gw.workers())
        gw.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(SILENT + 1)  # kept: the subject is a pause longer than a worker's allowed silence
            conn = await Conn.open(gw.port)
            assert (await conn.get("/work?ms=1"))[0] == 200  # the workers serve meanwhile
            conn.close()
        finally:
            gw.proc.send_signal(signal.SIGCONT)
        await wait_until(gw.ready, "the supervisor answering again", within=10)
        # kept: what must not happen (a kill) would happen on its first rounds after the resume and the grace
        await asyncio.sleep(RESUMED_GRACE + 2 * STATES_EVERY)
        assert sorted(gw.workers()) == workers


async def test_sigterm_drains_requests_in_flight_on_every_worker(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        workers = gw.workers()
        by_worker = await split_connections(gw.port, workers, each=2)
        conns = [c for cs in by_worker.values() for c in cs]
        slow = [asyncio.ensure_future(c.get("/work?ms=2500")) for c in conns]
        await wait_until(lambda: gw.revision()["in_flight"] == 4, "4 requests in flight", within=2.2)
        gw.proc.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*slow)
        assert [status for status, _, _ in answers] == [200] * 4
        assert await asyncio.to_thread(gw.proc.wait, 20) == 0
        assert not any(_alive(pid) for pid in workers)
        for conn in conns:
            conn.close()
        with pytest.raises(OSError):
            await Conn.open(gw.port)


async def test_sighup_reloads_every_worker_and_a_bad_config_changes_nothing(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        by_worker = await split_connections(gw.port, gw.workers(), each=2)
        conns = [c for cs in by_worker.values() for c in cs]
        for conn in conns:
            assert (await conn.get("/work?ms=1", host=OTHER))[0] == 404
        text = gw.cfg.read_text()
        gw.cfg.write_text(text + "---\n" + config(name="other").split("---\n", 1)[1])
        gw.proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: len(gw.services()["services"]) == 2, "the supervisor's reload", within=10)

        async def all_workers_route_it() -> bool:
            statuses = [(await c.get("/work?ms=1", host=OTHER))[0] for c in conns]
            return statuses == [200] * len(conns)

        await wait_until(all_workers_route_it, "the new service on both workers", within=10)
        gw.cfg.write_text("kind: [not yaml")
        refused = await asyncio.to_thread(httpx.post, f"{gw.admin_url}/admin/reload", timeout=30)
        assert refused.status_code == 400 and refused.json()["reloaded"] is False
        for conn in conns:
            assert (await conn.get("/work?ms=1", host=OTHER))[0] == 200
            assert (await conn.get("/work?ms=1"))[0] == 200
        assert len(gw.services()["services"]) == 2
        for conn in conns:
            conn.close()


async def test_a_reload_that_removes_a_service_lets_its_requests_on_the_workers_finish(tmp_path: Path) -> None:
    with serving(tmp_path, config() + "---\n" + config(name="other").split("---\n", 1)[1]) as gw:
        by_worker = await split_connections(gw.port, gw.workers(), each=1)
        conns = [c for cs in by_worker.values() for c in cs]
        slow = [asyncio.ensure_future(c.get("/work?ms=2000", host=OTHER)) for c in conns]
        await asyncio.to_thread(
            wait_until_blocking, lambda: _in_flight(gw, "other") == 2, "both requests at the replica", within=10
        )
        gw.cfg.write_text(config())
        answer = await asyncio.to_thread(httpx.post, f"{gw.admin_url}/admin/reload", timeout=30)
        assert answer.status_code == 200, answer.text
        # The replica is stopped only once neither worker has a request on it any more.
        assert [status for status, _, _ in await asyncio.gather(*slow)] == [200, 200]
        for conn in conns:
            conn.close()


def test_the_workers_leave_when_the_supervisor_dies(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        workers = gw.workers()
        gw.proc.kill()
        gw.proc.wait()
        started = time.monotonic()
        wait_until_blocking(lambda: not any(_alive(pid) for pid in workers), "the workers to exit", within=15)
        assert time.monotonic() - started < 15


def _in_flight(gw: Served, service: str) -> int:
    doc = gw.services()
    return sum(int(rev["in_flight"]) for svc in doc["services"] if svc["name"] == service for rev in svc["revisions"])
