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
    assert problems([path]) == [f"{path}: document 1: line 2, column 3: invalid YAML: mapping values are not allowed here"]


def test_duplicate_yaml_key_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo") + "metadata:\n  name: bar\n")
    found = problems([path])
    assert len(found) == 1
    assert found[0].startswith(f"{path}: document 1: line 8, column 1: invalid YAML:")
    assert "duplicate key 'metadata'" in found[0]


def test_empty_documents_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "---\n---\n" + paddle("foo", "default: 5\n"))
    assert problems([path]) == [f"{path}: document 2 (PaddleService/foo): spec.default: must be a mapping, got 5"]


def test_namespace_documents_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", NAMESPACE + "---\n" + paddle("foo", namespace="team"))
    config = load([path])
    assert [(s.namespace, s.name) for s in config.services] == [("team", "foo")]


def test_namespace_with_wrong_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", NAMESPACE.replace("v1", "v2", 1))
    assert problems([path]) == [f"{path}: document 1 (Namespace/team): apiVersion: must be v1 for Namespace, got 'v2'"]


def test_unknown_kind_lists_supported_kinds(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n")
    (found,) = problems([path])
    assert found.startswith(f"{path}: document 1 (Deployment/d): kind: unknown kind 'Deployment'; supported: ")
    for kind in ("GatewayConfig", "PaddleService", "InferenceService", "SimpleMLService", "Namespace"):
        assert kind in found


def test_missing_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "apiVersion: v1\nmetadata:\n  name: d\n")
    (found,) = problems([path])
    assert found.startswith(f"{path}: document 1: kind: required; supported: GatewayConfig")


def test_missing_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo").replace("apiVersion: elasticserving.paddlepaddle.org/v1\n", ""))
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


def billion_laughs(levels: int) -> str:
    """A PaddleService whose `tolerations` expand to 10**levels entries through nested aliases."""
    lines = [
        "  l0: &l0 [{key: a, operator: Exists}, {key: b, operator: Exists}, {key: c, operator: Exists}, "
        "{key: d, operator: Exists}, {key: e, operator: Exists}, {key: f, operator: Exists}, {key: g, operator: Exists}, "
        "{key: h, operator: Exists}, {key: i, operator: Exists}, {key: j, operator: Exists}]"
    ]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return (
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: bomb}\n"
        "x-anchors:\n" + "\n".join(lines) + "\n"
        f"spec:\n  default:\n    command: ['true']\n    tolerations: *l{levels - 1}\n"
    )


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    import time

    path = write(tmp_path, "bomb.yaml", paddle("ok") + "---\n" + billion_laughs(9))
    started = time.monotonic()
    found = problems([path])
    assert time.monotonic() - started < 2
    assert len(found) == 1, found
    assert found[0].startswith(
        f"{path}: document 2 (PaddleService/bomb): line 9, column 1: refused: aliases expand this document to "
    )
    assert "more than" in found[0] and "per byte" in found[0]


def test_modest_aliases_are_fine(tmp_path: Path) -> None:
    text = paddle(
        "a",
        spec="  default:\n    command: ['true']\n    env: &env [{name: A, value: '1'}]\n  canary:\n    command: ['true']\n    env: *env\n  canaryTrafficPercent: 10\n",
    )
    config = load([write(tmp_path, "x.yaml", text)])
    assert config.services[0].canary is not None and config.services[0].canary.env == (("A", "1"),)


def test_recursive_aliases_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "kind: PaddleService\nmetadata: {name: loop}\nspec: &s {default: *s}\n")
    found = problems([path])
    assert len(found) == 1 and "refused: recursive aliases" in found[0] and "(PaddleService/loop)" in found[0], found


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    import yaml

    from gateway.config import documents

    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(documents._Loader, yaml.CSafeLoader)


def test_a_reload_keeps_the_very_spec_of_an_unchanged_service(tmp_path: Path) -> None:
    """Unchanged services come back as the objects they were (the new copy is dropped as it is made)."""
    path = write(tmp_path, "x.yaml", paddle("a") + "---\n" + paddle("b"))
    first = load([path])
    previous = {spec.ident: spec for spec in first.services}
    write(tmp_path, "x.yaml", paddle("a") + "---\n" + paddle("b", spec="default:\n  command: [python, other.py, '{port}']\n"))
    second = load([path], previous=previous)
    a1, b1 = first.services
    a2, b2 = second.services
    assert a2 is a1, "unchanged: the same object"
    assert b2 is not b1 and b2.digest != b1.digest and b2.default.command == ("python", "other.py", "{port}")
