"""How a relayed response's body is delimited towards the client: a pure decision per response."""

from __future__ import annotations

from gateway.router.headers import ResponseHead

LAST_CHUNK = b"0\r\n\r\n"  # ends a chunked body


class Framing:
    """One of the few ways a response body can travel; module-level constants, compared by identity."""

    __slots__ = ("name", "sends_length", "chunked", "close_after", "replica_until_close")

    def __init__(self, name: str, *, sends_length: bool, chunked: bool, close_after: bool, replica_until_close: bool) -> None:
        self.name = name
        self.sends_length = sends_length  # forward the replica's Content-Length
        self.chunked = chunked  # the gateway chunks the body it relays
        self.close_after = close_after  # the body ends when the gateway closes the client connection
        self.replica_until_close = replica_until_close  # the replica's body ends when it closes

    def __repr__(self) -> str:
        return f"Framing({self.name})"


NO_BODY = Framing("no-body", sends_length=False, chunked=False, close_after=False, replica_until_close=False)
HEAD_LENGTH = Framing("head-length", sends_length=True, chunked=False, close_after=False, replica_until_close=False)
LENGTH = Framing("length", sends_length=True, chunked=False, close_after=False, replica_until_close=False)
CHUNKED = Framing("chunked", sends_length=False, chunked=True, close_after=False, replica_until_close=False)
CHUNKED_FROM_CLOSE = Framing("chunked-from-close", sends_length=False, chunked=True, close_after=False, replica_until_close=True)
CLOSE = Framing("close", sends_length=False, chunked=False, close_after=True, replica_until_close=False)
CLOSE_FROM_CLOSE = Framing("close-from-close", sends_length=False, chunked=False, close_after=True, replica_until_close=True)


def choose_framing(status: int, head: ResponseHead, head_only: bool, http10: bool) -> Framing:
    """RFC 9112 §6.3 from the replica's side, then what the client can take: HTTP/1.0 gets no chunks,
    so a body of unknown length ends with the connection."""
    if head_only or status == 204 or status == 304:
        return HEAD_LENGTH if head_only and head.content_length >= 0 else NO_BODY
    if head.content_length >= 0 and not head.chunked:
        return LENGTH
    if http10:
        return CLOSE if head.chunked else CLOSE_FROM_CLOSE
    return CHUNKED if head.chunked else CHUNKED_FROM_CLOSE
