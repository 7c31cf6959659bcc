"""The house rules of the package, checked: module size, no import cycles, layers that stay apart."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"
MAX_LINES = 400
# Packages that never import each other: the data plane, the autoscaler and the replica drivers meet
# only in the composition root.
APART = ("router", "autoscale", "backends")


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every gateway module `path` imports, relative imports resolved and TYPE_CHECKING imports
    included (they are couplings too); `from gateway.router import x` counts as gateway.router.x."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("gateway"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("gateway"))
    return found


def test_imports_are_resolved() -> None:
    """The guard sees relative imports and `from package import module`, not only absolute module imports."""
    found = imports(PACKAGE / "modelserver" / "app.py")
    assert any(name.startswith("gateway.modelserver.") for name in found), found


def test_no_module_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                found.append(path[path.index(dep) :] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])
    return found


def test_no_import_cycles_inside_a_package() -> None:
    mods = modules()
    packages = sorted({name.rsplit(".", 1)[0] for name in mods if name.count(".") >= 2})  # every package, new ones too
    assert {"gateway.router", "gateway.rollouts", "gateway.shared", "gateway.workers"} <= set(packages)
    for package in packages:
        graph = {
            name: {dep for dep in imports(path) if dep.rsplit(".", 1)[0] == package and dep in mods}
            for name, path in mods.items()
            if name.rsplit(".", 1)[0] == package
        }
        assert cycles(graph) == [], package


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_router_autoscale_and_backends_stay_apart() -> None:
    for name, path in modules().items():
        parts = name.split(".")
        if len(parts) < 3 or parts[1] not in APART:
            continue
        others = {f"gateway.{other}" for other in APART if other != parts[1]}
        crossing = {dep for dep in imports(path) if any(dep == o or dep.startswith(o + ".") for o in others)}
        assert crossing == set(), name
