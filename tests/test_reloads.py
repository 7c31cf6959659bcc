"""Reloads at scale: off the event loop, O(changed), coalesced (issue 8, part A)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Config, load
from gateway.reconcile import ApplyReport
from gateway.reloads import ReloadOutcome
from tests.router.support import Replica, start_replica


def write_services(path: Path, n: int, url: str, percent: int = 20, changed: int | None = -1) -> None:
    """`percent` for service `changed`, or for every service when `changed` is None."""
    parts = ["apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n"]
    for i in range(n):
        p = percent if changed is None or i == changed else 20
        parts.append(
            "---\napiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\n"
            f"metadata: {{name: svc-{i}, namespace: bench}}\n"
            f"spec:\n  canaryTrafficPercent: {p}\n  default: {{endpoints: ['{url}']}}\n  canary: {{endpoints: ['{url}']}}\n"
        )
    path.write_text("".join(parts))


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    r = await start_replica("r")
    yield r
    await r.runner.cleanup()


async def serving(cfg: Path, tmp_path: Path) -> Gateway:
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    return gw


async def probe_latencies(port: int, host: bytes, stop: asyncio.Event) -> list[float]:
    """A request every 10 ms on one keep-alive connection, in the gateway's own event loop."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    while not stop.is_set():
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    writer.close()
    return latencies


async def reload_while_probing(gw: Gateway, edit: Callable[[], None]) -> tuple[ReloadOutcome, list[float]]:
    """Edit the config and reload while a probe asks the last of 2,000 services every 10 ms."""
    stop = asyncio.Event()
    probing = asyncio.create_task(probe_latencies(gw.proxy.sockets[0][1], b"svc-1999.bench.example.com", stop))
    await asyncio.sleep(0.1)
    edit()
    outcome = await gw.reloader.request("test")
    stop.set()
    return outcome, await probing


@pytest.mark.e2e  # 2,000 services, loaded twice
async def test_a_large_reload_never_stalls_the_data_plane(replica: Replica, tmp_path: Path) -> None:
    """2,000 services: reading, parsing and validating run in a worker thread; the loop keeps serving.

    Before, the whole reload ran on the event loop: about 1.5 s without a single answer at this size.
    """
    cfg = tmp_path / "gw.yaml"
    write_services(cfg, 2000, replica.url)
    gw = await serving(cfg, tmp_path)
    try:
        outcome, latencies = await reload_while_probing(gw, lambda: write_services(cfg, 2000, replica.url, percent=50, changed=7))
        assert outcome.ok and outcome.report == "2000 services: 0 added, 1 changed, 0 removed"
        assert max(latencies) < 0.25, f"worst probe {max(latencies):.3f} s during the reload"
    finally:
        await gw.stop(drain_timeout=1)


@pytest.mark.e2e  # 2,000 services, loaded twice
async def test_a_reload_that_changes_every_service_does_not_stall_either(replica: Replica, tmp_path: Path) -> None:
    """Applying 2,000 changed services runs in slices with turns of the loop between; no full collection meanwhile."""
    import gc

    cfg = tmp_path / "gw.yaml"
    write_services(cfg, 2000, replica.url)
    gw = await serving(cfg, tmp_path)
    try:
        thresholds = gc.get_threshold()
        outcome, latencies = await reload_while_probing(
            gw, lambda: write_services(cfg, 2000, replica.url, percent=45, changed=None)
        )
        assert outcome.report == "2000 services: 0 added, 2000 changed, 0 removed"
        assert max(latencies) < 0.25, f"worst probe {max(latencies):.3f} s during the reload"
        assert gw.proxy.routes.by_service[("bench", "svc-7")].percent == 45
        assert gc.get_threshold() == thresholds, "the collector's settings are restored"
    finally:
        await gw.stop(drain_timeout=1)


async def test_a_reload_that_changes_one_service_touches_only_that_one(replica: Replica, tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    write_services(cfg, 50, replica.url)
    gw = await serving(cfg, tmp_path)
    try:
        routes = dict(gw.proxy.routes.by_service)
        runtimes = dict(gw.runtimes)
        static = gw.backends["static"]
        calls: list[tuple[int, int]] = []
        update = static.update

        async def counting(changed, removed):  # type: ignore[no-untyped-def]
            calls.append((len(changed), len(removed)))
            await update(changed, removed)

        static.update = counting  # type: ignore[method-assign]
        write_services(cfg, 50, replica.url, percent=70, changed=3)
        outcome = await gw.reloader.request("test")
        assert outcome.report == "50 services: 0 added, 1 changed, 0 removed"
        assert calls == [(1, 0)], "the backend hears of the one changed service only"
        now = gw.proxy.routes.by_service
        assert [ident for ident in routes if now[ident] is not routes[ident]] == [("bench", "svc-3")]
        assert now[("bench", "svc-3")].percent == 70
        assert all(gw.runtimes[key] is runtime for key, runtime in runtimes.items()), "runtimes (and their counters) are kept"
        # Removing a service and adding another is O(changed) as well.
        write_services(cfg, 49, replica.url)
        outcome = await gw.reloader.request("test")
        assert outcome.report == "49 services: 0 added, 1 changed, 1 removed"
        assert ("bench", "svc-49") not in gw.proxy.routes.by_service
        assert gw.proxy.routes.lookup(b"svc-49.bench.example.com") is None
        assert gw.proxy.routes.lookup(b"canary-svc-48.bench.example.com") is not None
    finally:
        await gw.stop(drain_timeout=1)


async def test_reloads_requested_together_collapse_and_say_which_reload_served_them(replica: Replica, tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    write_services(cfg, 300, replica.url)
    gw = await serving(cfg, tmp_path)
    try:
        outcomes = await asyncio.gather(*(gw.reloader.request(f"test {i}") for i in range(10)))
        generations = sorted({o.generation for o in outcomes})
        assert generations in ([1], [1, 2]), generations  # one running, at most one more for the rest
        assert gw.reloader.generation == generations[-1]
        later = await gw.reloader.request("after")
        assert later.generation == generations[-1] + 1
    finally:
        await gw.stop(drain_timeout=1)


async def test_a_reload_requested_during_one_is_served_by_a_later_read_of_the_files(replica: Replica, tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    write_services(cfg, 300, replica.url)
    gw = await serving(cfg, tmp_path)
    try:
        reading = asyncio.Event()
        reload = gw.reload

        async def reload_and_tell() -> tuple[Config, ApplyReport]:
            reading.set()
            return await reload()

        gw.reload = reload_and_tell  # type: ignore[method-assign]
        first = asyncio.create_task(gw.reloader.request("first"))
        await reading.wait()  # the first reload is reading the files now
        assert gw.reloader.in_progress == 1
        write_services(cfg, 301, replica.url)
        second = await gw.reloader.request("second")
        assert (await first).generation == 1
        assert second.generation == 2 and second.services == 301
    finally:
        await gw.stop(drain_timeout=1)
