"""Paths (files or folders) to raw YAML documents; malformed YAML becomes a problem with line and column."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RawDocument:
    file: str  # as the user named it (folder path joined with the file name)
    directory: str  # absolute directory of the file
    index: int  # 1-based position in the file's stream of documents
    body: object


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # no PyYAML stubs installed
    """SafeLoader that refuses duplicate keys in a mapping instead of keeping the last one."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def expand_paths(paths: Sequence[str], problems: list[str]) -> list[str]:
    """Files as given; folders become their *.yaml/*.yml files, sorted, not recursive."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                name
                for name in os.listdir(path)
                if name.endswith(YAML_SUFFIXES) and os.path.isfile(os.path.join(path, name))
            )
            if not found:
                problems.append(f"{path}: folder has no *.yaml or *.yml files")
            files.extend(os.path.join(path, name) for name in found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files


def _yaml_problem(file: str, index: int, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{file}: document {index}"
    if mark is not None:
        where += f": line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{context}: {problem}" if context else problem
    return f"{where}: invalid YAML: {detail}"


def read_file(file: str, problems: list[str]) -> list[RawDocument]:
    """Every document of one file; documents before a syntax error are kept, the rest are lost."""
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        problems.append(f"{file}: cannot read: {exc.strerror or exc}")
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{file}: not UTF-8 text (byte {exc.start})")
        return []
    directory = os.path.dirname(os.path.abspath(file))
    documents: list[RawDocument] = []
    stream = yaml.load_all(text, Loader=_Loader)
    index = 0
    while True:
        try:
            body = next(stream)
        except StopIteration:
            break
        except yaml.YAMLError as exc:
            problems.append(_yaml_problem(file, index + 1, exc))
            break
        index += 1
        documents.append(RawDocument(file, directory, index, body))
    return documents
