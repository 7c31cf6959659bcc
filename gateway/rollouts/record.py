"""An InferenceService's rollout record: which numbered revision is rolled out, which is latest, the split.

Kept as JSON (a file, a Deployment annotation, a Redis value): `to_json` / `from_json`. The rolled-out
revision's whole `RevisionSpec` is kept, so it goes on serving what it served after the manifest changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from typing import Any

from gateway.config.model import RevisionSpec, canonical
from gateway.rollouts.digest import NOT_REVISION_KEYS, predictor_digest

__all__ = ["NOT_REVISION_KEYS", "RecordError", "RolloutRecord", "predictor_digest", "revision_digest", "revision_name"]

FORMAT = 1  # the record's layout; a record of another is refused, never reset
PREFIX = "predictor-"  # KServe's revision names: {name}-predictor-00001


class RecordError(ValueError):
    """A stored record that cannot be read."""


def revision_name(number: int) -> str:
    """The revision's suffix (`RevisionKey.revision`): ``predictor-00002``."""
    return f"{PREFIX}{number:05d}"


def revision_digest(revision: RevisionSpec) -> str:
    """What runs, whatever the revision is called (for a RevisionSpec that comes with no predictor digest)."""
    bare = replace(revision, name="", tag=None)
    return hashlib.blake2b(repr(canonical(bare)).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class RolloutRecord:
    """One InferenceService's rollout. `rolled_out == latest` when no canary runs (`percent` is then None)."""

    counter: int  # the highest number given out: numbers only grow, never reused
    rolled_out: int  # the revision the previous rollout promoted: it keeps 100 - percent
    rolled_out_spec: RevisionSpec  # what it runs, kept whole
    latest: int  # the newest revision: it gets `percent`
    latest_digest: str  # revision_digest of the latest revision
    percent: int | None  # the latest revision's share while a canary runs; None: rolled out (100 %)
    generation: int = 1  # one more per change: of two copies, the higher is newer

    @property
    def canary(self) -> bool:
        return self.percent is not None and self.latest != self.rolled_out

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "counter": self.counter,
                "rolledOut": self.rolled_out,
                "rolledOutSpec": _spec_json(self.rolled_out_spec),
                "latest": self.latest,
                "latestDigest": self.latest_digest,
                "percent": self.percent,
                "generation": self.generation,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RolloutRecord:
        """The record `text` holds; RecordError saying what is wrong with it."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RecordError("not a JSON object")
        if data.get("format") != FORMAT:
            raise RecordError(f"format {data.get('format')!r}, this gateway reads format {FORMAT}")
        counter = _number(data, "counter", 1)
        rolled_out = _number(data, "rolledOut", 1)
        latest = _number(data, "latest", 1)
        generation = _number(data, "generation", 1)
        percent = data.get("percent")
        if percent is not None and (not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100):
            raise RecordError(f"percent must be null or 0..100, got {percent!r}")
        digest = data.get("latestDigest")
        if not isinstance(digest, str) or not digest:
            raise RecordError("latestDigest must be a non-empty string")
        if not rolled_out <= latest <= counter:
            raise RecordError(f"needs rolledOut <= latest <= counter, got {rolled_out}, {latest}, {counter}")
        spec = _spec_of(data.get("rolledOutSpec"))
        return cls(counter, rolled_out, spec, latest, digest, percent, generation)


def _number(data: dict[str, Any], key: str, lo: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise RecordError(f"{key} must be an integer >= {lo}, got {value!r}")
    return value


_PAIRS = ("env", "node_selector")  # tuples of (name, value) pairs


def _spec_json(spec: RevisionSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


def _spec_of(value: object) -> RevisionSpec:
    if not isinstance(value, dict):
        raise RecordError("rolledOutSpec must be a JSON object")
    known = {f.name for f in fields(RevisionSpec)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise RecordError(f"rolledOutSpec has fields this gateway does not know: {', '.join(unknown)}")
    given: dict[str, Any] = {}
    for key, item in value.items():
        if key in _PAIRS and isinstance(item, list):
            item = tuple(tuple(pair) for pair in item)
        elif isinstance(item, list):
            item = tuple(item)
        given[key] = item
    if not isinstance(given.get("name"), str):
        raise RecordError("rolledOutSpec.name must be a string")
    try:
        return RevisionSpec(**given)
    except TypeError as exc:
        raise RecordError(f"rolledOutSpec: {exc}") from None
