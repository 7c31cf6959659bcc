"""Header rewriting between client and replica: hop-by-hop removal, X-Forwarded-*, framing checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)


# Names a client's ``Connection`` header may not strip: the framing, the routing key and what the
# gateway sets itself.
PROTECTED = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
)
# Client-supplied claims about the original request; forwarded only from a trusted proxy.
FORWARDING = frozenset(
    {
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-scheme",
        b"x-forwarded-ssl",
        b"x-original-url",
        b"x-original-host",
        b"x-rewrite-url",
        b"true-client-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
    }
)

# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]; uri-host = IP-literal / IPv4address / reg-name.
_HOST = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    rb"(?::(?P<port>[0-9]{0,5}))?"
)


_REG_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;="


def _claims_forwarding(lname: bytes) -> bool:
    """Other names proxies use for the original request (X-Forwarded-Uri, X-Envoy-*, X_Forwarded_Proto...)."""
    if b"_" in lname:
        lname = lname.replace(b"_", b"-")  # some frameworks read underscores as dashes
        if lname in FORWARDING or lname == b"x-forwarded-for":
            return True
    return lname.startswith((b"x-forwarded-", b"x-envoy-", b"x-original-")) or lname == b"x-host"


_NONE: list[bytes] = []  # shared and never appended to: most requests carry no forwarding header
_SEEN_VALID: dict[bytes, bool] = {}  # hosts already found valid: a request's check is one dict lookup


def valid_host(host: bytes) -> bool:
    """``reg-name | IP-literal [":" port]``: no userinfo, path, spaces or control bytes."""
    if host in _SEEN_VALID:
        return True
    if _check_host(host):
        if len(_SEEN_VALID) >= 4096:
            _SEEN_VALID.clear()  # bounded: a client cycling through hosts only costs the check
        _SEEN_VALID[host] = True
        return True
    return False


def _check_host(host: bytes) -> bool:
    # A name of plain characters, with or without a port.
    if not host.translate(None, _REG_NAME_CHARS):
        return True
    name, sep, port = host.rpartition(b":")
    if sep and name and (not port or (port.isdigit() and int(port) <= 65535)) and not name.translate(None, _REG_NAME_CHARS):
        return True
    return grammar_ok(host)  # IP literals, percent-encoding, and everything invalid


def grammar_ok(host: bytes) -> bool:
    match = _HOST.fullmatch(host)
    return match is not None and int(match.group("port") or 0) <= 65535


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class RequestHead:
    """What the proxy needs from a request head, read in one pass."""

    host: bytes
    lines: list[bytes]  # forwarded header lines, each "name: value\r\n"
    content_length: int  # -1 when absent
    chunked: bool
    expect_continue: bool
    tag: bytes | None
    forwarded_for: bytes | None
    forwarding: list[bytes]  # X-Forwarded-Proto/-Host, Forwarded, X-Real-IP lines: kept for trusted peers only
    has_forwarded_proto: bool
    has_forwarded_host: bool
    upgrade: bytes | None


# Request headers that steer the proxy (routing, framing, forwarding, connection handling).
_STEERING = HOP_BY_HOP | FORWARDING | {b"host", b"content-length", b"knative-serving-tag", b"x-forwarded-for"}
# Of those, forwarded to the replica as they are (the others are dropped, restated or rebuilt).
_ALSO_FORWARDED = frozenset({b"host", b"knative-serving-tag"})

Steering = list[tuple[bytes, bytes, bytes]]  # (lower-case name, name, value), in order


# How read_request_head treats a header, by its name as the client spelled it: worked out once per spelling
# (`_kind`), then one dict lookup per header. Names longer than KIND_NAME_MAX are not kept; the dict is bounded.
_K_PLAIN, _K_HOST, _K_EXPECT, _K_STEERS, _K_STEERS_FORWARDED = 0, 1, 2, 3, 4
KIND_NAME_MAX = 64


class _Kinds(dict[bytes, int]):
    """Name -> kind; a name not seen yet is worked out by `classify` (which keeps it)."""

    __slots__ = ("classify",)

    def __init__(self, classify: Callable[[bytes], int]) -> None:
        super().__init__()
        self.classify = classify

    def __missing__(self, name: bytes) -> int:
        return self.classify(name)


def _kind(name: bytes) -> int:
    lname = name.lower()
    if lname == b"host":
        kind = _K_HOST
    elif lname in _STEERING or (lname[:1] == b"x" and _claims_forwarding(lname)):
        kind = _K_STEERS_FORWARDED if lname in _ALSO_FORWARDED else _K_STEERS
    elif lname == b"expect":
        kind = _K_EXPECT
    else:
        kind = _K_PLAIN
    if len(name) <= KIND_NAME_MAX:
        if len(_KINDS) >= 4096:
            _KINDS.clear()  # a client inventing names costs only the lower-casing
        _KINDS[name] = kind
    return kind


_KINDS = _Kinds(_kind)


def read_request_head(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    """Split a request's headers into what is forwarded and what steers the proxy.

    Raises BadRequest for framing a proxy must not guess at (request smuggling).
    """
    lines: list[bytes] = []
    steering: Steering = []  # every steering header but Host
    host: bytes | None = None
    hosts = 0
    expect = False
    for name, value in headers:
        kind = _KINDS[name]
        if kind == _K_HOST:
            if host is None:
                host = value
            hosts += 1
        elif kind == _K_EXPECT:
            if value.strip().lower() == b"100-continue":
                expect = True  # answered by the gateway itself
                continue
        elif kind:
            steering.append((name.lower(), name, value))
            if kind == _K_STEERS:
                continue
        lines.append(name + b": " + value + b"\r\n")
    if steering:
        content_length, chunked, others = _framing(steering)
    else:  # only Host (a GET without forwarding claims): no framing to read
        content_length, chunked, others = -1, False, 0
    host = _one_host(host, hosts)
    if not others:  # the common case: nothing but Host and the framing steers this request
        return RequestHead(host, lines, content_length, chunked, expect, None, None, _NONE, False, False, None)
    return _with_others(steering, host, lines, content_length, chunked, expect)


def _one_host(host: bytes | None, hosts: int) -> bytes:
    if hosts != 1 or host is None:
        raise BadRequest("more than one Host header" if hosts else "missing Host header")
    host = host.strip(b" \t")
    if host not in _SEEN_VALID and not valid_host(host):
        raise BadRequest("invalid Host header " + repr(host.decode("latin-1")[:100]) + ": expected host[:port]")
    return host


def _with_others(
    steering: Steering, host: bytes, lines: list[bytes], content_length: int, chunked: bool, expect: bool
) -> RequestHead:
    """Forwarding claims, Connection and Upgrade, the tag header."""
    forwarded_for, forwarding, forwarding_names = _forwarding(steering)
    tokens, upgrade = _connection(steering)
    extra = {t for t in tokens if t and t not in HOP_BY_HOP and t != b"close" and t not in PROTECTED}
    if extra:
        lines = [line for line in lines if line[: line.index(b":")].lower() not in extra]
        if forwarding:
            forwarding = [line for line, n in zip(forwarding, forwarding_names) if n not in extra]
    if upgrade is not None and (content_length > 0 or chunked):
        # The parser stops at an upgrade request's head whatever its framing says, so its body
        # would be read as the next request: refused, as no WebSocket or h2c client sends one.
        raise BadRequest("an Upgrade request with a body is not supported")
    tag = _last(steering, b"knative-serving-tag")
    return RequestHead(
        host,
        lines,
        content_length,
        chunked,
        expect,
        tag.strip().lower() if tag is not None else None,
        forwarded_for,
        forwarding,
        b"x-forwarded-proto" in forwarding_names,
        b"x-forwarded-host" in forwarding_names,
        upgrade,
    )


def _last(steering: Steering, lname: bytes) -> bytes | None:
    found = None
    for n, _, value in steering:
        if n == lname:
            found = value
    return found


def _framing(steering: Steering) -> tuple[int, bool, int]:
    """(Content-Length or -1, chunked, how many other steering headers); anything ambiguous is refused.
    `steering` holds no Host header."""
    content_length = -1
    te: bytes | None = None
    others = 0
    for lname, _, value in steering:
        if lname == b"content-length":
            if content_length >= 0:
                raise BadRequest("more than one Content-Length header")
            if not value.strip().isdigit():
                raise BadRequest("Content-Length is not a number")
            content_length = int(value)
        elif lname == b"transfer-encoding":
            te = value if te is None else te + b"," + value
        else:
            others += 1
    if te is None:
        return content_length, False, others
    if content_length >= 0:
        raise BadRequest("both Content-Length and Transfer-Encoding")
    if te.strip().lower() != b"chunked":
        raise BadRequest("unsupported Transfer-Encoding " + te.decode("latin-1")[:40])
    return -1, True, others


def _forwarding(steering: Steering) -> tuple[bytes | None, list[bytes], list[bytes]]:
    """X-Forwarded-For (joined), and the other forwarding claims as lines with their names."""
    xff: bytes | None = None
    lines: list[bytes] = _NONE  # made on the first forwarding header
    names: list[bytes] = _NONE
    for lname, name, value in steering:
        if lname == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
        elif lname in FORWARDING or (lname[:1] == b"x" and _claims_forwarding(lname)):
            if lines is _NONE:
                lines, names = [], []
            lines.append(name + b": " + value + b"\r\n")
            names.append(lname)
    return xff, lines, names


def _connection(steering: Steering) -> tuple[list[bytes], bytes | None]:
    """The Connection header's tokens, and the protocol asked for by Upgrade (when Connection lists it)."""
    tokens: list[bytes] = []
    upgrade = None
    for lname, _, value in steering:
        if lname == b"connection":
            tokens.extend(t.strip().lower() for t in value.split(b","))
        elif lname == b"upgrade":
            upgrade = value.strip() or None  # an empty Upgrade is none (the parser reads it so too)
    if upgrade is not None and b"upgrade" not in tokens:
        upgrade = None
    return tokens, upgrade


