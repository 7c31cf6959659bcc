"""Readers for single values: each checks one value, reports a precise problem, returns None on failure."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from urllib.parse import urlsplit

from gateway.config.addresses import DNS_NAME, AddressError, parse_address
from gateway.config.errors import DocContext

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(e[+-]?\d+|E[+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")
_QUANTITY_FACTOR = {
    None: 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}

DNS_LABEL_RULE = (
    "a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
)


def describe(value: object) -> str:
    """How a found value is shown in a message: strings quoted, containers by their type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value})"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def mapping(ctx: DocContext, path: str, value: object) -> dict[str, object] | None:
    if not isinstance(value, dict):
        ctx.error(path, f"must be a mapping, got {describe(value)}")
        return None
    result: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(key, str):
            result[key] = item
        else:
            ctx.error(path, f"keys must be strings, got {describe(key)}")
    return result


def sequence(ctx: DocContext, path: str, value: object) -> list[object] | None:
    if not isinstance(value, list):
        ctx.error(path, f"must be a list, got {describe(value)}")
        return None
    return value


def check_keys(
    ctx: DocContext,
    path: str,
    found: dict[str, object],
    allowed: Collection[str],
    *,
    strict: bool,
    elsewhere: Mapping[str, str] | None = None,
) -> None:
    """Unknown keys are errors in our own documents (typos) and warnings in foreign manifests.

    `elsewhere` maps keys that are valid at another level of the same document to their full path,
    so a key indented at the wrong level is pointed to where it belongs.
    """
    for key in found:
        if key in allowed:
            continue
        if elsewhere and key in elsewhere:
            close = [elsewhere[key]]
        else:
            close = difflib.get_close_matches(key, list(allowed), n=1)
        if strict:
            hint = f" (did you mean {close[0]}?)" if close else f"; expected one of: {', '.join(allowed)}"
            ctx.error(join(path, key), f"unknown key{hint}")
        else:
            hint = f" (did you mean {close[0]}?)" if close else ""
            ctx.warn(join(path, key), f"unknown key, ignored{hint}")


def string(ctx: DocContext, path: str, value: object, *, scalars: bool = False) -> str | None:
    """A non-empty string; with `scalars`, numbers are taken as their text (image tags, env values)."""
    if scalars and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        ctx.error(path, f"must be a string, got {describe(value)}")
        return None
    if not value.strip():
        ctx.error(path, "must not be empty")
        return None
    return value


def choice(ctx: DocContext, path: str, value: object, options: Sequence[str]) -> str | None:
    if isinstance(value, str) and value in options:
        return value
    ctx.error(path, f"must be one of {', '.join(options)}, got {describe(value)}")
    return None


