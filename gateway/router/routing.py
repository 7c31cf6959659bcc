"""From a parsed request head to a request cycle: the route, the revision and the upstream request head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.router.cycle import RequestCycle
from gateway.router.headers import BadRequest, RequestHead, normalise_host, read_request_head, valid_host

if TYPE_CHECKING:
    from gateway.router.client import ClientConnection
    from gateway.router.server import ProxyServer


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


def route_and_build(
    server: ProxyServer, conn: ClientConnection, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
) -> RequestCycle:
    """Read the head, pick the revision, build the upstream request head (or an error)."""
    try:
        if method == b"CONNECT":
            raise BadRequest("CONNECT is not supported: the gateway is not a forward proxy")
        head = read_request_head(headers)
        if url == b"*":
            if method != b"OPTIONS":
                raise BadRequest("the request target * is for OPTIONS only")
        elif url[:1] != b"/":
            url = absolute_form(url, head)
    except BadRequest as exc:
        return RequestCycle(conn, method, url, None, None, False, b"", (exc.status, str(exc)))
    found = server.routes.lookup(normalise_host(head.host))
    if found is None:
        host = head.host.decode("latin-1")
        return RequestCycle(conn, method, url, head, None, keep_alive, b"", (404, f"no service for host {host!r}"))
    route, pinned = found
    rt = pinned if pinned is not None else route.choose(head.tag)
    if head.content_length > server.settings.max_body_bytes:
        return RequestCycle(conn, method, url, head, rt, False, b"", (413, "request body larger than the limit"))
    parts = [method, b" ", url, b" HTTP/1.1\r\n"]
    parts.extend(head.lines)
    peer = conn.peer
    parts.append(b"x-forwarded-for: " + (head.forwarded_for + b", " + peer if head.forwarded_for else peer) + b"\r\n")
    if head.forwarding and conn.is_trusted():
        # A trusted proxy in front told us the original scheme and host: pass its word on.
        parts.extend(head.forwarding)
        if not head.has_forwarded_proto:
            parts.append(b"x-forwarded-proto: http\r\n")
        if not head.has_forwarded_host:
            parts.append(b"x-forwarded-host: " + head.host + b"\r\n")
    else:
        parts.append(b"x-forwarded-proto: http\r\nx-forwarded-host: " + head.host + b"\r\n")
    if head.chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif head.content_length >= 0:
        parts.append(b"content-length: %d\r\n" % head.content_length)
    if head.upgrade is not None:
        parts.append(b"connection: upgrade\r\nupgrade: " + head.upgrade + b"\r\n")
    parts.append(b"\r\n")
    return RequestCycle(conn, method, url, head, rt, keep_alive, b"".join(parts))