_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})  # what nearly every replica sends: names no header
_PLAIN_CONNECTION_SPELLED = _PLAIN_CONNECTION | {b"Keep-Alive", b"Close", b"keep-Alive", b"KEEP-ALIVE", b"CLOSE"}
# How ResponseHead.add treats a header, by its name as the replica spelled it (worked out once per spelling,
# bounded like _KINDS): forwarded as it is, or one of the headers the proxy reads and restates or drops.
_R_FORWARDED, _R_LENGTH, _R_TRANSFER_ENCODING, _R_CONNECTION, _R_UPGRADE, _R_DROPPED = 0, 1, 2, 3, 4, 5


def _response_kind(name: bytes) -> int:
    lname = name.lower()
    if lname == b"content-length":
        kind = _R_LENGTH
    elif lname == b"transfer-encoding":
        kind = _R_TRANSFER_ENCODING
    elif lname == b"connection":
        kind = _R_CONNECTION
    elif lname == b"upgrade":
        kind = _R_UPGRADE
    else:
        kind = _R_DROPPED if lname in HOP_BY_HOP else _R_FORWARDED
    if len(name) <= KIND_NAME_MAX:
        if len(_RESPONSE_KINDS) >= 1024:
            _RESPONSE_KINDS.clear()
        _RESPONSE_KINDS[name] = kind
    return kind


