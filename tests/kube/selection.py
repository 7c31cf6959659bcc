"""Label and field selectors as the API server reads them from `?labelSelector=` and `?fieldSelector=`.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist),
joined by commas; every requirement must hold. Field selectors: `path=v`, `path==v`, `path!=v` on the few
fields the API server indexes for the resources the test bed serves. A malformed selector raises
`SelectorError`, which the emulator answers with 400 Bad Request, as the real API server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase")

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
        (?P<set_key>{_KEY})\s+(?P<set_op>in|notin)\s*\((?P<values>[^()]*)\)
      | (?P<cmp_key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>{_VALUE})
      | !\s*(?P<absent>{_KEY})
      | (?P<present>{_KEY})
    )\s*(?:,|$)""",
    re.X,
)


class SelectorError(ValueError):
    """A selector the API server would reject."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.holds(labels) for r in self.requirements)


def parse_labels(text: str | None) -> LabelSelector:
    """Parse `?labelSelector=`; empty or absent selects everything."""
    if not text or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    pos = 0
    while pos < len(text):
        m = _REQUIREMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise SelectorError(f"unable to parse requirement at {text[pos:]!r} in label selector {text!r}")
        requirements.append(_requirement(m))
        pos = m.end()
    return LabelSelector(tuple(requirements))


def _requirement(m: re.Match[str]) -> Requirement:
    if m["set_key"]:
        values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
        return Requirement(m["set_key"], m["set_op"], values)
    if m["cmp_key"]:
        return Requirement(m["cmp_key"], "notin" if m["op"] == "!=" else "in", frozenset({m["value"]}))
    if m["absent"]:
        return Requirement(m["absent"], "!exists", frozenset())
    return Requirement(m["present"], "exists", frozenset())


def selector_from_match_labels(selector: Mapping[str, Any] | None) -> str:
    """A Deployment's `spec.selector` (matchLabels and matchExpressions) as the text a Scale's status carries."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (path, equal, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) is equal for path, equal, value in self.terms)


def parse_fields(text: str | None) -> FieldSelector:
    """Parse `?fieldSelector=`: only the indexed fields in FIELDS are accepted, as the API server does."""
    if not text or not text.strip():
        return FieldSelector()
    terms: list[tuple[str, bool, str]] = []
    for term in text.split(","):
        m = re.fullmatch(r"\s*([A-Za-z.]+)\s*(==|!=|=)\s*([^,]*?)\s*", term)
        if m is None:
            raise SelectorError(f"invalid field selector term {term!r} in {text!r}")
        if m[1] not in FIELDS:
            raise SelectorError(f"field label not supported: {m[1]} (the test bed indexes {', '.join(FIELDS)})")
        terms.append((m[1], m[2] != "!=", m[3]))
    return FieldSelector(tuple(terms))


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


Matcher = Callable[[Mapping[str, Any]], bool]


def matcher(labels: LabelSelector, fields: FieldSelector) -> Matcher:
    return lambda obj: labels.matches(obj) and fields.matches(obj)
