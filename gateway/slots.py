"""Where a replica's concurrency slots start among the data planes (router/shares.py divides them; the local
backend picks replica ports with it): a function of the replica's address alone, the same in every process."""

from __future__ import annotations

import zlib

from gateway.types import Endpoint


def slot_offset(endpoint: Endpoint, count: int) -> int:
    """The data plane (of `count`) that owns a replica's slot 0; slot j belongs to plane (offset + j) % count.

    CRC-32 of "host:port": stable across processes and machines, unlike Python's salted ``hash``."""
    return zlib.crc32(f"{endpoint.host}:{endpoint.port}".encode()) % count
