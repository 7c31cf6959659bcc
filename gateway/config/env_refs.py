"""Kubernetes env `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef) as an InferenceService writes it: read
and checked here, kept as written in RevisionSpec.env_refs (the kubernetes backend passes them on; the local
backend reads a secretKeyRef from spec.secretsFile when a replica starts, gateway.config.storage_secrets)."""

from __future__ import annotations

from gateway.config.errors import DocContext
from gateway.config.runnable import _env_from_list, _env_name, read_env
from gateway.config.values import describe, join, mapping


def read_env_keeping_refs(ctx: DocContext, path: str, value: object) -> tuple[tuple[str, str], ...] | None:
    """`read_env` for a kind whose `valueFrom` variables `read_env_refs` reads (InferenceService)."""
    if isinstance(value, list):
        errors = ctx.error_count
        pairs = _env_from_list(ctx, path, value, refs=True)
        return tuple(pairs) if ctx.error_count == errors else None
    return read_env(ctx, path, value)


REF_KINDS = {"secretKeyRef": ("name", "key"), "configMapKeyRef": ("name", "key"), "fieldRef": ("fieldPath",)}


def read_env_refs(ctx: DocContext, path: str, value: object) -> tuple[tuple[str, dict[str, object]], ...] | None:
    """The `valueFrom` variables of a Kubernetes env list: (name, {secretKeyRef|configMapKeyRef|fieldRef: {...}})."""
    if not isinstance(value, list):
        return ()
    refs: list[tuple[str, dict[str, object]]] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or "valueFrom" not in entry:
            continue
        where = join(join(path, i), "valueFrom")
        name = _env_name(ctx, join(join(path, i), "name"), entry.get("name"))
        if "value" in entry:
            ctx.error(join(path, i), "give value or valueFrom, not both")
            continue
        source = mapping(ctx, where, entry["valueFrom"])
        if source is None or name is None:
            continue
        if len(source) != 1 or next(iter(source)) not in REF_KINDS:
            ctx.error(where, f"must hold one of {', '.join(REF_KINDS)}, got {', '.join(map(str, source)) or 'nothing'}")
            continue
        ((kind, ref),) = source.items()
        checked = _env_ref(ctx, join(where, str(kind)), str(kind), ref)
        if checked is not None:
            refs.append((name, {str(kind): checked}))
    return tuple(refs)


def _env_ref(ctx: DocContext, path: str, kind: str, ref: object) -> dict[str, object] | None:
    found = mapping(ctx, path, ref)
    if found is None:
        return None
    needed = REF_KINDS[kind]
    allowed = {*needed, "optional"} if kind != "fieldRef" else {*needed, "apiVersion"}
    ok = True
    for key in needed:
        if not isinstance(found.get(key), str) or not found.get(key):
            ctx.error(join(path, key), f"required, a non-empty string, got {describe(found.get(key))}")
            ok = False
    for key, item in found.items():
        if key not in allowed:
            ctx.error(join(path, key), f"unknown key; {kind} takes {', '.join(sorted(allowed))}")
            ok = False
        elif key == "optional" and not isinstance(item, bool):
            ctx.error(join(path, key), f"must be true or false, got {describe(item)}")
            ok = False
        elif key == "apiVersion" and not isinstance(item, str):
            ctx.error(join(path, key), f"must be a string, got {describe(item)}")
            ok = False
    return {str(key): item for key, item in found.items()} if ok else None
