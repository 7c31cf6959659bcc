"""Every gateway module imports on its own, first thing in a fresh interpreter (an import cycle inside a package
shows only when its modules are imported in some orders: gateway.rollouts.record first failed)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One interpreter that has imported nothing of the gateway forks a child per module: each child imports its module
# first, as a fresh interpreter would, without paying an interpreter start 150 times. Before it forks, the
# interpreter imports the libraries the gateway imports at module level (argv: those, "--", the gateway modules), so
# no child imports numpy or kubernetes again: the order that matters is the gateway's own. A library that fails to
# import (an extra not installed) is left to the children, which then fail as a fresh interpreter would. A few
# children run at once, and they read the gateway's bytecode, compiled once into a folder of the test's (the
# environment may say not to write bytecode beside the sources).
FORKER = """
import compileall, os, sys, traceback
compileall.compile_dir("gateway", quiet=1)
split = sys.argv.index("--")
for name in sys.argv[1:split]:
    try:
        __import__(name)
    except Exception:
        pass
assert not [loaded for loaded in sys.modules if loaded == "gateway" or loaded.startswith("gateway.")]
waiting = sys.argv[split + 1 :]
running, failed = {}, []
at_once = max(2, os.cpu_count() or 1)
while waiting or running:
    while waiting and len(running) < at_once:
        name = waiting.pop(0)
        pid = os.fork()
        if pid == 0:
            try:
                __import__(name)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            os._exit(0)
        running[pid] = name
    pid, status = os.wait()
    if status:
        failed.append(running[pid])
    del running[pid]
print("FAILED:" + ",".join(sorted(failed)))
"""


def modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the command line when imported
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def library_imports() -> list[str]:
    """The modules outside the gateway (third-party and standard library) that gateway modules import when they
    load (module level, also under `if`/`try`, not under `if TYPE_CHECKING:` nor inside functions)."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    for path in (ROOT / "gateway").rglob("*.py"):
        visit(ast.parse(path.read_text()).body)
    return sorted(name for name in found if name.split(".")[0] != "gateway")


def test_the_library_imports_are_found() -> None:
    """The list the forker imports first is the gateway's libraries, without the gateway itself or what only
    type checking or a function body imports."""
    found = library_imports()
    assert {"numpy", "uvicorn", "yaml", "kubernetes", "asyncio", "tarfile"} <= set(found), found
    assert not [name for name in found if name.split(".")[0] == "gateway"], found
    assert "boto3" not in found and "sklearn" not in found, found  # imported where a function needs them


@pytest.mark.e2e  # forks a child per gateway module: 3 s of imports and 150 children
def test_every_gateway_module_imports_alone(tmp_path: Path) -> None:
    names = modules()
    assert "gateway.rollouts.record" in names and len(names) > 100
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment.update(PYTHONPYCACHEPREFIX=str(tmp_path / "bytecode"), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", FORKER, *library_imports(), "--", *names],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "FAILED:", result.stderr[-3000:]
