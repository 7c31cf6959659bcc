"""Where a replica's concurrency slots start among the data planes (router/shares.py divides them; the local
backend picks replica ports with it; the kubernetes backend numbers pods for it).

Two sources, the same in every process:
- a replica *numbered* by the one actuator (the kubernetes backend's pods: an annotation the leader writes,
  `SLOT_ANNOTATION`): replica number ``n`` starts at ``(n * cc) % count``, so replicas ``0 .. m-1`` hold the
  consecutive slots ``0 .. m*cc - 1`` and every plane is served once ``m >= ceil(count / cc)``, whatever
  ``count`` is (planes join and leave; a number never needs changing);
- any other replica: a CRC-32 of its ``host:port``.

The numbers are learned per process (`learn`, `forget`) by whatever hears of the replicas (the kubernetes
backend's pod index, a worker's feed from its supervisor) before the replica is handed to the throttlers.
"""

from __future__ import annotations

import zlib

from gateway.types import Endpoint

SLOT_ANNOTATION = "serving-gateway/slot"  # on a pod: its number (a decimal integer >= 0), written by the leader
MAX_SLOT = 1_000_000  # replicas of one revision numbered: far above any maxScale

_numbers: dict[Endpoint, int] = {}


def parse_slot(value: object) -> int | None:
    """The number an annotation holds, or None when it holds none (absent, or not a decimal integer in range)."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 7:
        return None
    number = int(value)
    return number if number < MAX_SLOT else None


def learn(endpoint: Endpoint, number: int) -> None:
    _numbers[endpoint] = number


def forget(endpoint: Endpoint) -> None:
    _numbers.pop(endpoint, None)


def number_of(endpoint: Endpoint) -> int | None:
    """The number the actuator gave this replica, None when it has none (or it is not known here)."""
    return _numbers.get(endpoint)


def slot_offset(endpoint: Endpoint, count: int, container_concurrency: int = 1) -> int:
    """The data plane (of `count`) that owns a replica's slot 0; slot j belongs to plane (offset + j) % count.

    A numbered replica: its number times `container_concurrency`; else CRC-32 of "host:port" (stable across
    processes and machines, unlike Python's salted ``hash``)."""
    number = _numbers.get(endpoint)
    if number is not None:
        return (number * max(container_concurrency, 1)) % count
    return zlib.crc32(f"{endpoint.host}:{endpoint.port}".encode()) % count


def lowest_free(taken: set[int]) -> int:
    """The number a new replica gets: the lowest one no other replica of its revision holds, so the numbers stay
    0 .. m-1 (a replica lost is replaced in its place) and each new replica serves the planes served least."""
    number = 0
    while number in taken:
        number += 1
    return number
