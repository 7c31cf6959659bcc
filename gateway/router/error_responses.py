"""Error responses of the data plane: JSON bodies per DESIGN.md, built as ready bytes."""

from __future__ import annotations

import json
from http import HTTPStatus

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def error_response(
    status: int,
    message: str,
    *,
    service: str | None = None,
    revision: str | None = None,
    close: bool = False,
    extra_headers: bytes = b"",
) -> bytes:
    """A complete HTTP/1.1 response with a JSON error body."""
    body = json.dumps({"error": message, "service": service, "revision": revision}).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        reason(status),
        len(body),
    )
    if status == 503 and b"retry-after" not in extra_headers.lower():
        head += b"retry-after: 1\r\n"
    if close:
        head += b"connection: close\r\n"
    return head + extra_headers + b"\r\n" + body
