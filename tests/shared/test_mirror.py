"""What a follower takes from the endpoints the leader publishes (and what it refuses from anyone else)."""

from __future__ import annotations

import pytest

from gateway.shared.mirror import decode_endpoints, encode_endpoints
from gateway.types import Endpoint


def test_a_published_set_round_trips() -> None:
    endpoints = frozenset({Endpoint("127.0.0.1", 40001), Endpoint("127.0.0.1", 40002)})
    assert decode_endpoints(encode_endpoints(7, endpoints)) == (7, endpoints)
    assert decode_endpoints(encode_endpoints(1, frozenset())) == (1, frozenset())


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"endpoints": ["127.0.0.1:1"]}',
        '{"epoch": "x", "endpoints": []}',
        '{"epoch": -1, "endpoints": []}',
        '{"epoch": 1, "endpoints": "127.0.0.1:1"}',
        '{"epoch": 1, "endpoints": ["127.0.0.1:0"]}',
        '{"epoch": 1, "endpoints": ["127.0.0.1:70000"]}',
        '{"epoch": 1, "endpoints": ["127.0.0.1"]}',
        '{"epoch": 1, "endpoints": ["10.0.0.9:80"]}',  # not a local replica: someone else wrote it
        '{"epoch": 1, "endpoints": ["127.0.0.1:8080", "evil.example.com:80"]}',
        '{"epoch": 1, "endpoints": ["[::1]:8080"]}',
        '{"epoch": 1, "endpoints": [' + ",".join(['"127.0.0.1:1"'] * 10_001) + "]}",
    ],
)
def test_anything_else_is_refused_whole(text: str | None) -> None:
    assert decode_endpoints(text) is None


class Inner:
    """A backend that runs nothing (the follower's local backend before it ever leads)."""

    def __init__(self) -> None:
        self.listeners: list[object] = []

    def watch(self, listener: object) -> None:
        self.listeners.append(listener)

    def ready_endpoints(self, key: object) -> frozenset[Endpoint]:
        return frozenset()


def test_a_set_claiming_an_epoch_no_lease_has_had_is_refused() -> None:
    from redis.asyncio import Redis

    from gateway.shared.keys import Keys
    from gateway.shared.mirror import MirroredBackend
    from gateway.types import RevisionKey

    key = RevisionKey("default", "iris", "default")
    lease = {"epoch": 5}
    mirror = MirroredBackend(Inner(), Redis(), Keys(), lambda: 0, lambda: lease["epoch"])  # type: ignore[arg-type]
    told: list[frozenset[Endpoint]] = []
    mirror.watch(lambda _key, endpoints: told.append(endpoints))
    real = frozenset({Endpoint("127.0.0.1", 40001)})
    mirror._take(key, encode_endpoints(5, real))
    assert mirror.ready_endpoints(key) == real
    mirror._take(key, encode_endpoints(10**18, frozenset({Endpoint("127.0.0.1", 1)})))  # forged: no such leader
    assert mirror.ready_endpoints(key) == real
    newer = frozenset({Endpoint("127.0.0.1", 40002)})
    mirror._take(key, encode_endpoints(6, newer))  # a new leader's first word, before this instance's next beat
    assert mirror.ready_endpoints(key) == newer
    mirror._take(key, encode_endpoints(5, real))  # the deposed leader's late word
    assert mirror.ready_endpoints(key) == newer and told == [real, newer]
