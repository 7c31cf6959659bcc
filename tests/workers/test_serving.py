"""`gateway serve --workers N`: one port served by N processes, one admin listener reporting the whole."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.workers.supervisor import parse_workers
from tests.conftest import free_port, serve_argv, wait_until
from tests.workers.support import HOST, Conn, config, first_per_worker, serving, split_connections, worker_of

pytestmark = pytest.mark.e2e


async def test_two_workers_serve_one_port_and_connections_land_on_both(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        workers = gw.workers()
        assert len(workers) == 2
        conns = [await Conn.open(gw.port) for _ in range(24)]
        for conn in conns:
            status, headers, _ = await conn.get("/work?ms=1")
            assert status == 200 and headers["x-gateway-revision"] == "sleepy-default"
        held = worker_of(conns, gw.port, workers)
        assert len(held) == 24
        assert set(held.values()) == set(workers), "every connection went to one worker"
        for conn in conns:
            conn.close()


async def test_a_request_at_zero_through_any_worker_scales_from_zero(tmp_path: Path) -> None:
    with serving(tmp_path, config(min_scale=0)) as gw:
        assert gw.revision()["ready"] == 0
        workers = gw.workers()
        # A connection on each worker, each asking while the revision is (or was just) at zero.
        conns = [await Conn.open(gw.port) for _ in range(16)]
        try:
            firsts = await first_per_worker(conns, gw.port, workers)
            answers = await asyncio.gather(*(c.get("/work?ms=10") for c in firsts))
            assert [status for status, _, _ in answers] == [200, 200]
            assert any(headers.get("x-gateway-cold-start") == "true" for _, headers, _ in answers)
            assert gw.revision()["ready"] >= 1
            await wait_until(lambda: gw.metric("gateway_cold_start_seconds_count") >= 1, "the cold start in /metrics")
        finally:
            for conn in conns:
                conn.close()


async def test_admin_services_and_metrics_add_up_the_workers(tmp_path: Path) -> None:
    with serving(tmp_path, config(min_scale=1)) as gw:
        by_worker = await split_connections(gw.port, gw.workers(), each=3)
        conns = [c for cs in by_worker.values() for c in cs]
        for conn in conns:
            for _ in range(5):
                assert (await conn.get("/work?ms=1"))[0] == 200
        # split_connections asked /stats once per connection it opened, kept or not
        await wait_until(lambda: gw.metric("gateway_requests_total", code="200") >= 30 + 6, "the workers' counts")
        counted = gw.metric("gateway_requests_total", code="200")
        assert gw.metric("gateway_request_duration_seconds_count") == counted
        assert gw.metric("gateway_client_connections") >= 6
        # Six slow requests in flight, three on each worker: the admin side sees all six.
        slow = [asyncio.ensure_future(conn.get("/work?ms=4000")) for conn in conns]
        await wait_until(lambda: gw.revision()["in_flight"] == 6, "6 requests in flight over both workers", within=3.5)
        assert gw.metric("gateway_revision_in_flight_requests") == 6
        assert [status for status, _, _ in await asyncio.gather(*slow)] == [200] * 6
        unknown = await Conn.open(gw.port)
        assert (await unknown.get("/", host="nobody.example.com"))[0] == 404
        await wait_until(lambda: gw.metric("gateway_requests_total", code="404") == 1, "the unrouted 404")
        for conn in [*conns, unknown]:
            conn.close()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "100000"])
def test_bad_workers_values_are_refused_naming_the_flag(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(config())
    argv = serve_argv(cfg, listen=f"127.0.0.1:{free_port()}", admin=f"127.0.0.1:{free_port()}")
    done = subprocess.run([*argv, "--workers", value], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--workers must be an integer >= 1 or 'auto'" in done.stderr


def test_workers_auto_is_the_cpus_this_process_may_use() -> None:
    # taskset or a container's cpuset limit the CPUs; os.cpu_count() would still say the machine's
    code = "import os; os.sched_setaffinity(0, {0}); from gateway.workers.supervisor import parse_workers; print(parse_workers('auto'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == "1\n"
    assert parse_workers("auto") == len(os.sched_getaffinity(0))
    assert parse_workers("3") == 3
    with pytest.raises(ValueError, match="--workers"):
        parse_workers("0")


def test_a_port_held_by_another_process_fails_the_start_clearly(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(config())
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        argv = serve_argv(cfg, listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{free_port()}", state_dir=tmp_path / "state")
        done = subprocess.run([*argv, "--workers", "2"], capture_output=True, text=True, timeout=30)
    finally:
        blocker.close()
    assert done.returncode == 1
    assert f"cannot start: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr


def test_the_worker_command_is_not_in_the_help() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "worker" not in out
    serve_help = subprocess.run([sys.executable, "-m", "gateway", "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert "--workers N|auto" in serve_help.stdout


def test_status_reads_the_supervisor(tmp_path: Path) -> None:
    with serving(tmp_path, config()) as gw:
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "status", "--admin", f"127.0.0.1:{gw.admin}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert HOST in out.stdout and "sleepy-default" in out.stdout
        assert json.loads(json.dumps(gw.services()))["services"][0]["revisions"][0]["ready"] == 1


async def test_a_revision_that_cannot_start_is_a_503_naming_why_from_every_worker(tmp_path: Path) -> None:
    text = config(min_scale=0).replace(f'command: ["{sys.executable}", ', 'command: ["/usr/bin/no_such_model_server", ')
    with serving(tmp_path, text) as gw:
        conns = [await Conn.open(gw.port) for _ in range(16)]
        try:
            firsts = await first_per_worker(conns, gw.port, gw.workers())
            started = time.monotonic()
            answers = await asyncio.gather(*(c.get("/work") for c in firsts))
            assert time.monotonic() - started < 10, "not the activation timeout"
            for status, _, body in answers:
                assert status == 503
                assert "/usr/bin/no_such_model_server" in json.loads(body)["error"]
        finally:
            for conn in conns:
                conn.close()


async def test_one_worker_is_the_single_process_gateway(tmp_path: Path) -> None:
    with serving(tmp_path, config(), workers="1") as gw:
        assert gw.workers() == []
        assert not (tmp_path / "state" / "workers.sock").exists()
        conn = await Conn.open(gw.port)
        assert (await conn.get("/work?ms=1"))[0] == 200
        conn.close()
