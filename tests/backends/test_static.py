from __future__ import annotations

from pathlib import Path

import pytest

from gateway.backends import BackendConfigError, create_backend
from gateway.backends.local import LocalBackend
from gateway.backends.static import StaticBackend, parse_endpoint
from gateway.types import Endpoint
from tests.backends.support import Recorder, service

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


def test_create_backend(tmp_path: Path) -> None:
    assert isinstance(
        create_backend("local", state_dir=str(tmp_path), grace_period=1.0), LocalBackend
    )
    static = create_backend(
        "static", state_dir=str(tmp_path), services=[service(endpoints=("http://a:1",))]
    )
    assert static.ready_endpoints(KEY) == {Endpoint("a", 1)}
    with pytest.raises(BackendConfigError, match="kubernetes is not implemented"):
        create_backend("kubernetes", state_dir=str(tmp_path))
    with pytest.raises(BackendConfigError, match="got 'docker'"):
        create_backend("docker", state_dir=str(tmp_path))