_RESPONSE_KINDS = _Kinds(_response_kind)


class ResponseHead:
    """A response head read header by header as the parser delivers them (no second pass)."""

    __slots__ = ("lines", "content_length", "chunked", "upgrade", "connection")

    def __init__(self) -> None:
        self.lines: list[bytes] = []  # forwarded header lines, each "name: value\r\n"
        self.content_length = -1  # -1 when absent
        self.chunked = False
        self.upgrade: bytes | None = None
        self.connection: bytes | None = None

    def reset(self) -> None:
        """Empty again, for the next response on the same connection (the head is read once, when complete)."""
        self.lines = []
        self.content_length = -1
        self.chunked = False
        self.upgrade = None
        self.connection = None

    def add(self, name: bytes, value: bytes) -> None:
        kind = _RESPONSE_KINDS[name]
        if not kind:
            self.lines.append(name + b": " + value + b"\r\n")
        elif kind == _R_LENGTH:
            if value.strip().isdigit():
                self.content_length = int(value)
        elif kind == _R_CONNECTION:
            if value in _PLAIN_CONNECTION_SPELLED:
                return  # names no header: nothing for finish() to drop
            self.connection = value if self.connection is None else self.connection + b"," + value
        elif kind == _R_TRANSFER_ENCODING:
            self.chunked = self.chunked or b"chunked" in value.lower()
        elif kind == _R_UPGRADE:
            self.upgrade = value

    def finish(self) -> ResponseHead:
        """Drop the headers the replica's Connection header names as hop-by-hop."""
        connection = self.connection
        if connection is not None and connection.lower() not in _PLAIN_CONNECTION:
            tokens = {t.strip().lower() for t in connection.split(b",")}
            extra = {t for t in tokens if t and t not in HOP_BY_HOP and t != b"close"}
            if extra:
                self.lines = [line for line in self.lines if line.split(b":", 1)[0].lower() not in extra]
        return self


def read_response_head(headers: list[tuple[bytes, bytes]]) -> ResponseHead:
    head = ResponseHead()
    for name, value in headers:
        head.add(name, value)
    return head.finish()


def normalise_host(host: bytes) -> bytes:
    """Lower-case, without port and trailing dot: ``Iris.Default.Example.com:8080`` → ``iris.default.example.com``."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end >= 0 else host
    host = host.partition(b":")[0]
    return host.rstrip(b".")
