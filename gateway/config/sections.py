"""Settings sections (GatewayConfig's `spec`, `spec.proxy`, ...) read key by key into frozen settings.

Each key of a section is a `SectionKey`: it reads the key's value and returns the settings with one field
replaced. `section_key` pairs a reader with a `replace(settings, field=value)`, so mypy checks the field's
name and that the reader's type is the field's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from gateway.config.errors import DocContext
from gateway.config.values import check_keys, join, mapping

S = TypeVar("S")
T = TypeVar("T")

SectionKey = Callable[[DocContext, str, object, S], S]


def section_key(read: Callable[[DocContext, str, object], T | None], put: Callable[[S, T], S]) -> SectionKey[S]:
    """The key whose value `read` reads and `put` sets; a value that fails to read (reported) sets nothing."""

    def apply(ctx: DocContext, path: str, value: object, settings: S) -> S:
        parsed = read(ctx, path, value)
        return settings if parsed is None else put(settings, parsed)

    return apply


def read_section(ctx: DocContext, path: str, value: object, defaults: S, keys: Mapping[str, SectionKey[S]]) -> S:
    """`defaults` with every key of the mapping at `path` applied, in the document's order; unknown keys are
    errors (GatewayConfig is our own document)."""
    if value is None:
        return defaults
    found = mapping(ctx, path, value)
    if found is None:
        return defaults
    check_keys(ctx, path, found, keys, strict=True)
    settings = defaults
    for key, item in found.items():
        if key in keys:
            settings = keys[key](ctx, join(path, key), item, settings)
    return settings


def read_keys(ctx: DocContext, path: str, found: Mapping[str, object], defaults: S, keys: Mapping[str, SectionKey[S]]) -> S:
    """`defaults` with the keys of `found` that are given and not null applied, in the order of `keys`."""
    settings = defaults
    for key, apply in keys.items():
        if found.get(key) is not None:
            settings = apply(ctx, join(path, key), found[key], settings)
    return settings
