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
