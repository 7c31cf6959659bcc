"""Where rollout records are kept: the `RolloutStore` protocol, a JSON file in the state directory (the
local backend), and a store in memory (the base of the kubernetes one, and tests).

Every store answers by compare-and-set: a record is written only if the stored one is still what the
caller resolved against, so several gateways that resolve the same manifest agree on the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from gateway.errors import GatewayError
from gateway.rollouts.record import MAX_BYTES, RecordError, RolloutRecord, parse_json

Ident = tuple[str, str]  # (namespace, name) of an InferenceService
Swap = tuple[Ident, RolloutRecord | None, RolloutRecord]  # (service, the record expected, the one to store)

FILE_NAME = "rollouts.json"
MAX_FILE_BYTES = 64 * MAX_BYTES  # thousands of services' records


class RolloutError(GatewayError):
    """A rollout record that cannot be read or written; the message names where it is kept."""


class RolloutStore(Protocol):
    """Rollout records by service. Every method runs its I/O off the event loop."""

    async def load(self, idents: Iterable[Ident]) -> dict[Ident, RolloutRecord]:
        """The stored records of `idents` (those with none are left out). RolloutError when one is unreadable."""
        ...

    async def swap(self, swaps: Iterable[Swap]) -> dict[Ident, RolloutRecord | None]:
        """For each (ident, expected, record): store `record` if what is stored is `expected` (None: nothing).
        Returns what is stored after, per ident: `record` where it was stored, else the other writer's."""
        ...


def _key(ident: Ident) -> str:
    return f"{ident[0]}/{ident[1]}"


class MemoryRolloutStore:
    """Records in this process only (lost at a restart): tests, and the kubernetes store's working copy."""

    def __init__(self, records: Mapping[Ident, RolloutRecord] | None = None) -> None:
        self.records: dict[Ident, RolloutRecord] = dict(records or {})

    async def load(self, idents: Iterable[Ident]) -> dict[Ident, RolloutRecord]:
        return {ident: self.records[ident] for ident in idents if ident in self.records}

    async def swap(self, swaps: Iterable[Swap]) -> dict[Ident, RolloutRecord | None]:
        return {ident: self._swap_one(ident, expected, record) for ident, expected, record in swaps}

    def _swap_one(self, ident: Ident, expected: RolloutRecord | None, record: RolloutRecord) -> RolloutRecord | None:
        current = self.records.get(ident)
        if current != expected:
            return current
        self.records[ident] = record
        return record


class FileRolloutStore(MemoryRolloutStore):
    """Every service's record in one JSON file (`{state dir}/rollouts.json`), read once, written whole
    (a temporary file, fsync, rename: a crash leaves the old file or the new one). A file that cannot be
    read is an error naming it, never a silent reset: a reset would shift traffic."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._read = False
        self._lock = asyncio.Lock()  # control plane only: one reload's read-modify-write at a time

    async def load(self, idents: Iterable[Ident]) -> dict[Ident, RolloutRecord]:
        async with self._lock:
            await self._read_once()
            return await super().load(idents)

    async def swap(self, swaps: Iterable[Swap]) -> dict[Ident, RolloutRecord | None]:
        async with self._lock:
            await self._read_once()
            before = dict(self.records)
            stored = await super().swap(swaps)
            if self.records != before:
                await self._write(before)
            return stored

    async def overwrite(self, records: Mapping[Ident, RolloutRecord]) -> None:
        """Set these records whatever the file held (a copy of records kept elsewhere, for workers)."""
        async with self._lock:
            await self._read_once()
            if all(self.records.get(ident) == record for ident, record in records.items()):
                return
            before = dict(self.records)
            self.records.update(records)
            await self._write(before)

    async def _write(self, before: dict[Ident, RolloutRecord]) -> None:
        try:
            await asyncio.to_thread(_write_records, self.path, dict(self.records))  # serialised off the loop too
        except OSError as exc:
            self.records = before
            raise RolloutError(f"cannot write the rollout records {self.path}: {exc}") from None

    async def _read_once(self) -> None:
        if not self._read:
            self.records = await asyncio.to_thread(read_file, self.path)
            self._read = True

    async def reread(self) -> None:
        """Forget what was read: the next call reads the file again (a worker, after its supervisor wrote)."""
        async with self._lock:
            self._read = False


def read_file(path: Path) -> dict[Ident, RolloutRecord]:
    """The records a rollouts file holds; none when it does not exist. RolloutError naming the file and the
    entry when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RolloutError(f"cannot read the rollout records {path}: {exc}") from None
    what = f"the rollout records {path} are corrupt (move the file away to start every InferenceService afresh)"
    records: dict[Ident, RolloutRecord] = {}
    for ident, key, value in keyed_entries(text, what):
        try:
            records[ident] = RolloutRecord.from_data(value)
        except RecordError as exc:
            raise RolloutError(f"{what}: {key}: {exc}") from None
    return records


def keyed_entries(text: str, what: str) -> Iterator[tuple[Ident, str, object]]:
    """The entries of a state file's JSON object keyed `namespace/name`: (ident, key, value). RolloutError
    beginning with `what` (the file, and what to do) for a text that is not such an object."""
    try:
        data = parse_json(text, MAX_FILE_BYTES)
    except RecordError as exc:
        raise RolloutError(f"{what}: {exc}") from None
    if not isinstance(data, dict):
        raise RolloutError(f"{what}: not a JSON object")
    for key, value in data.items():
        namespace, _, name = key.partition("/")
        if not namespace or not name:
            raise RolloutError(f"{what}: {key!r} is not namespace/name")
        yield (namespace, name), key, value


def _write_records(path: Path, records: dict[Ident, RolloutRecord]) -> None:
    _write_atomically(path, json.dumps({_key(i): json.loads(r.to_json()) for i, r in sorted(records.items())}, indent=1))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
