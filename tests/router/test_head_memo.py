"""A connection keeps the last request head it read (routing.HeadMemo): a keep-alive client that sends the same
head again reuses its reading and its upstream head. What must not be kept: the routing itself (split, tags, the
route table), anything a reload changes, a head rewritten from an absolute-form target."""

from __future__ import annotations

import dataclasses
import ipaddress

from gateway.config.model import ProxySettings, RevisionSpec, ScalingSpec, ServiceSpec
from gateway.router.pools import Pools
from gateway.router.revision import RevisionRuntime, RevisionSettings
from gateway.router.routes import RouteTable, ServiceRoute
from gateway.router.routing import HeadMemo, Rejected, Routed, route
from gateway.router.state import ProxyState

HOST = b"svc.default.example.com"


class Peer:
    """The client connection as routing sees it."""

    def __init__(self, state: ProxyState, peer: bytes = b"10.0.0.7") -> None:
        self.state = state
        self.peer = peer
        self.memo = HeadMemo()

    def is_trusted(self) -> bool:
        return self.state.trusts(self.peer)


def make_state(canary_percent: int = 0) -> ProxyState:
    spec = ServiceSpec(
        name="svc",
        namespace="default",
        default=RevisionSpec(name="default", endpoints=("http://127.0.0.1:1",)),
        canary=RevisionSpec(name="canary", endpoints=("http://127.0.0.1:2",)) if canary_percent else None,
        canary_percent=canary_percent,
        scaling=ScalingSpec(container_concurrency=0),
        backend="static",
    )
    settings = RevisionSettings(0, 10, False, 60.0, 60.0)
    default = RevisionRuntime(spec.key("default"), settings)
    canary = RevisionRuntime(spec.key("canary"), settings) if canary_percent else None
    service = ServiceRoute(spec, default, canary)
    proxy = ProxySettings()
    return ProxyState(RouteTable({HOST: (service, None)}, {spec.ident: service}, "example.com"), proxy, Pools(proxy))


def routed(state: ProxyState, peer: Peer, headers: list[tuple[bytes, bytes]], url: bytes = b"/p") -> Routed:
    out = route(state, b"GET", url, headers, True, peer)
    assert isinstance(out, Routed), out
    return out


def test_the_same_head_again_is_not_read_again() -> None:
    state = make_state()
    peer = Peer(state)
    first = routed(state, peer, [(b"Host", HOST), (b"Accept", b"*/*")])
    again = routed(state, peer, [(b"Host", HOST), (b"Accept", b"*/*")])  # a new list, equal
    assert again.head is first.head
    assert again.upstream_head == first.upstream_head
    assert b"x-forwarded-for: 10.0.0.7\r\n" in again.upstream_head


def test_any_difference_reads_the_head_anew() -> None:
    state = make_state()
    peer = Peer(state)
    first = routed(state, peer, [(b"Host", HOST), (b"Accept", b"*/*")])
    other_value = routed(state, peer, [(b"Host", HOST), (b"Accept", b"text/plain")])
    assert other_value.head is not first.head and b"Accept: text/plain\r\n" in other_value.upstream_head
    other_target = routed(state, peer, [(b"Host", HOST), (b"Accept", b"text/plain")], url=b"/q")
    assert other_target.upstream_head.startswith(b"GET /q HTTP/1.1\r\n")
    post = route(state, b"POST", b"/q", [(b"Host", HOST), (b"Accept", b"text/plain")], True, peer)
    assert isinstance(post, Routed) and post.upstream_head.startswith(b"POST /q HTTP/1.1\r\n")
    other_peer = Peer(state, b"10.0.0.8")
    assert b"x-forwarded-for: 10.0.0.8\r\n" in routed(state, other_peer, [(b"Host", HOST), (b"Accept", b"*/*")]).upstream_head


def test_routing_is_never_kept_the_split_goes_on() -> None:
    state = make_state(canary_percent=50)
    peer = Peer(state)
    revisions = [routed(state, peer, [(b"Host", HOST)]).runtime for _ in range(4)]
    names = [r.revision_label if r is not None else "" for r in revisions]
    assert names == ["svc-default", "svc-canary", "svc-default", "svc-canary"]


def test_a_new_route_table_applies_to_the_same_head() -> None:
    state = make_state()
    peer = Peer(state)
    routed(state, peer, [(b"Host", HOST)])
    state.routes = RouteTable({}, {}, "example.com")  # the service was removed by a reload
    gone = route(state, b"GET", b"/p", [(b"Host", HOST)], True, peer)
    assert isinstance(gone, Rejected) and gone.status == 404


def test_a_reload_that_trusts_the_peer_changes_the_same_heads_forwarding() -> None:
    state = make_state()
    peer = Peer(state)
    headers = [(b"Host", HOST), (b"X-Forwarded-Proto", b"https")]
    before = routed(state, peer, headers)
    assert b"x-forwarded-proto: http\r\n" in before.upstream_head
    state.settings = dataclasses.replace(state.settings, trusted_proxies=("10.0.0.0/8",))
    state.trusted_networks = [ipaddress.ip_network("10.0.0.0/8")]
    after = routed(state, peer, list(headers))
    assert b"X-Forwarded-Proto: https\r\n" in after.upstream_head
    assert b"x-forwarded-proto: http\r\n" not in after.upstream_head


def test_a_smaller_body_limit_applies_to_the_same_head() -> None:
    state = make_state()
    peer = Peer(state)
    headers = [(b"Host", HOST), (b"Content-Length", b"100")]
    route(state, b"POST", b"/p", headers, True, peer)
    state.settings = dataclasses.replace(state.settings, max_body_bytes=10)
    refused = route(state, b"POST", b"/p", list(headers), True, peer)
    assert isinstance(refused, Rejected) and refused.status == 413


def test_an_absolute_form_target_is_not_kept() -> None:
    state = make_state()
    peer = Peer(state)
    url = b"http://" + HOST + b"/abs"
    first = routed(state, peer, [(b"Host", b"elsewhere.example.com")], url=url)
    assert first.url == b"/abs" and first.head.host == HOST  # type: ignore[union-attr]
    assert peer.memo.headers is None  # nothing kept
    again = routed(state, peer, [(b"Host", b"elsewhere.example.com")], url=url)
    assert again.head is not first.head and again.upstream_head == first.upstream_head


def test_a_rewritten_head_never_answers_an_origin_form_request() -> None:
    """GET http://svc/abs with Host: elsewhere is routed to svc; GET /abs with Host: elsewhere is not."""
    state = make_state()
    peer = Peer(state)
    routed(state, peer, [(b"Host", b"elsewhere.example.com")], url=b"http://" + HOST + b"/abs")
    plain = route(state, b"GET", b"/abs", [(b"Host", b"elsewhere.example.com")], True, peer)
    assert isinstance(plain, Rejected) and plain.status == 404


def test_trailers_added_to_a_kept_heads_list_do_not_make_it_match() -> None:
    """The parser appends a chunked body's trailers to the list the head was read from."""
    state = make_state()
    peer = Peer(state)
    headers = [(b"Host", HOST), (b"Transfer-Encoding", b"chunked")]
    route(state, b"POST", b"/p", headers, True, peer)
    headers.append((b"X-Checksum", b"abc"))  # a trailer, read after the head
    second = route(
        state, b"POST", b"/p", [(b"Host", HOST), (b"Transfer-Encoding", b"chunked"), (b"X-Checksum", b"abc")], True, peer
    )
    assert isinstance(second, Routed) and b"X-Checksum: abc\r\n" in second.upstream_head
