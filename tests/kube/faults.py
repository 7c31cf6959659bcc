"""Faults a test injects into the emulator: the next N requests that match answer with an error.

A fault matches on the HTTP method (or any), a regular expression searched in the path, and whether the
request is a watch. Faults are consulted before anything else, so a failed write changes nothing. They
are added from the test's thread and taken on the emulator's loop, hence the lock.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock

GONE = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version (injected fault)",
        "reason": "Expired",
        "code": 410,
    },
}


@dataclass
class Fault:
    """One injected fault; `served` counts the requests it has answered so far."""

    method: str | None
    path: re.Pattern[str]
    watch: bool | None
    times: int
    kind: str  # "status", "gone", "list", "stall"
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0  # "stall": how long the request waits before it is served as usual
    served: int = 0

    @property
    def spent(self) -> bool:
        return self.served >= self.times

    def matches(self, request: kmock.Request) -> bool:
        is_watch = request.action == kmock.action.WATCH
        return (
            (self.method is None or request.method.value.upper() == self.method.upper())
            and (self.watch is None or self.watch == is_watch)
            and self.path.search(request.url.path) is not None
        )

    def response(self, listing: dict[str, Any] | None = None) -> aiohttp.web.Response:
        """The answer; a "list" fault answers `listing` whole, with no trailing newline, as a server ignoring ?watch."""
        if self.kind == "gone":
            return aiohttp.web.Response(body=json.dumps(GONE).encode() + b"\n", content_type="application/json")
        if self.kind == "list":
            return aiohttp.web.Response(body=json.dumps(listing or {"items": []}).encode(), content_type="application/json")
        reason = "TooManyRequests" if self.status == 429 else "InternalError"
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"injected fault: {self.status}",
            "reason": reason,
            "code": self.status,
        }
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return aiohttp.web.json_response(status, status=self.status, headers=headers)


class FaultBook:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        if fault.times < 1:
            raise ValueError(f"a fault must answer at least one request, got times={fault.times}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, request: kmock.Request) -> Fault | None:
        """The first unspent fault matching `request`, counted as served; None when none matches."""
        with self._lock:
            for fault in self._faults:
                if fault.served < fault.times and fault.matches(request):
                    fault.served += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def compile_path(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad path pattern {pattern!r}: {exc}") from exc