def boolean(ctx: DocContext, path: str, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    ctx.error(path, f"must be true or false, got {describe(value)}")
    return None


def _to_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _shown(value: object) -> str:
    """An out-of-range value as the user wrote it, without quotes."""
    return value.strip() if isinstance(value, str) else describe(value)


def number(
    ctx: DocContext,
    path: str,
    value: object,
    *,
    ok: Callable[[float], bool] = lambda _: True,
    expect: str = "",
    integer: bool = False,
) -> float | None:
    """A number (numeric strings accepted, as Kubernetes manifests often quote them)."""
    found = _to_float(value)
    what = "an integer" if integer else "a number"
    if found is None or (integer and not found.is_integer()):
        ctx.error(path, f"must be {what}{' ' + expect if expect else ''}, got {describe(value)}")
        return None
    if not ok(found):
        ctx.error(path, f"must be {expect}, got {_shown(value)}")
        return None
    return found


def integer(ctx: DocContext, path: str, value: object, *, lo: int | None = None, hi: int | None = None) -> int | None:
    if lo is not None and hi is not None:
        expect = f"{lo}..{hi}"
    elif lo is not None:
        expect = f">= {lo}"
    elif hi is not None:
        expect = f"<= {hi}"
    else:
        expect = ""
    found = number(
        ctx,
        path,
        value,
        ok=lambda v: (lo is None or v >= lo) and (hi is None or v <= hi),
        expect=expect,
        integer=True,
    )
    return None if found is None else int(found)


def parse_duration(value: object) -> float | None:
    """Seconds from "60s", "1m30s", "500ms", "2h", a plain number or a numeric string; None if malformed."""
    plain = _to_float(value)
    if plain is not None:
        return plain
    if not isinstance(value, str):
        return None
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if not text:
        return None
    total, pos = 0.0, 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            return None
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    return sign * total


def format_duration(seconds: float) -> str:
    if seconds == int(seconds):
        whole = int(seconds)
        if whole and whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole >= 60 and whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    return f"{seconds:g}s"


def duration(
    ctx: DocContext,
    path: str,
    value: object,
    *,
    ok: Callable[[float], bool] = lambda v: v >= 0,
    expect: str = ">= 0",
    whole_seconds: bool = False,
) -> float | None:
    found = parse_duration(value)
    if found is None:
        ctx.error(path, f"must be a duration like 60s, got {describe(value)}")
        return None
    if not ok(found):
        ctx.error(path, f"must be {expect}, got {_shown(value)}")
        return None
    if whole_seconds and not found.is_integer():
        ctx.error(path, f"must be whole seconds, got {_shown(value)}")
        return None
    return found


def quantity(ctx: DocContext, path: str, value: object) -> str | None:
    """A Kubernetes resource quantity ("0.2", "512Mi", 2), kept as text."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(text, str) and _QUANTITY.fullmatch(text.strip()):
        return text.strip()
    ctx.error(path, f"must be a quantity like 512Mi or 0.5, got {describe(value)}")
    return None


def quantity_value(text: str) -> float:
    """The number a quantity `quantity` accepted stands for ("512Mi" -> 536870912.0, "200m" -> 0.2)."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    suffix = match.group(2)
    if suffix is not None and suffix[0] in "eE":
        return float(match.group(1)) * 10.0 ** int(suffix[1:])
    return float(match.group(1)) * _QUANTITY_FACTOR[suffix]


def byte_size(ctx: DocContext, path: str, value: object) -> int | None:
    """A positive byte count: 65536, "64Ki", "100Mi"."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _QUANTITY.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or (match.group(2) or "").lower().startswith("e") or match.group(2) in ("n", "u", "m"):
        ctx.error(path, f"must be a byte size like 65536 or 64Ki, got {describe(value)}")
        return None
    size = float(match.group(1)) * _QUANTITY_FACTOR[match.group(2)]
    if size < 1 or not size.is_integer():
        ctx.error(path, f"must be a whole number of bytes >= 1, got {_shown(value)}")
        return None
    return int(size)


def dns_label(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 63 and DNS_LABEL.fullmatch(value):
        return value
    ctx.error(path, f"must be {DNS_LABEL_RULE}, got {describe(value)}")
    return None


def domain(ctx: DocContext, path: str, value: object) -> str | None:
    if (
        isinstance(value, str)
        and len(value) <= 253
        and DNS_NAME.fullmatch(value)
        and all(len(part) <= 63 for part in value.split("."))
    ):
        return value
    ctx.error(path, f"must be a lowercase DNS name like example.com, got {describe(value)}")
    return None


def listen_address(ctx: DocContext, path: str, value: object) -> str | None:
    """HOST:PORT as `gateway.config.addresses.parse_address` reads it; kept as written."""
    if isinstance(value, str):
        try:
            parse_address(value)
        except AddressError:
            pass
        else:
            return value
    ctx.error(path, f"must be HOST:PORT like 0.0.0.0:8080, got {describe(value)}")
    return None


def http_url(ctx: DocContext, path: str, value: object) -> str | None:
    """An endpoint base URL. Only plain http and no path: the gateway forwards the request's own path
    and speaks plain HTTP/1.1 to replicas, so anything else would be silently ignored."""
    if isinstance(value, str) and value.lower().startswith("https://"):
        ctx.error(path, f"https endpoints are not supported (the gateway speaks plain HTTP to replicas), got {describe(value)}")
        return None
    if isinstance(value, str) and urlsplit(value).path not in ("", "/"):
        ctx.error(path, f"must be a base URL without a path (the request's own path is forwarded), got {describe(value)}")
        return None
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if (
            parts is not None
            and port_ok
            and parts.scheme in ("http", "https")
            and parts.hostname
            and not parts.query
            and not parts.fragment
        ):
            return value.rstrip("/")
    ctx.error(path, f"must be an http base URL like http://10.0.0.5:8000, got {describe(value)}")
    return None
