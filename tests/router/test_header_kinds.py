"""Header names are classified once per spelling and kept in bounded caches (headers._KINDS, _RESPONSE_KINDS) and
status and Content-Length lines are kept once made (response.status_line, length_line): what a header or a
line means must never depend on what was seen before it."""

from __future__ import annotations

import pytest

from gateway.router import headers
from gateway.router.headers import KIND_NAME_MAX, BadRequest, read_request_head, read_response_head
from gateway.router.response import _LENGTH_LINES, _STATUS_LINES, KEEP_LINES, length_line, status_line


@pytest.mark.parametrize("spelling", [b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"cOnTeNt-LeNgTh"])
def test_every_spelling_of_a_response_header_means_the_same_twice(spelling: bytes) -> None:
    for _ in range(2):  # the second time the kind comes from the cache
        resp = read_response_head([(spelling, b"7"), (b"X-Spelled", b"1"), (b"KEEP-ALIVE", b"timeout=5")])
        assert resp.content_length == 7
        assert resp.lines == [b"X-Spelled: 1\r\n"]


def test_response_headers_named_by_connection_go_whatever_the_cache_says() -> None:
    read_response_head([(b"X-Private", b"forwarded the first time")])  # cached as forwarded
    resp = read_response_head([(b"Connection", b"X-PRIVATE"), (b"X-Private", b"secret"), (b"X-Other", b"1")])
    assert resp.lines == [b"X-Other: 1\r\n"]


@pytest.mark.parametrize("spelling", [b"Host", b"host", b"HOST"])
def test_every_spelling_of_host_counts_once(spelling: bytes) -> None:
    for _ in range(2):
        assert read_request_head([(spelling, b"a.example.com")]).host == b"a.example.com"
    with pytest.raises(BadRequest, match="more than one Host header"):
        read_request_head([(spelling, b"a.example.com"), (b"Host", b"a.example.com")])


def test_framing_errors_still_come_before_host_errors() -> None:
    """Host is read in the same pass as the other headers; which refusal a request gets is unchanged."""
    with pytest.raises(BadRequest, match="more than one Content-Length"):
        read_request_head([(b"content-length", b"1"), (b"content-length", b"1")])
    with pytest.raises(BadRequest, match="missing Host"):
        read_request_head([(b"content-length", b"1")])


def test_expect_is_answered_only_for_100_continue_in_any_spelling() -> None:
    for name in (b"Expect", b"EXPECT", b"Expect"):
        head = read_request_head([(b"Host", b"x"), (name, b"100-Continue")])
        assert head.expect_continue and head.lines == [b"Host: x\r\n"]
        head = read_request_head([(b"Host", b"x"), (name, b"something-else")])
        assert not head.expect_continue and head.lines == [b"Host: x\r\n", name + b": something-else\r\n"]


def test_forwarding_claims_are_steering_in_any_spelling() -> None:
    for name in (b"X-Forwarded-Proto", b"x_forwarded_proto", b"X-Envoy-Original-Path"):
        for _ in range(2):
            head = read_request_head([(b"Host", b"x"), (name, b"https")])
            assert head.lines == [b"Host: x\r\n"]
            assert head.forwarding == [name + b": https\r\n"]


def test_long_names_are_classified_but_not_kept() -> None:
    long_name = b"X-" + b"a" * KIND_NAME_MAX
    head = read_request_head([(b"Host", b"x"), (long_name, b"1")])
    assert head.lines == [b"Host: x\r\n", long_name + b": 1\r\n"]
    assert long_name not in headers._KINDS
    resp = read_response_head([(long_name, b"1")])
    assert resp.lines == [long_name + b": 1\r\n"]
    assert long_name not in headers._RESPONSE_KINDS


def test_the_name_caches_stay_bounded() -> None:
    for i in range(5000):
        read_request_head([(b"Host", b"x"), (b"X-Made-Up-%d" % i, b"1")])
        read_response_head([(b"X-Made-Up-%d" % i, b"1")])
    assert 0 < len(headers._KINDS) <= 4096
    assert 0 < len(headers._RESPONSE_KINDS) <= 1024
    head = read_request_head([(b"Host", b"x"), (b"Content-Length", b"5"), (b"X-Made-Up-1", b"1")])
    assert head.content_length == 5 and head.lines == [b"Host: x\r\n", b"X-Made-Up-1: 1\r\n"]


def test_status_lines_keep_the_replicas_reason_phrase() -> None:
    assert status_line(200, b"OK") == b"HTTP/1.1 200 OK\r\n"
    assert status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert _STATUS_LINES[200, b"Fine"] == b"HTTP/1.1 200 Fine\r\n"
    assert status_line(404, b"") == b"HTTP/1.1 404 Not Found\r\n"  # no reason: the standard one
    long_reason = b"R" * 65
    assert status_line(200, long_reason) == b"HTTP/1.1 200 " + long_reason + b"\r\n"
    assert (200, long_reason) not in _STATUS_LINES


def test_line_caches_stay_bounded() -> None:
    for n in range(KEEP_LINES + 100):
        assert length_line(n) == b"content-length: %d\r\n" % n
        assert status_line(200, b"R%d" % n) == b"HTTP/1.1 200 R%d\r\n" % n
    assert len(_LENGTH_LINES) <= KEEP_LINES and len(_STATUS_LINES) <= KEEP_LINES


@pytest.mark.parametrize("plain", [b"keep-alive", b"Keep-Alive", b"close", b"CLOSE"])
def test_a_plain_connection_header_beside_one_naming_headers(plain: bytes) -> None:
    """A Connection value that names no header is skipped; another Connection header still drops what it names."""
    resp = read_response_head([(b"Connection", plain), (b"Connection", b"X-A"), (b"X-A", b"1"), (b"X-B", b"2")])
    assert resp.lines == [b"X-B: 2\r\n"]
    resp = read_response_head([(b"Connection", b"X-A, " + plain), (b"X-A", b"1"), (b"Keep-Alive", b"timeout=5")])
    assert resp.lines == []
    assert read_response_head([(b"Connection", plain), (b"X-A", b"1")]).lines == [b"X-A: 1\r\n"]
