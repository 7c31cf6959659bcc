"""What each revision a gateway applied runs, kept where only this gateway (and its workers) write: a 0600
file in the state directory, `{state dir}/revisions.json`, by service and predictor digest.

Records kept in Redis never say what runs (gateway.rollouts.redis_store); when such a record names a rolled-out
revision, its spec is looked up here, by the digest the record gives: a revision this gateway applied. Only
the specs the current records name are kept (the rolled-out and the latest revision of each service).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path

from gateway.config.model import RevisionSpec
from gateway.rollouts.spec_json import spec_json, spec_of
from gateway.rollouts.stores import Ident, RolloutError, _write_atomically, keyed_entries

FILE_NAME = "revisions.json"

Specs = dict[str, RevisionSpec]  # predictor digest -> what it runs


class SpecFile:
    """The specs of the revisions this gateway applied. The supervisor writes; a worker only reads (`reread`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.specs: dict[Ident, Specs] = {}
        self._read = False

    async def get(self, ident: Ident, digest: str) -> RevisionSpec | None:
        if not self._read:
            self.specs = await asyncio.to_thread(read_specs, self.path)
            self._read = True
        return self.specs.get(ident, {}).get(digest)

    def reread(self) -> None:
        self._read = False

    async def keep(self, kept: Mapping[Ident, Specs]) -> None:
        """Set these services' specs (others are left as they are); written only if something changed."""
        if not self._read:
            self.specs = await asyncio.to_thread(read_specs, self.path)
            self._read = True
        if all(self.specs.get(ident) == specs for ident, specs in kept.items()):
            return
        updated = {**self.specs, **kept}
        text = json.dumps(
            {
                f"{ns}/{name}": {d: spec_json(s) for d, s in sorted(specs.items())}
                for (ns, name), specs in sorted(updated.items())
            },
            indent=1,
        )
        try:
            await asyncio.to_thread(_write_atomically, self.path, text)  # mkstemp: 0600, as it stays
        except OSError as exc:
            raise RolloutError(f"cannot write the revisions this gateway applied, {self.path}: {exc}") from None
        self.specs = updated


def read_specs(path: Path) -> dict[Ident, Specs]:
    """The specs the file holds (none when it does not exist); RolloutError naming the file and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RolloutError(f"cannot read the revisions this gateway applied, {path}: {exc}") from None
    what = f"the revisions this gateway applied, {path}, are corrupt (move the file away; canaries then need re-applying)"
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise RolloutError(
            f"{path} is readable or writable by others (mode {path.stat().st_mode & 0o777:o}); it says what runs: chmod 600 it"
        )
    found: dict[Ident, Specs] = {}
    for ident, key, specs in keyed_entries(text, what):
        if not isinstance(specs, dict):
            raise RolloutError(f"{what}: {key!r} does not hold an object of specs")
        try:
            found[ident] = {digest: spec_of(value, f"{key}.{digest}") for digest, value in specs.items()}
        except ValueError as exc:
            raise RolloutError(f"{what}: {exc}") from None
    return found
