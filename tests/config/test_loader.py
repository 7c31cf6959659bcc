from __future__ import annotations

import os
from pathlib import Path

from gateway.config import load
from tests.config.support import paddle, problems, write

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: team
"""


def test_malformed_yaml_names_file_document_line_and_column(tmp_path: Path) -> None:
    good = paddle("foo")
    path = write(tmp_path, "x.yaml", good + "---\nkind: PaddleService\nmetadata:\n  name: [a\n")
    found = problems([path])
    assert len(found) == 1
    assert found[0].startswith(f"{path}: document 2: line ")
    assert "invalid YAML" in found[0]
    assert "column" in found[0]


def test_malformed_yaml_exact_position(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "a: b\n c: d: e\n")
    assert problems([path]) == [
        f"{path}: document 1: line 2, column 3: invalid YAML: mapping values are not allowed here"
    ]


def test_duplicate_yaml_key_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo") + "metadata:\n  name: bar\n")
    found = problems([path])
    assert len(found) == 1
    assert found[0].startswith(f"{path}: document 1: line 8, column 1: invalid YAML:")
    assert "duplicate key 'metadata'" in found[0]


def test_empty_documents_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "---\n---\n" + paddle("foo", "default: 5\n"))
    assert problems([path]) == [
        f"{path}: document 2 (PaddleService/foo): spec.default: must be a mapping, got 5"
    ]


def test_namespace_documents_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", NAMESPACE + "---\n" + paddle("foo", namespace="team"))
    config = load([path])
    assert [(s.namespace, s.name) for s in config.services] == [("team", "foo")]


def test_namespace_with_wrong_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", NAMESPACE.replace("v1", "v2", 1))
    assert problems([path]) == [
        f"{path}: document 1 (Namespace/team): apiVersion: must be v1 for Namespace, got 'v2'"
    ]


def test_unknown_kind_lists_supported_kinds(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n")
    (found,) = problems([path])
    assert found.startswith(
        f"{path}: document 1 (Deployment/d): kind: unknown kind 'Deployment'; supported: "
    )
    for kind in ("GatewayConfig", "PaddleService", "InferenceService", "SimpleMLService", "Namespace"):
        assert kind in found


def test_missing_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "apiVersion: v1\nmetadata:\n  name: d\n")
    (found,) = problems([path])
    assert found.startswith(f"{path}: document 1: kind: required; supported: GatewayConfig")


def test_missing_api_version(tmp_path: Path) -> None:
    path = write(
        tmp_path, "x.yaml", paddle("foo").replace("apiVersion: elasticserving.paddlepaddle.org/v1\n", "")
    )
    assert problems([path]) == [
        f"{path}: document 1 (PaddleService/foo): apiVersion: required, expected elasticserving.paddlepaddle.org/v1"
    ]


def test_wrong_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo").replace("paddlepaddle.org/v1", "paddlepaddle.org/v2"))
    assert problems([path]) == [
        (
            f"{path}: document 1 (PaddleService/foo): apiVersion: must be elasticserving.paddlepaddle.org/v1 "
            "for PaddleService, got 'elasticserving.paddlepaddle.org/v2'"
        )
    ]


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "- a\n- b\n---\njust text\n")
    assert problems([path]) == [
        f"{path}: document 1: must be a mapping with apiVersion and kind, got a list",
        f"{path}: document 2: must be a mapping with apiVersion and kind, got 'just text'",
    ]


def test_all_problems_are_collected_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", paddle("foo", "canaryTrafficPercent: 150\ndefault:\n  command: x\n"))
    second = write(tmp_path, "b.yaml", paddle("bar", "default:\n  readinessPath: health\n  command: x\n"))
    assert problems([first, second]) == [
        f"{first}: document 1 (PaddleService/foo): spec.canaryTrafficPercent: must be 0..100, got 150",
        (
            f"{second}: document 1 (PaddleService/bar): spec.default.readinessPath: "
            "must be a URL path starting with /, got 'health'"
        ),
    ]


def test_folder_loads_yaml_files_sorted_and_not_recursively(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    write(folder, "b.yml", paddle("bbb"))
    write(folder, "a.yaml", paddle("aaa"))
    write(folder, "notes.txt", "not: yaml: at all")
    write(folder, "sub/c.yaml", paddle("ccc"))
    config = load([str(folder)])
    assert [s.name for s in config.services] == ["aaa", "bbb"]
    assert config.files == (os.path.join(str(folder), "a.yaml"), os.path.join(str(folder), "b.yml"))


def test_several_paths_are_combined(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    write(folder, "a.yaml", paddle("aaa"))
    single = write(tmp_path, "single.yaml", paddle("zzz", namespace="other"))
    config = load([str(folder), single])
    assert [(s.namespace, s.name) for s in config.services] == [("default", "aaa"), ("other", "zzz")]


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = str(tmp_path / "nope.yaml")
    assert problems([missing, str(empty)]) == [
        f"{missing}: no such file or folder",
        f"{empty}: folder has no *.yaml or *.yml files",
    ]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"kind: \xff\n")
    assert problems([str(path)]) == [f"{path}: not UTF-8 text (byte 6)"]


def test_source_is_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", NAMESPACE + "---\n" + paddle("foo"))
    (service,) = load([path]).services
    assert service.source is not None
    assert str(service.source) == f"{path}: document 2 (PaddleService/foo)"
