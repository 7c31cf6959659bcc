"""An InferenceService's rollout record: which numbered revision is rolled out, which is latest, the split.

Kept as JSON (a file, a Deployment annotation, a Redis value): `to_json` / `from_json`. The record names its
revisions by number and predictor digest. The rolled-out revision's whole `RevisionSpec` (what runs) goes with
it only into trusted stores (the state directory's 0600 file, the revision's Deployment annotation), so it goes
on serving what it served after the manifest changed; Redis, which any of the fleet's hosts can write, never
carries it (`to_json(with_spec=False)`): a record read from there gets its spec from a trusted place
(gateway.rollouts.specs) or is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.config.model import RevisionSpec, canonical
from gateway.rollouts.digest import NOT_REVISION_KEYS, predictor_digest
from gateway.rollouts.spec_json import spec_json, spec_of

__all__ = [
    "NOT_REVISION_KEYS",
    "RecordError",
    "RolloutRecord",
    "parse_json",
    "predictor_digest",
    "revision_digest",
    "revision_name",
    "spec_json",
]

FORMAT = 1  # the record's layout; a record of another is refused, never reset
PREFIX = "predictor-"  # KServe's revision names: {name}-predictor-00001
MAX_BYTES = 1 << 20  # a record is a few kB (a pod spec at most): larger is not one


class RecordError(ValueError):
    """A stored record that cannot be read."""


def revision_name(number: int) -> str:
    """The revision's suffix (`RevisionKey.revision`): ``predictor-00002``."""
    return f"{PREFIX}{number:05d}"


def revision_digest(revision: RevisionSpec) -> str:
    """What runs, whatever the revision is called (for a RevisionSpec that comes with no predictor digest)."""
    bare = replace(revision, name="", tag=None)
    return hashlib.blake2b(repr(canonical(bare)).encode(), digest_size=16).hexdigest()


def parse_json(text: str | bytes, limit: int = MAX_BYTES) -> Any:
    """JSON of at most `limit` characters, nested no deeper than the parser can take; RecordError otherwise."""
    if len(text) > limit:
        raise RecordError(f"{len(text)} characters, more than {limit}")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not JSON: {exc}") from None
    except RecursionError:
        raise RecordError("not JSON this gateway reads: nested too deeply") from None


@dataclass(frozen=True)
class RolloutRecord:
    """One InferenceService's rollout. `rolled_out == latest` when no canary runs (`percent` is then None).

    Two records are equal when their numbers, digests and split are: `rolled_out_spec` is what a trusted store
    says the rolled-out revision runs (None for a record read from Redis until one is found)."""

    counter: int  # the highest number given out: numbers only grow, never reused
    rolled_out: int  # the revision the previous rollout promoted: it keeps 100 - percent
    rolled_out_spec: RevisionSpec | None = field(compare=False)  # what it runs (None: not known yet, see above)
    latest: int = 1  # the newest revision: it gets `percent`
    latest_digest: str = ""  # the latest revision's predictor digest
    percent: int | None = None  # the latest revision's share while a canary runs; None: rolled out (100 %)
    generation: int = 1  # one more per change: of two copies, the higher is newer
    rolled_out_digest: str = ""  # the rolled-out revision's predictor digest ("": worked out, see __post_init__)

    def __post_init__(self) -> None:
        if not self.rolled_out_digest:
            # a record of before this field: the rolled-out revision is the latest, or its spec is given
            if self.rolled_out == self.latest:
                digest = self.latest_digest
            elif self.rolled_out_spec is not None:
                digest = revision_digest(self.rolled_out_spec)
            else:
                raise RecordError("rolledOutDigest is missing")
            object.__setattr__(self, "rolled_out_digest", digest)

    @property
    def canary(self) -> bool:
        return self.percent is not None and self.latest != self.rolled_out

    def to_json(self, *, with_spec: bool = True) -> str:
        """The record; `with_spec`: with the rolled-out revision's spec (trusted stores only, never Redis)."""
        content: dict[str, Any] = {
            "format": FORMAT,
            "counter": self.counter,
            "rolledOut": self.rolled_out,
            "rolledOutDigest": self.rolled_out_digest,
            "latest": self.latest,
            "latestDigest": self.latest_digest,
            "percent": self.percent,
            "generation": self.generation,
        }
        if with_spec and self.rolled_out_spec is not None:
            content["rolledOutSpec"] = spec_json(self.rolled_out_spec)
        return json.dumps(content, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, *, trusted: bool = True) -> RolloutRecord:
        """The record `text` holds; RecordError naming the field that is wrong. `trusted`: from a store that may
        say what runs (its rolledOutSpec is required and read); else any rolledOutSpec is ignored."""
        return cls.from_data(parse_json(text), trusted=trusted)

    @classmethod
    def from_data(cls, data: object, *, trusted: bool = True) -> RolloutRecord:
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
        digest = _digest(data, "latestDigest", required=True)
        rolled_out_digest = _digest(data, "rolledOutDigest", required=False)
        if not rolled_out <= latest <= counter:
            raise RecordError(f"needs rolledOut <= latest <= counter, got {rolled_out}, {latest}, {counter}")
        spec = None
        if trusted:
            try:
                spec = spec_of(data.get("rolledOutSpec"), "rolledOutSpec")
            except ValueError as exc:
                raise RecordError(str(exc)) from None
        return cls(counter, rolled_out, spec, latest, digest, percent, generation, rolled_out_digest)


def _number(data: dict[str, Any], key: str, lo: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise RecordError(f"{key} must be an integer >= {lo}, got {value!r}")
    return value


def _digest(data: dict[str, Any], key: str, *, required: bool) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > 128:
        raise RecordError(f"{key} must be a non-empty string (a digest)")
    return value
