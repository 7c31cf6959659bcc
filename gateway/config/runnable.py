"""What a revision runs, and where: readers for command, endpoints, env, resources, accelerators, placement.

Configuration only; the data plane's live revision is `gateway.router.revision.RevisionRuntime`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.config.errors import DocContext
from gateway.config.model import RevisionSpec
from gateway.config.values import (
    check_keys,
    describe,
    http_url,
    integer,
    join,
    mapping,
    quantity,
    quantity_value,
    sequence,
    string,
)
from gateway.types import RevisionName

T = TypeVar("T")

ACCELERATORS = ("nvidia", "kunlun")
RESOURCE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[^=\s]+")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
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


@dataclass(slots=True)
class RevisionDraft:
    """RevisionSpec fields as a translator reads them; None means "not given" (the RevisionSpec default).

    Translators set typed attributes, so a misspelt field is a type error; `finish` is the one place a
    draft becomes a RevisionSpec.
    """

    command: tuple[str, ...] | str | None = None
    endpoints: tuple[str, ...] | None = None
    readiness_path: str | None = None
    env: tuple[tuple[str, str], ...] | None = None
    workdir: str | None = None
    image: str | None = None
    container_command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    container_port: int | None = None
    accelerator: str | None = None
    accelerator_count: int | None = None
    node_selector: tuple[tuple[str, str], ...] | None = None
    tolerations: tuple[dict[str, object], ...] | None = None
    resources: dict[str, dict[str, str]] | None = None
    container_name: str | None = None
    pod_spec: dict[str, object] | None = None
    model_path: str | None = None
    storage_uri: str | None = None
    storage_secret: str | None = None
    storage_path: str | None = None
    model_format: str | None = None
    model_runtime: str | None = None
    env_refs: tuple[tuple[str, dict[str, object]], ...] | None = None
    service_account: str | None = None

    def finish(self, name: RevisionName) -> RevisionSpec:
        return RevisionSpec(
            name=name,
            command=self.command,
            endpoints=self.endpoints or (),
            readiness_path=self.readiness_path,
            env=self.env or (),
            workdir=self.workdir,
            image=self.image,
            container_command=self.container_command or (),
            args=self.args or (),
            container_port=self.container_port,
            accelerator=self.accelerator,
            accelerator_count=1 if self.accelerator_count is None else self.accelerator_count,
            node_selector=self.node_selector or (),
            tolerations=self.tolerations or (),
            resources={} if self.resources is None else self.resources,
            container_name=self.container_name,
            pod_spec=self.pod_spec,
            env_refs=self.env_refs or (),
            model_path=self.model_path,
            storage_uri=self.storage_uri,
            storage_secret=self.storage_secret,
            storage_path=self.storage_path,
            model_format=self.model_format,
            model_runtime=self.model_runtime,
            service_account=self.service_account,
        )


def read_given(
    ctx: DocContext, path: str, found: dict[str, object], key: str, reader: Callable[[DocContext, str, object], T]
) -> T | None:
    """`reader` on `found[key]` when the key is given and not null, else None."""
    value = found.get(key)
    return None if value is None else reader(ctx, join(path, key), value)


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
    if isinstance(value, dict):
        pairs = _env_from_mapping(ctx, path, value)
    elif isinstance(value, list):
        pairs = _env_from_list(ctx, path, value)
    else:
        ctx.error(path, f"must be a mapping or a list of {{name, value}}, got {describe(value)}")
        pairs = []
    return tuple(pairs) if ctx.error_count == errors else None


def _env_from_mapping(ctx: DocContext, path: str, value: dict[object, object]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, item in (mapping(ctx, path, value) or {}).items():
        name, text = _env_name(ctx, join(path, key), key), _env_value(ctx, join(path, key), item)
        if name is not None and text is not None:
            pairs.append((name, text))
    return pairs


def _env_from_list(ctx: DocContext, path: str, value: list[object], refs: bool = False) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(value):
        if refs and isinstance(entry, dict) and "valueFrom" in entry:
            continue  # read by read_env_refs
        pair = _env_entry(ctx, join(path, i), entry)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _env_entry(ctx: DocContext, path: str, entry: object) -> tuple[str, str] | None:
    """One {name, value} of a Kubernetes env list; None when skipped or wrong."""
    item = mapping(ctx, path, entry)
    if item is None:
        return None
    if "valueFrom" in item:
        ctx.warn(join(path, "valueFrom"), "not supported by the gateway, variable skipped")
        return None
    for key in item:
        if key not in ("name", "value"):
            ctx.warn(join(path, key), "unknown key, ignored")
    if "name" not in item:
        ctx.error(join(path, "name"), "required")
        return None
    name = _env_name(ctx, join(path, "name"), item["name"])
    text = _env_value(ctx, join(path, "value"), item.get("value"))
    return None if name is None or text is None else (name, text)


def read_workdir(ctx: DocContext, path: str, value: object) -> str | None:
    text = string(ctx, path, value)
    if text is None:
        return None
    return os.path.normpath(os.path.join(ctx.directory, os.path.expanduser(text)))


def read_accelerator(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and (value in ACCELERATORS or RESOURCE_NAME.fullmatch(value)):
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


TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
TOLERATION_OPERATORS = ("Exists", "Equal")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def read_tolerations(ctx: DocContext, path: str, value: object) -> tuple[dict[str, object], ...] | None:
    items = sequence(ctx, path, value)
    if items is None:
        return None
    found = [read_toleration(ctx, join(path, i), item) for i, item in enumerate(items)]
    return None if any(item is None for item in found) else tuple(t for t in found if t is not None)


def read_toleration(ctx: DocContext, path: str, value: object) -> dict[str, object] | None:
    """One pod toleration, checked as the API server would: known fields, an operator Exists or Equal
    (Exists: no value; no key: Exists), an effect of a taint, tolerationSeconds only with NoExecute."""
    found = mapping(ctx, path, value)
    if found is None:
        return None
    errors = ctx.error_count
    check_keys(ctx, path, found, TOLERATION_KEYS, strict=True)
    key, given = _optional_text(ctx, path, found, "key"), _optional_text(ctx, path, found, "value")
    operator = _one_of(ctx, path, found, "operator", TOLERATION_OPERATORS) or "Equal"
    _one_of(ctx, path, found, "effect", TAINT_EFFECTS)
    if operator == "Exists" and given:
        ctx.error(join(path, "value"), f"must be empty with operator Exists, got {given!r}")
    if not key and operator != "Exists":
        ctx.error(join(path, "operator"), "must be Exists when no key is given (a toleration of every taint)")
    if found.get("tolerationSeconds") is not None:
        integer(ctx, join(path, "tolerationSeconds"), found["tolerationSeconds"])
        if found.get("effect") != "NoExecute":
            ctx.error(join(path, "tolerationSeconds"), "only applies with effect NoExecute")
    return found if ctx.error_count == errors else None


def _optional_text(ctx: DocContext, path: str, found: dict[str, object], name: str) -> str:
    value = found.get(name)
    if value is None or value == "":
        return ""
    return string(ctx, join(path, name), value) or ""


def _one_of(ctx: DocContext, path: str, found: dict[str, object], name: str, allowed: tuple[str, ...]) -> str | None:
    value = found.get(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        ctx.error(join(path, name), f"must be one of {', '.join(allowed)}, got {describe(value)}")
        return None
    return str(value)


def read_port(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=1, hi=65535)


def read_resources(
    ctx: DocContext, path: str, value: object, defaults: dict[str, str] | None = None
) -> dict[str, dict[str, str]] | None:
    """Kubernetes' {requests, limits}; `defaults` fills names missing from either (ElasticServing does).

    A filled value never makes a request exceed its limit (the API server refuses that): a missing
    request is at most the given limit, a missing limit at least the given request.
    """
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
        _fill_defaults(result, defaults)
    return result


def _fill_defaults(result: dict[str, dict[str, str]], defaults: dict[str, str]) -> None:
    requests, limits = result.setdefault("requests", {}), result.setdefault("limits", {})
    for name, amount in defaults.items():
        given_request, given_limit = requests.get(name), limits.get(name)
        if given_request is None:
            requests[name] = amount if given_limit is None else _smaller(amount, given_limit)
        if given_limit is None:
            limits[name] = amount if given_request is None else _larger(amount, given_request)


def _smaller(a: str, b: str) -> str:
    return a if quantity_value(a) <= quantity_value(b) else b


def _larger(a: str, b: str) -> str:
    return a if quantity_value(a) >= quantity_value(b) else b


def read_accelerator_count(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=1)


def read_placement(ctx: DocContext, path: str, found: dict[str, object], draft: RevisionDraft) -> None:
    """`nodeSelector`, `tolerations` and `serviceAccountName` of the mapping at `path` (a pod spec, a predictor, a revision)."""
    draft.node_selector = read_given(ctx, path, found, "nodeSelector", read_string_map)
    draft.tolerations = read_given(ctx, path, found, "tolerations", read_tolerations)
    draft.service_account = read_given(ctx, path, found, "serviceAccountName", read_service_account)


def read_service_account(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 253 and _SUBDOMAIN.fullmatch(value):
        return value
    ctx.error(path, f"must be a ServiceAccount name (lowercase letters, digits, '-' and '.'), got {describe(value)}")
    return None


def read_gateway_keys(ctx: DocContext, path: str, found: dict[str, object]) -> RevisionDraft:
    """A draft from the gateway's own revision keys that are present."""
    draft = RevisionDraft(
        command=read_given(ctx, path, found, "command", read_command),
        endpoints=read_given(ctx, path, found, "endpoints", read_endpoints),
        readiness_path=read_given(ctx, path, found, "readinessPath", read_readiness_path),
        env=read_given(ctx, path, found, "env", read_env),
        workdir=read_given(ctx, path, found, "workdir", read_workdir),
        image=read_given(ctx, path, found, "image", string),
        accelerator=read_given(ctx, path, found, "accelerator", read_accelerator),
        accelerator_count=read_given(ctx, path, found, "acceleratorCount", read_accelerator_count),
    )
    read_placement(ctx, path, found, draft)
    if "acceleratorCount" in found and found.get("accelerator") is None:
        ctx.error(join(path, "acceleratorCount"), "given without accelerator")
    return draft
