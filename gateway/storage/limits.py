"""What one model download may take: bytes, disk space and time.

`Limits` holds the settings (GatewayConfig `spec.storage.maxModelBytes` and `downloadTimeout`, reaching replicas
and init containers as $SERVING_GATEWAY_MAX_MODEL_BYTES and $SERVING_GATEWAY_DOWNLOAD_TIMEOUT, or the storage
initializer's `--max-bytes` and `--timeout`); a `Budget` counts one download's bytes as they are written, checking
the limit, the filesystem's free space and the deadline as it goes (S3 and GCS: the deadline between objects).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import StorageError

DEFAULT_MAX_BYTES = 16 * 1024**3  # per model, downloaded or unpacked
MAX_BYTES_ENV = "SERVING_GATEWAY_MAX_MODEL_BYTES"
TIMEOUT_ENV = "SERVING_GATEWAY_DOWNLOAD_TIMEOUT"  # seconds
DEFAULT_TIMEOUT = 600.0  # an init container's download
LOCAL_TIMEOUT = 90.0  # a local backend replica's: under the 120 s it is given to become ready (backends/local.py)
MIN_FREE = 0.05  # a download stops before its filesystem would have less than this share of it free
DISK_CHECK_EVERY = 64 * 1024**2  # bytes written between two looks at the free space


def disk_space(path: str) -> tuple[int, int]:
    """(bytes free to an unprivileged writer, size) of the filesystem holding `path`."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize, found.f_blocks * found.f_frsize


def max_bytes_from(env: Mapping[str, str]) -> int:
    """The limit $SERVING_GATEWAY_MAX_MODEL_BYTES sets (a number of bytes), else the default."""
    text = env.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    if not text.isdigit() or int(text) < 1:
        raise StorageError(f"${MAX_BYTES_ENV} must be a number of bytes >= 1, got {text!r}")
    return int(text)


def timeout_from(env: Mapping[str, str], local: bool) -> float:
    """The deadline $SERVING_GATEWAY_DOWNLOAD_TIMEOUT sets (seconds), else the default (`local`: under the local backend)."""
    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return LOCAL_TIMEOUT if local else DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise StorageError(f"${TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    min_free: float = MIN_FREE
    timeout: float | None = None  # seconds for the whole download; None: no overall deadline
    clock: Callable[[], float] = time.monotonic
    space: Callable[[str], tuple[int, int]] = field(default=disk_space)
    check_every: int = DISK_CHECK_EVERY  # bytes written between two looks at the free space


class Budget:
    """One download's bytes, written under `folder`: StorageError once it passes the limit, would leave its
    filesystem under `min_free` free, or runs past the deadline."""

    def __init__(self, limits: Limits, folder: str) -> None:
        self.limits = limits
        self.limit = limits.max_bytes
        self.folder = folder
        self.written = 0
        self._unchecked = 0  # bytes written since the free space was last looked at
        self.deadline = None if limits.timeout is None else limits.clock() + limits.timeout

    def reserve(self, size: int, what: str = "") -> None:
        """Before writing `size` bytes known in advance: refused when over the limit or the disk's room."""
        if self.written + size > self.limit:
            raise StorageError(f"{what or 'the model'}: {size} bytes, more than the limit of {self.limit}")
        self.check_disk(size)
        self.check_deadline()

    def take(self, n: int) -> None:
        """`n` more bytes downloaded."""
        self.written += n
        if self.written > self.limit:
            raise StorageError(f"more than the limit of {self.limit} bytes")
        self.progress(n)

    def progress(self, n: int) -> None:
        """`n` more bytes on disk (counted against the limit or not): the free space and the deadline checked."""
        self._unchecked += n
        if self._unchecked >= self.limits.check_every:
            self._unchecked = 0
            self.check_disk(0)
        self.check_deadline()

    def check_disk(self, need: int) -> None:
        free, total = self.limits.space(self.folder)
        floor = int(total * self.limits.min_free)
        if free - need < floor:
            share = f"{self.limits.min_free:.0%}"
            raise StorageError(
                f"not enough disk space in {self.folder}: {free} bytes free of {total}, writing"
                f"{f' {need} more bytes' if need else ' on'} would leave less than {share} free"
            )

    def check_deadline(self) -> None:
        if self.deadline is not None and self.limits.clock() > self.deadline:
            raise StorageError(f"the download deadline ({self.limits.timeout:g} s) passed before the model was complete")

    def remaining(self) -> float | None:
        """Seconds left before the deadline, None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - self.limits.clock())
