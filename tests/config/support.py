"""Helpers for config tests: write YAML into a temp folder, load it, collect problems."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, ServiceSpec, load

PADDLE_HEAD = """\
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
"""


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def problems(paths: Sequence[str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(paths)
    return info.value.problems


def paddle(name: str = "foo", spec: str = "", namespace: str | None = None, extra_meta: str = "") -> str:
    """A PaddleService document; `spec` is the YAML under spec (indented by the caller's dedent)."""
    meta = f"metadata:\n  name: {name}\n"
    if namespace is not None:
        meta += f"  namespace: {namespace}\n"
    meta += extra_meta
    body = spec if spec else "default:\n  command: [python, serve.py, '{port}']\n"
    indented = textwrap.indent(textwrap.dedent(body), "  ")
    return f"{PADDLE_HEAD}{meta}spec:\n{indented}"


def one_service(config: Config, name: str = "foo") -> ServiceSpec:
    matches = [service for service in config.services if service.name == name]
    assert len(matches) == 1, config.services
    return matches[0]
