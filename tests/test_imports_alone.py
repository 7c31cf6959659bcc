"""Every gateway module imports on its own, first thing in a fresh interpreter (an import cycle inside a package
shows only when its modules are imported in some orders: gateway.rollouts.record first failed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One interpreter that has imported nothing of the gateway forks a child per module: each child imports its module
# first, as a fresh interpreter would, without paying an interpreter start 150 times.
FORKER = """
import os, sys, traceback
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED:" + ",".join(failed))
"""


def modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the command line when imported
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_gateway_module_imports_alone() -> None:
    names = modules()
    assert "gateway.rollouts.record" in names and len(names) > 100
    result = subprocess.run(
        [sys.executable, "-c", FORKER, *names], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "FAILED:", result.stderr[-3000:]
