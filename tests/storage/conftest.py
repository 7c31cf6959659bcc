"""Fixtures: moto S3 servers (one checking credentials) and a GCS emulator for the session, a file server and
an in-process gateway per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load
from tests.storage.servers import FileServer, GcsServer, S3Server, Start, serve_files, start_gcs, start_s3


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


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a gateway in this process on the config text given (local backend, state under tmp_path)."""
    started: list[Gateway] = []

    async def start(text: str, namespace: str | None = None) -> tuple[Gateway, str]:
        cfg = tmp_path / "isvc.yaml"
        cfg.write_text(text)
        gw = Gateway(load([str(cfg)], namespace=namespace), [str(cfg)], state_dir=tmp_path / "state")
        await gw.start(listen="127.0.0.1:0")
        started.append(gw)
        return gw, f"http://127.0.0.1:{gw.proxy.sockets[0][1]}"

    yield start
    for gw in started:
        await gw.stop(drain_timeout=2)
