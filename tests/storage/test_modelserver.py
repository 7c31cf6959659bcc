"""`gateway modelserver --model URI` as a real process: downloads, then serves; a failure is one line naming the URI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.modelserver.utils import SEED_ROWS, wait_ready
from tests.storage.servers import IRIS, ROOT, FileServer, tar_bytes

pytestmark = pytest.mark.e2e


def modelserver(*args: str, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "gateway", "modelserver", *args, "--cache-dir", str(cache)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_tarball_over_http_is_downloaded_then_served(files: FileServer, tmp_path: Path) -> None:
    files.files["/iris.tar.gz"] = tar_bytes({"iris/model.onnx": IRIS.read_bytes()})
    port = free_port()
    proc = modelserver("--model", f"{files.url}/iris.tar.gz", "--name", "iris", "--port", str(port), cache=tmp_path / "cache")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, within=30)
        r = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": SEED_ROWS})
        assert r.json() == {"predictions": [1, 1]}
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/missing.onnx", None, "HTTP 404 Not Found"),
        ("/bad/model.onnx", b"not protobuf", "cannot load model file"),
        ("/empty.tar.gz", tar_bytes({"README": b"no model here"}), "holds no model file"),
    ],
)
def test_a_failure_is_one_line_naming_the_uri(
    files: FileServer, tmp_path: Path, path: str, body: bytes | None, needle: str
) -> None:
    if body is not None:
        files.files[path] = body
    uri = f"{files.url}{path}"
    proc = modelserver("--model", uri, "--name", "m", "--port", str(free_port()), cache=tmp_path / "cache")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"gateway modelserver: error: {uri}: ") and needle in last, stderr
    assert "Traceback" not in stderr
