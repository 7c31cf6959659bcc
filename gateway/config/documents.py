"""Paths (files or folders) to raw YAML documents; malformed YAML becomes a problem with line and column."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

YAML_SUFFIXES = (".yaml", ".yml")
# A document may not expand (through aliases) to more nodes than this, nor to more than
# EXPANSION_PER_BYTE nodes per byte of its text: a "billion laughs" is refused before it is built.
MAX_NODES = 100_000
EXPANSION_PER_BYTE = 10


@dataclass(frozen=True)
class RawDocument:
    file: str  # as the user named it (folder path joined with the file name)
    directory: str  # absolute directory of the file
    index: int  # 1-based position in the file's stream of documents
    body: object


class _NoDuplicates:
    """A constructor that refuses duplicate keys in a mapping instead of keeping the last one."""

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
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc,no-any-return]


# libyaml's parser when PyYAML was built with it (about 10x faster), else the pure-Python one;
# both report problems with the same marks (line, column).
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_NoDuplicates, _Base):  # type: ignore[misc,valid-type]  # _Base is picked at import time
    pass


class _PyLoader(_NoDuplicates, yaml.SafeLoader):
    """Re-reads a file libyaml found broken: PyYAML's own wording of the problem, at the same place."""


class TooLarge(yaml.YAMLError):
    def __init__(self, message: str, mark: yaml.Mark | None, label: str = "") -> None:
        super().__init__(message)
        self.problem = message
        self.problem_mark = mark
        self.label = label


def _label(node: Node) -> str:
    """`` (Kind/name)`` read from the node tree, for a document refused before it is built."""
    if not isinstance(node, MappingNode):
        return ""
    found: dict[str, str] = {}
    for key, value in node.value:
        if isinstance(key, ScalarNode) and isinstance(value, ScalarNode) and key.value == "kind":
            found["kind"] = value.value
        elif isinstance(key, ScalarNode) and isinstance(value, MappingNode) and key.value == "metadata":
            for k, v in value.value:
                if isinstance(k, ScalarNode) and isinstance(v, ScalarNode) and k.value == "name":
                    found["name"] = v.value
    if "kind" not in found:
        return ""
    return f" ({found['kind']}/{found['name']})" if "name" in found else f" ({found['kind']})"


def _expanded_size(root: Node) -> int:
    """Nodes the document has once every alias is replaced by what it names (memoised, no recursion)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if ident in sizes:
            continue
        if isinstance(node, ScalarNode):
            sizes[ident] = 1
            continue
        children: list[Node] = []
        if isinstance(node, MappingNode):
            for key, value in node.value:
                children += (key, value)
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        if children_done:
            on_path.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if ident in on_path:
            raise TooLarge("recursive aliases (a node that contains itself) are not supported", node.start_mark, _label(root))
        on_path.add(ident)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def expand_paths(paths: Sequence[str], problems: list[str]) -> list[str]:
    """Files as given; folders become their *.yaml/*.yml files, sorted, not recursive."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                name for name in os.listdir(path) if name.endswith(YAML_SUFFIXES) and os.path.isfile(os.path.join(path, name))
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
    where = f"{file}: document {index}{exc.label if isinstance(exc, TooLarge) else ''}"
    if mark is not None:
        where += f": line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{context}: {problem}" if context else problem
    if isinstance(exc, TooLarge):
        return f"{where}: refused: {detail}"
    return f"{where}: invalid YAML: {detail}"


def read_documents(file: str, problems: list[str]) -> Iterator[RawDocument]:
    """The documents of one file as they are parsed, so a caller can translate and drop each in turn."""
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        problems.append(f"{file}: cannot read: {exc.strerror or exc}")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{file}: not UTF-8 text (byte {exc.start})")
        return
    directory = os.path.dirname(os.path.abspath(file))
    count = 0
    try:
        for doc in _documents(_Loader, text, file, directory):
            count += 1
            yield doc
        return
    except yaml.YAMLError as exc:
        error = exc
    if not isinstance(error, TooLarge) and _Base is not yaml.SafeLoader:
        # Re-read with PyYAML's own parser, for its wording of the problem (same line and column).
        seen = 0
        try:
            for doc in _documents(_PyLoader, text, file, directory):
                seen += 1
                if seen > count:
                    count += 1
                    yield doc
            return
        except yaml.YAMLError as exc:
            error = exc
    problems.append(_yaml_problem(file, count + 1, error))


def _documents(cls: type, text: str, file: str, directory: str) -> Iterator[RawDocument]:
    """Raises yaml.YAMLError at the first document that cannot be read."""
    loader = cls(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            body = None if node is None else _construct(loader, node, text)
            index += 1
            yield RawDocument(file, directory, index, body)
    finally:
        loader.dispose()


def _construct(loader: Any, node: Node, text: str) -> object:
    if text.find("*", node.start_mark.index, node.end_mark.index) < 0:
        return loader.construct_document(node)  # no alias: the tree is as large as its text
    size = _expanded_size(node)
    span = max(1, node.end_mark.index - node.start_mark.index)
    limit = min(MAX_NODES, EXPANSION_PER_BYTE * span)
    if size > limit:
        raise TooLarge(
            f"aliases expand this document to {size} nodes, more than {limit} "
            f"(at most {MAX_NODES}, and {EXPANSION_PER_BYTE} per byte of its {span} bytes of text)",
            node.start_mark,
            _label(node),
        )
    return loader.construct_document(node)
