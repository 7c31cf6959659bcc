"""Fixtures: moto S3 servers (one checking credentials) and a GCS emulator for the session, a file server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.servers import FileServer, GcsServer, S3Server, serve_files, start_gcs, start_s3


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(10)


@pytest.fixture(scope="session")
def s3_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that checks credentials (see S3Server on its prefixes)."""
    server = start_s3(tmp_path_factory.mktemp("moto-auth"), auth=True)
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(10)


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsServer]:
    server = start_gcs()
    try:
        yield server
    finally:
        server.server.stop()


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from serve_files()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "models"
