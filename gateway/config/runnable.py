"""What a revision runs, and where: readers for command, endpoints, env, resources, accelerators, placement.

Configuration only; the data plane's live revision is `gateway.router.revision.RevisionRuntime`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gateway.config.errors import DocContext
from gateway.config.values import (
    describe,
    http_url,
    integer,
    join,
    mapping,
    quantity,
    sequence,
    string,
)

ACCELERATORS = ("nvidia", "kunlun")
_RESOURCE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[^=\s]+")
# The gateway's own revision keys, accepted in PaddleService revisions next to ElasticServing's.
GATEWAY_REVISION_KEYS = (
    "command",
    "endpoints",
    "readinessPath",
    "env",
    "workdir",
    "image",
    "accelerator",
    "acceleratorCount",
    "nodeSelector",
    "tolerations",
)


def read_command(ctx: DocContext, path: str, value: object) -> tuple[str, ...] | str | None:
    """An argv list, or one string run by a shell."""
    if isinstance(value, str):
        return string(ctx, path, value)
    items = sequence(ctx, path, value)
    if items is None:
        return None
    if not items:
        ctx.error(path, "must not be empty")
        return None
    argv = [string(ctx, join(path, i), item, scalars=True) for i, item in enumerate(items)]
    return None if any(arg is None for arg in argv) else tuple(a for a in argv if a is not None)


def read_args(ctx: DocContext, path: str, value: object) -> tuple[str, ...] | None:
    items = sequence(ctx, path, value)
    if items is None:
        return None
    argv = [string(ctx, join(path, i), item, scalars=True) for i, item in enumerate(items)]
    return None if any(arg is None for arg in argv) else tuple(a for a in argv if a is not None)


def read_endpoints(ctx: DocContext, path: str, value: object) -> tuple[str, ...] | None:
    items = sequence(ctx, path, value)
    if items is None:
        return None
    if not items:
        ctx.error(path, "must list at least one URL")
        return None
    urls = [http_url(ctx, join(path, i), item) for i, item in enumerate(items)]
    return None if any(url is None for url in urls) else tuple(u for u in urls if u is not None)


def read_readiness_path(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and value.startswith("/"):
        return value
    ctx.error(path, f"must be a URL path starting with /, got {describe(value)}")
    return None


def _env_value(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    ctx.error(path, f"must be a string, got {describe(value)}")
    return None


def _env_name(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and _ENV_NAME.fullmatch(value):
        return value
    ctx.error(path, f"must be an environment variable name, got {describe(value)}")
    return None


def read_env(ctx: DocContext, path: str, value: object) -> tuple[tuple[str, str], ...] | None:
    """A mapping NAME: value, or Kubernetes' list of {name, value}."""
    errors = ctx.error_count
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        found = mapping(ctx, path, value) or {}
        for key, item in found.items():
            name, text = _env_name(ctx, join(path, key), key), _env_value(ctx, join(path, key), item)
            if name is not None and text is not None:
                pairs.append((name, text))
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            item_path = join(path, i)
            item = mapping(ctx, item_path, entry)
            if item is None:
                continue
            if "valueFrom" in item:
                ctx.warn(join(item_path, "valueFrom"), "not supported by the gateway, variable skipped")
                continue
            for key in item:
                if key not in ("name", "value"):
                    ctx.warn(join(item_path, key), "unknown key, ignored")
            if "name" not in item:
                ctx.error(join(item_path, "name"), "required")
                continue
            name = _env_name(ctx, join(item_path, "name"), item["name"])
            text = _env_value(ctx, join(item_path, "value"), item.get("value"))
            if name is not None and text is not None:
                pairs.append((name, text))
    else:
        ctx.error(path, f"must be a mapping or a list of {{name, value}}, got {describe(value)}")
    return tuple(pairs) if ctx.error_count == errors else None


def read_workdir(ctx: DocContext, path: str, value: object) -> str | None:
    text = string(ctx, path, value)
    if text is None:
        return None
    return os.path.normpath(os.path.join(ctx.directory, os.path.expanduser(text)))


def read_accelerator(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and (value in ACCELERATORS or _RESOURCE_NAME.fullmatch(value)):
        return value
    ctx.error(path, f"must be nvidia, kunlun or a resource name like nvidia.com/gpu, got {describe(value)}")
    return None


def read_string_map(ctx: DocContext, path: str, value: object) -> tuple[tuple[str, str], ...] | None:
    found = mapping(ctx, path, value)
    if found is None:
        return None
    items = {key: string(ctx, join(path, key), item, scalars=True) for key, item in found.items()}
    if any(item is None for item in items.values()):
        return None
    return tuple((key, item) for key, item in items.items() if item is not None)


def read_tolerations(ctx: DocContext, path: str, value: object) -> tuple[dict[str, object], ...] | None:
    items = sequence(ctx, path, value)
    if items is None:
        return None
    found = [mapping(ctx, join(path, i), item) for i, item in enumerate(items)]
    return None if any(item is None for item in found) else tuple(t for t in found if t is not None)


def read_port(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=1, hi=65535)


def read_resources(
    ctx: DocContext, path: str, value: object, defaults: dict[str, str] | None = None
) -> dict[str, dict[str, str]] | None:
    """Kubernetes' {requests, limits}; `defaults` fills names missing from either (ElasticServing does)."""
    result: dict[str, dict[str, str]] = {}
    found = {} if value is None else mapping(ctx, path, value)
    if found is None:
        return None
    errors = ctx.error_count
    for key, section in found.items():
        if key not in ("requests", "limits"):
            ctx.warn(join(path, key), "unknown key, ignored")
            continue
        if section is None:
            continue
        items = mapping(ctx, join(path, key), section)
        if items is None:
            continue
        parsed = {name: quantity(ctx, join(join(path, key), name), amount) for name, amount in items.items()}
        result[key] = {name: amount for name, amount in parsed.items() if amount is not None}
    if ctx.error_count > errors:
        return None
    if defaults:
        for key in ("requests", "limits"):
            section = result.setdefault(key, {})
            for name, amount in defaults.items():
                section.setdefault(name, amount)
    return result


def read_gateway_keys(ctx: DocContext, path: str, found: dict[str, object]) -> dict[str, Any]:
    """RevisionSpec keyword arguments from the gateway's own revision keys that are present."""
    readers = {
        "command": ("command", read_command),
        "endpoints": ("endpoints", read_endpoints),
        "readinessPath": ("readiness_path", read_readiness_path),
        "env": ("env", read_env),
        "workdir": ("workdir", read_workdir),
        "image": ("image", string),
        "accelerator": ("accelerator", read_accelerator),
        "acceleratorCount": ("accelerator_count", lambda c, p, v: integer(c, p, v, lo=1)),
        "nodeSelector": ("node_selector", read_string_map),
        "tolerations": ("tolerations", read_tolerations),
    }
    kwargs: dict[str, Any] = {}
    for key, (field, reader) in readers.items():
        if found.get(key) is not None:
            parsed = reader(ctx, join(path, key), found[key])
            if parsed is not None:
                kwargs[field] = parsed
    if "acceleratorCount" in found and found.get("accelerator") is None:
        ctx.error(join(path, "acceleratorCount"), "given without accelerator")
    return kwargs
