from __future__ import annotations

from pathlib import Path

import pytest

from gateway.backends import BACKENDS, BackendConfigError, BackendContext, create_backend
from gateway.backends.local import LocalBackend
from gateway.backends.static import StaticBackend, parse_endpoint
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import Endpoint
from tests.backends.support import Recorder, service
from tests.conftest import ManualSleep

KEY = service().key("default")


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://10.0.0.5:8501", Endpoint("10.0.0.5", 8501)),
        ("http://model.local", Endpoint("model.local", 80)),
        ("http://model.local/v1/", Endpoint("model.local", 80)),
        ("model.local:9000", Endpoint("model.local", 9000)),
    ],
)
def test_parse_endpoint(url: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(url) == endpoint


@pytest.mark.parametrize("url", ["ftp://h:1", "http://:80", "http://h:99999", "http://h:x"])
def test_parse_endpoint_rejects(url: str) -> None:
    with pytest.raises(BackendConfigError, match="endpoint"):
        parse_endpoint(url)


async def test_static_backend_publishes_endpoints() -> None:
    backend = StaticBackend([service(endpoints=("http://a:1", "http://b:2"))])
    recorder = Recorder()
    backend.watch(recorder)
    assert backend.ready_endpoints(KEY) == {Endpoint("a", 1), Endpoint("b", 2)}
    await backend.scale(KEY, 7)
    status = backend.status(KEY)
    assert (status.desired, status.ready, status.state) == (2, 2, "ok")
    await backend.sync([service(endpoints=("http://a:1", "http://b:2"))])
    assert recorder.calls == []
    await backend.sync([service(endpoints=("http://c",))])
    assert recorder.last(KEY) == {Endpoint("c", 80)}
    await backend.sync([])
    assert recorder.last(KEY) == frozenset() and backend.status(KEY).state == "unknown"
    await backend.close()


async def test_create_backend(tmp_path: Path) -> None:
    def in_flight(endpoint: Endpoint) -> int:
        return 0

    context = BackendContext(state_dir=tmp_path, in_flight=in_flight)
    local = create_backend("local", context)
    assert isinstance(local, LocalBackend) and local._in_flight is in_flight and local._state_dir == tmp_path
    static = create_backend("static", context)
    assert isinstance(static, StaticBackend)
    await static.sync([service(endpoints=("http://a:1",))])
    assert static.ready_endpoints(KEY) == {Endpoint("a", 1)}
    await static.close()
    with pytest.raises(BackendConfigError, match="must be one of local, static, kubernetes; got 'docker'"):
        create_backend("docker", context)
    assert list(BACKENDS) == ["local", "static", "kubernetes"]


async def test_readiness_path_takes_failing_endpoints_out_and_back() -> None:
    from aiohttp import web

    healthy = {"a": True, "b": True}

    def app(name: str) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            return web.Response(status=200 if healthy[name] else 503)

        a = web.Application()
        a.router.add_get("/healthz", health)
        return a

    runners, urls = [], []
    for name in ("a", "b"):
        runner = web.AppRunner(app(name), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    svc = ServiceSpec(
        name="svc",
        namespace="default",
        default=RevisionSpec(name="default", endpoints=tuple(urls), readiness_path="/healthz"),
        backend="static",
    )
    sleep = ManualSleep()  # each step is one round of probes
    backend = StaticBackend(probe_period=0.05, failure_threshold=2, sleep=sleep)
    seen: list[int] = []
    backend.watch(lambda key, eps: seen.append(len(eps)))
    try:
        await backend.sync([svc])
        key = svc.key("default")
        assert len(backend.ready_endpoints(key)) == 2
        await sleep.asleep.wait()  # the first round passed
        assert len(backend.ready_endpoints(key)) == 2 and seen == [2]  # from the sync
        healthy["b"] = False
        await sleep.step()
        assert len(backend.ready_endpoints(key)) == 2, "one failed probe is below the threshold"
        await sleep.step()
        assert [e.url for e in backend.ready_endpoints(key)] == [urls[0]]
        status = backend.status(key)
        assert status.state == "degraded" and urls[1].removeprefix("http://") in (status.message or "")
        healthy["b"] = True
        await sleep.step()
        assert len(backend.ready_endpoints(key)) == 2
        assert seen == [2, 1, 2]
        assert set(sleep.slept) == {0.05}
    finally:
        await backend.close()
        for runner in runners:
            await runner.cleanup()
