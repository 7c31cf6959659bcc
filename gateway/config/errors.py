"""The error every bad configuration raises, and the per-document context that collects problems."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


class ConfigError(Exception):
    """Every problem found in the configuration, each naming file, document and field."""

    def __init__(self, problems: Iterable[str], warnings: Iterable[str] = ()) -> None:
        self.problems: list[str] = list(problems)
        self.warnings: list[str] = list(warnings)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass
class DocContext:
    """One YAML document being translated: knows how to name itself in messages."""

    file: str
    index: int
    directory: str  # absolute directory of `file`; relative paths in the document resolve here
    problems: list[str]
    warnings: list[str]
    kind: str | None = None
    version: str | None = None  # its apiVersion, once checked
    name: str | None = None
    error_count: int = field(default=0)
    namespace: str | None = None  # `-n NAME`: the namespace of a document that gives none, as `kubectl apply -n`

    @property
    def label(self) -> str:
        where = f"{self.file}: document {self.index}"
        if self.kind is None:
            return where
        return f"{where} ({self.kind}/{self.name})" if self.name else f"{where} ({self.kind})"

    def error(self, path: str, message: str) -> None:
        self.error_count += 1
        self.problems.append(self._format(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(self._format(path, message))

    def _format(self, path: str, message: str) -> str:
        return f"{self.label}: {path}: {message}" if path else f"{self.label}: {message}"
