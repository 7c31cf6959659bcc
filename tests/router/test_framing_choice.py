"""How a relayed response's body is delimited towards the client, as a table (RFC 9112 §6.3)."""

from __future__ import annotations

import pytest

from gateway.router.framing import (
    CHUNKED,
    CHUNKED_FROM_CLOSE,
    CLOSE,
    CLOSE_FROM_CLOSE,
    HEAD_LENGTH,
    LENGTH,
    NO_BODY,
    Framing,
    choose_framing,
)
from gateway.router.headers import read_response_head

CL = (b"Content-Length", b"12")
TE = (b"Transfer-Encoding", b"chunked")


@pytest.mark.parametrize(
    ("status", "headers", "head_only", "http10", "expected"),
    [
        (200, [CL], False, False, LENGTH),
        (200, [CL], False, True, LENGTH),
        (200, [TE], False, False, CHUNKED),
        (200, [TE], False, True, CLOSE),  # HTTP/1.0 cannot take chunks: the body ends with the connection
        (200, [], False, False, CHUNKED_FROM_CLOSE),  # the replica's body ends at its close: chunked for the client
        (200, [], False, True, CLOSE_FROM_CLOSE),
        (200, [CL, TE], False, False, CHUNKED),  # both: Transfer-Encoding wins (RFC 9112 §6.3 item 3)
        (200, [CL], True, False, HEAD_LENGTH),  # HEAD: the length is told, no body follows
        (200, [TE], True, False, NO_BODY),
        (200, [], True, True, NO_BODY),
        (204, [], False, False, NO_BODY),
        (304, [CL], False, False, NO_BODY),
    ],
)
def test_choose_framing(
    status: int, headers: list[tuple[bytes, bytes]], head_only: bool, http10: bool, expected: Framing
) -> None:
    assert choose_framing(status, read_response_head(headers), head_only, http10) is expected


def test_framings_say_what_they_do() -> None:
    assert LENGTH.sends_length and not LENGTH.chunked and not LENGTH.close_after
    assert CHUNKED_FROM_CLOSE.chunked and CHUNKED_FROM_CLOSE.replica_until_close
    assert CLOSE.close_after and not CLOSE.replica_until_close
    assert CLOSE_FROM_CLOSE.close_after and CLOSE_FROM_CLOSE.replica_until_close
    assert not NO_BODY.sends_length and HEAD_LENGTH.sends_length
    assert repr(CHUNKED) == "Framing(chunked)"
