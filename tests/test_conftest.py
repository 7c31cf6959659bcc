"""The helpers every test package shares (tests/conftest.py)."""

from __future__ import annotations

import sys

from tests.conftest import needs


def test_needs_skips_only_where_a_module_is_missing_and_names_it() -> None:
    present = needs("json", "email.parser")
    assert present.name == "skipif" and present.args == (False,)
    missing = needs("json", "no_such_module_here", "no_such_package_here.sub")
    assert missing.args == (True,)
    assert missing.kwargs["reason"] == "no_such_module_here, no_such_package_here.sub not installed (an optional extra)"


def test_needs_finds_a_module_without_importing_it() -> None:
    assert "this" not in sys.modules  # the standard library's Zen of Python prints when imported
    assert needs("this").args == (False,)
    assert "this" not in sys.modules
