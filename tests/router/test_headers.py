from __future__ import annotations

import pytest

from gateway.router.headers import BadRequest, normalise_host, read_request_head, read_response_head


def test_request_head_strips_hop_by_hop_and_connection_listed_names() -> None:
    head = read_request_head(
        [
            (b"Host", b"a.b.example.com"),
            (b"Connection", b"keep-alive, X-Private"),
            (b"X-Private", b"secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Proxy-Authorization", b"Basic x"),
            (b"Accept", b"*/*"),
            (b"Content-Length", b"3"),
        ]
    )
    assert head.lines == [b"Host: a.b.example.com\r\n", b"Accept: */*\r\n"]
    assert head.content_length == 3 and not head.chunked


def test_request_head_reads_steering_headers() -> None:
    head = read_request_head(
        [
            (b"host", b"x"),
            (b"Knative-Serving-Tag", b"Canary"),
            (b"Expect", b"100-continue"),
            (b"X-Forwarded-For", b"1.1.1.1"),
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
        ]
    )
    assert head.tag == b"canary"
    assert head.expect_continue and not head.chunked
    assert head.forwarded_for == b"1.1.1.1"
    assert head.upgrade == b"websocket"
    assert all(not line.lower().startswith(b"expect") for line in head.lines)


@pytest.mark.parametrize("framing", [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")])
def test_an_upgrade_request_with_a_body_is_refused(framing: tuple[bytes, bytes]) -> None:
    """Its body would be parsed as the client's next request: smuggling past a front proxy's rules."""
    with pytest.raises(BadRequest, match="Upgrade request with a body"):
        read_request_head([(b"host", b"x"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), framing])
    assert read_request_head(
        [(b"host", b"x"), (b"Connection", b"Upgrade"), (b"Upgrade", b"h2c"), (b"Content-Length", b"0")]
    ).upgrade


def test_upgrade_without_connection_upgrade_is_ignored() -> None:
    assert read_request_head([(b"host", b"x"), (b"Upgrade", b"websocket")]).upgrade is None


@pytest.mark.parametrize(
    "headers, words",
    [
        ([(b"host", b"x"), (b"content-length", b"1"), (b"transfer-encoding", b"chunked")], "both"),
        ([(b"host", b"x"), (b"content-length", b"1"), (b"content-length", b"1")], "more than one Content-Length"),
        ([(b"host", b"x"), (b"transfer-encoding", b"gzip")], "unsupported Transfer-Encoding"),
        ([(b"host", b"x"), (b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")], "unsupported"),
        ([(b"host", b"x"), (b"content-length", b"-1")], "not a number"),
        ([(b"content-length", b"1")], "missing Host"),
    ],
)
def test_framing_a_proxy_must_not_guess_is_refused(headers: list[tuple[bytes, bytes]], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        read_request_head(headers)


def test_response_head_framing() -> None:
    resp = read_response_head([(b"Content-Length", b"10"), (b"Connection", b"close, X-A"), (b"X-A", b"1"), (b"X-B", b"2")])
    assert resp.content_length == 10 and not resp.chunked
    assert resp.lines == [b"X-B: 2\r\n"]
    assert read_response_head([(b"Transfer-Encoding", b"chunked")]).chunked


@pytest.mark.parametrize(
    "raw, want",
    [
        (b"Iris.Default.Example.COM", b"iris.default.example.com"),
        (b"iris.default.example.com:8080", b"iris.default.example.com"),
        (b"iris.default.example.com.", b"iris.default.example.com"),
        (b"[::1]:8080", b"[::1]"),
        (b" x.y ", b"x.y"),
    ],
)
def test_normalise_host(raw: bytes, want: bytes) -> None:
    assert normalise_host(raw) == want


def test_valid_host_fast_path_agrees_with_the_grammar() -> None:
    """The translate() fast path must accept exactly what the RFC 3986 regex accepts."""
    import random

    from gateway.router.headers import grammar_ok, valid_host

    alphabet = b"aZ09-._~!$&'()*+,;=%:@/[]\\ \t\x00\x7fv"
    rng = random.Random(7)
    samples = [
        b"iris.default.example.com",
        b"a:",
        b":80",
        b"a:1:2",
        b"[::1]:80",
        b"a%41:8",
        b"x:123456",
        b"",
        b"x:65535",
        b"x:65536",
        b"x:99999",
    ]
    samples += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))) for _ in range(20000)]
    for host in samples:
        assert valid_host(host) == grammar_ok(host), host
    assert valid_host(b"x:65535") and not valid_host(b"x:65536") and not valid_host(b"[::1]:99999")
