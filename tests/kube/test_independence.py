"""The test bed stands in for a cluster: it never imports the gateway it is used to test."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent


def gateway_imports(source: str) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [name for name in names if name.split(".")[0] == "gateway"]


def test_the_check_sees_both_forms_of_import() -> None:
    assert gateway_imports("import gateway.cli\nfrom gateway import app\nimport kmock\n") == ["gateway.cli", "gateway"]


def test_the_test_bed_never_imports_the_gateway() -> None:
    assert {p.name: found for p in sorted(HERE.glob("*.py")) if (found := gateway_imports(p.read_text()))} == {}
