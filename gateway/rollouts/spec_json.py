"""A `RevisionSpec` as JSON and back, every field type-checked: a stored spec is what a replica will run, so a
field of the wrong type is refused with its name, never passed on to hang or crash-loop the revision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from gateway.config.model import RevisionSpec

Check = Callable[[object], bool]


def _str(value: object) -> bool:
    return isinstance(value, str)


def _opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _strs(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _pairs(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in value
    )


def _command(value: object) -> bool:
    return value is None or (isinstance(value, str) and bool(value)) or (_strs(value) and bool(value))


def _port(value: object) -> bool:
    return value is None or (type(value) is int and 0 < value < 65536)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _objects(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _resources(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(part, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in part.items())
        for part in value.values()
    )


def _refs(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], dict)
        and len(pair[1]) == 1
        and all(
            kind in ("secretKeyRef", "configMapKeyRef", "fieldRef") and isinstance(ref, dict) for kind, ref in pair[1].items()
        )
        for pair in value
    )


def _opt_object(value: object) -> bool:
    return value is None or isinstance(value, dict)


# field: (its check, what it must be)
FIELDS: dict[str, tuple[Check, str]] = {
    "name": (_str, "a string"),
    "tag": (_opt_str, "null or a string"),
    "command": (_command, "null, a non-empty string or a non-empty list of strings"),
    "endpoints": (_strs, "a list of strings"),
    "readiness_path": (_opt_str, "null or a string"),
    "env": (_pairs, "a list of [name, value] string pairs"),
    "workdir": (_opt_str, "null or a string"),
    "image": (_opt_str, "null or a string"),
    "container_command": (_strs, "a list of strings"),
    "args": (_strs, "a list of strings"),
    "container_port": (_port, "null or a port number"),
    "accelerator": (_opt_str, "null or a string"),
    "accelerator_count": (_count, "an integer >= 0"),
    "node_selector": (_pairs, "a list of [name, value] string pairs"),
    "tolerations": (_objects, "a list of objects"),
    "resources": (_resources, "an object of objects of strings"),
    "container_name": (_opt_str, "null or a string"),
    "pod_spec": (_opt_object, "null or an object"),
    "model_path": (_opt_str, "null or a string"),
    "storage_uri": (_opt_str, "null or a string"),
    "storage_secret": (_opt_str, "null or a string"),
    "storage_path": (_opt_str, "null or a string"),
    "model_format": (_opt_str, "null or a string"),
    "model_runtime": (_opt_str, "null or a string"),
    "env_refs": (_refs, "a list of [name, {secretKeyRef|configMapKeyRef|fieldRef: {...}}] pairs"),
    "service_account": (_opt_str, "null or a string"),
}
_PAIRS = ("env", "node_selector", "env_refs")  # tuples of (name, value) pairs


def spec_json(spec: RevisionSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


def spec_of(value: object, where: str) -> RevisionSpec:
    """The RevisionSpec `value` (spec_json's output, parsed) holds; ValueError naming `where`.field otherwise."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")
    known = {f.name for f in fields(RevisionSpec)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{where} has fields this gateway does not know: {', '.join(map(str, unknown))}")
    given: dict[str, Any] = {}
    for key, item in value.items():
        check = FIELDS.get(key)
        if check is None:  # a RevisionSpec field with no check here: refused rather than passed on unchecked
            raise ValueError(f"{where}.{key} cannot be read back by this gateway")
        if not check[0](item):
            raise ValueError(f"{where}.{key} must be {check[1]}, got {_short(item)}")
        if key in _PAIRS:
            item = tuple(tuple(pair) for pair in item)
        elif isinstance(item, list):
            item = tuple(item)
        given[key] = item
    if "name" not in given:
        raise ValueError(f"{where}.name must be a string")
    return RevisionSpec(**given)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
