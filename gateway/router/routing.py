"""From a parsed request head to a decision: the revision and the upstream request head, or a refusal."""

from __future__ import annotations

from typing import Protocol

from gateway.router.headers import BadRequest, RequestHead, normalise_host, read_request_head, valid_host
from gateway.router.revision import RevisionRuntime
from gateway.router.state import ProxyState


class HeadMemo:
    """The last origin-form request head a connection sent, as read: a keep-alive client that sends the same
    head again (method, target and headers equal, byte for byte, under the same settings) gets the same
    RequestHead and upstream head without reading them again. Routing itself (host, tag, split) is never kept."""

    __slots__ = ("method", "url", "headers", "settings", "head", "upstream_head")

    def __init__(self) -> None:
        self.method = self.url = self.upstream_head = b""
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.settings: object = None
        self.head: RequestHead | None = None


class Peer(Protocol):
    """The client connection as routing sees it: who sent the request."""

    peer: bytes
    memo: HeadMemo

    def is_trusted(self) -> bool:
        """The peer is one of spec.proxy.trustedProxies (its X-Forwarded-* claims are kept)."""


class Routed:
    """A request to proxy: its revision and the head the replica gets."""

    __slots__ = ("method", "url", "head", "runtime", "keep_alive", "upstream_head")

    def __init__(
        self, method: bytes, url: bytes, head: RequestHead, runtime: RevisionRuntime, keep_alive: bool, upstream_head: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.head: RequestHead | None = head
        self.runtime: RevisionRuntime | None = runtime
        self.keep_alive = keep_alive
        self.upstream_head = upstream_head


class Rejected:
    """A request answered by the gateway itself: 400, 404, 413… (`runtime` when a revision was chosen)."""

    __slots__ = ("method", "url", "head", "runtime", "keep_alive", "status", "message")

    def __init__(
        self,
        method: bytes,
        url: bytes,
        head: RequestHead | None,
        runtime: RevisionRuntime | None,
        keep_alive: bool,
        status: int,
        message: str,
    ) -> None:
        self.method = method
        self.url = url
        self.head = head
        self.runtime = runtime
        self.keep_alive = keep_alive
        self.status = status
        self.message = message


def absolute_form(url: bytes, head: RequestHead) -> bytes:
    """``GET http://host/path``: route by the URI's authority (RFC 9112 §3.2.2), forward origin-form."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise BadRequest("request target must be a path or an absolute http URI")
    authority, slash, path = rest.partition(b"/")
    authority, query_sep, query = authority.partition(b"?")
    if not authority or not valid_host(authority):
        raise BadRequest("absolute request target without a usable host")
    target = b"/" + path if slash else b"/"
    if query_sep:
        target += b"?" + query
    if normalise_host(authority) != normalise_host(head.host):
        head.lines = [line for line in head.lines if line[:5].lower() != b"host:"]
        head.lines.append(b"host: " + authority + b"\r\n")
        head.host = authority
    return target


def read_target(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, RequestHead]:
    """The request target in origin form and the head; BadRequest for what a reverse proxy refuses."""
    if method == b"CONNECT":
        raise BadRequest("CONNECT is not supported: the gateway is not a forward proxy")
    head = read_request_head(headers)
    if url == b"*":
        if method != b"OPTIONS":
            raise BadRequest("the request target * is for OPTIONS only")
    elif url[:1] != b"/":
        url = absolute_form(url, head)
    return url, head


def route(
    state: ProxyState, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool, client: Peer
) -> Routed | Rejected:
    """Read the head, pick the revision (by host, tag, split), build the upstream request head."""
    memo = client.memo
    head = memo.head
    origin_form = False
    if url == memo.url and headers == memo.headers and method == memo.method and memo.settings is state.settings:
        upstream = memo.upstream_head  # the same head as the last request: read the same (RequestHead is never changed)
    else:
        upstream = b""
        origin_form = url[:1] == b"/"  # else the target is rewritten (absolute form changes the head): never kept
        try:
            url, head = read_target(method, url, headers)
        except BadRequest as exc:
            return Rejected(method, url, None, None, False, exc.status, str(exc))
    assert head is not None
    hosts = state.routes.hosts  # keys are normalised: a Host sent as it is listed needs no normalising
    found = hosts.get(head.host) or hosts.get(normalise_host(head.host))
    if found is None:
        return Rejected(method, url, head, None, keep_alive, 404, f"no service for host {head.host.decode('latin-1')!r}")
    route_, pinned = found
    if pinned is not None:
        runtime = pinned
    elif route_.canary is None and head.tag is None:
        runtime = route_.default  # what choose() answers, without the call
    else:
        runtime = route_.choose(head.tag)
    if head.content_length > state.settings.max_body_bytes:
        return Rejected(method, url, head, runtime, False, 413, "request body larger than the limit")
    if not upstream:
        upstream = upstream_head(method, url, head, client)
        if origin_form:
            # A copy: the parser appends a chunked body's trailers to the request's list after this.
            memo.method, memo.url, memo.headers, memo.settings = method, url, headers.copy(), state.settings
            memo.head, memo.upstream_head = head, upstream
    return Routed(method, url, head, runtime, keep_alive, upstream)


def reroute(state: ProxyState, head: RequestHead) -> RevisionRuntime | None:
    """The revision the current route table gives ``head`` (a request whose revision a reload removed while it
    waited); None when no service has its host any more."""
    hosts = state.routes.hosts
    found = hosts.get(head.host) or hosts.get(normalise_host(head.host))
    if found is None:
        return None
    route_, pinned = found
    return pinned if pinned is not None else route_.choose(head.tag)


def upstream_head(method: bytes, url: bytes, head: RequestHead, client: Peer) -> bytes:
    """The request line and headers the replica gets: hop-by-hop gone, X-Forwarded-* set, framing restated."""
    forwarded_for = head.forwarded_for
    peer = client.peer
    parts = [
        method,
        b" ",
        url,
        b" HTTP/1.1\r\n",
        *head.lines,
        b"x-forwarded-for: ",
        forwarded_for + b", " + peer if forwarded_for else peer,
    ]
    if head.forwarding and client.is_trusted():
        # A trusted proxy in front told us the original scheme and host: pass its word on.
        parts.append(b"\r\n")
        parts.extend(head.forwarding)
        if not head.has_forwarded_proto:
            parts.append(b"x-forwarded-proto: http\r\n")
        if not head.has_forwarded_host:
            parts.append(b"x-forwarded-host: " + head.host + b"\r\n")
    else:
        parts += (b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: ", head.host, b"\r\n")
    if head.chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif head.content_length >= 0:
        parts.append(b"content-length: %d\r\n" % head.content_length)
    if head.upgrade is not None:
        parts.append(b"connection: upgrade\r\nupgrade: " + head.upgrade + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
