"""The hub's wire format between the supervisor and its workers.

A Unix stream socket; each message is one *frame*: a 4-byte big-endian unsigned length, then that
many bytes of UTF-8 JSON holding one object whose ``"t"`` names the message. Revision keys travel as
``[namespace, service, revision]``, endpoints as ``[host, port]``.

Worker -> supervisor:
  ``hello {index, pid}``; ``listening {addresses}``;
  ``report {stats, load, replicas, counters, unrouted, connections}`` once a second;
  ``poke {key, stats}`` at once when a request finds a revision at zero (its seconds flushed first);
  ``replicas {replicas}`` right after endpoints were removed (the in-flight counts on those replicas);
  ``reloaded {id, ok, error}``.
Supervisor -> worker:
  ``share {index, count}``; ``endpoints {items}`` (a snapshot on hello, then changes; an endpoint [host, port]
  or [host, port, number]: feed.py);
  ``states {items}`` (the revisions whose backend state is not ok); ``reload {id}``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from gateway.types import Endpoint, RevisionKey

MAX_FRAME = 64 << 20
_HEADER = struct.Struct(">I")

Message = dict[str, Any]


class ProtocolError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def frame(message: Message) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at a clean end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("the stream ended inside a frame header") from None
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes is over the {MAX_FRAME} byte limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the stream ended inside a frame") from None
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"a frame is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("a frame is not an object with a type")
    return message


def key_out(key: RevisionKey) -> list[str]:
    return [key.namespace, key.service, key.revision]


def key_in(value: Any) -> RevisionKey:
    namespace, service, revision = value
    return RevisionKey(namespace, service, revision)


def endpoint_out(endpoint: Endpoint) -> list[object]:
    return [endpoint.host, endpoint.port]


def endpoint_in(value: Any) -> Endpoint:
    host, port = value
    return Endpoint(str(host), int(port))
