"""``python -m gateway.modelserver`` as a real process."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.modelserver.server import add_arguments
from tests.conftest import free_port

from .utils import SEED_ROWS, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.modelserver", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(*args: str) -> tuple[int, str]:
    process = spawn(*args)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


@pytest.mark.e2e
def test_serves_until_sigterm(iris_path: str) -> None:
    port = free_port()
    process = spawn("--model", iris_path, "--name", "iris", "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, within=30)
        response = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": SEED_ROWS})
        assert response.json() == {"predictions": [1, 1]}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status tells why.
    assert process.returncode == -signal.SIGTERM
    assert "Traceback" not in stderr
    assert f"serving model 'iris' from {iris_path} on http://127.0.0.1:{port}" in stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"this is not protobuf", "cannot load model file"),
    ],
)
def test_bad_model_file_is_one_line_and_exit_1(tmp_path: Path, content: bytes | None, needle: str) -> None:
    model = tmp_path / "model.onnx"
    if content is not None:
        model.write_bytes(content)
    code, stderr = run_to_end("--model", str(model), "--name", "m", "--port", str(free_port()))
    assert code == 1
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("gateway modelserver: error: ")
    assert needle in last and str(model) in last


@pytest.mark.e2e
def test_a_folder_without_a_model_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("no model here")
    code, stderr = run_to_end("--model", str(tmp_path), "--name", "m")
    assert code == 1
    assert stderr.strip() == (
        f"gateway modelserver: error: folder {tmp_path} holds no model file (one of .onnx, .joblib, .pkl, .pickle, .bst, .json, .ubj)"
    )


def test_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "m.onnx", "--name", "m"])
    assert (args.model, args.name, args.host, args.port, args.log_level) == (
        "m.onnx",
        "m",
        "127.0.0.1",
        9123,
        "warning",
    )
    args = parser.parse_args(["--model", "m.onnx", "--name", "m", "--port", "80", "--host", "0.0.0.0"])
    assert (args.port, args.host) == (80, "0.0.0.0")


@pytest.mark.e2e
def test_serves_a_sklearn_model_folder_by_its_file(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the sklearn extra is not installed")
    from tests.tabular_models import SEED_INPUT, write_sklearn_iris

    write_sklearn_iris(tmp_path / "model.pkl")
    port = free_port()
    process = spawn("--model", str(tmp_path), "--name", "sklearn-iris", "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, within=30)
        assert httpx.post(f"{url}/v1/models/sklearn-iris:predict", json=SEED_INPUT).json() == {"predictions": [1, 1]}
    finally:
        process.kill()
        process.communicate()


@pytest.mark.e2e
def test_a_corrupt_booster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    pytest.importorskip("xgboost", reason="the xgboost extra is not installed")
    model = tmp_path / "model.bst"
    model.write_bytes(b"\x00\x01 not a booster")
    code, stderr = run_to_end("--model", str(tmp_path), "--format", "xgboost", "--name", "m", "--port", str(free_port()))
    assert code == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"gateway modelserver: error: cannot load model file {model}: ")


@pytest.mark.e2e
def test_a_format_whose_extra_is_missing_fails_at_start_saying_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}")
    hide = "import sys; sys.modules['xgboost'] = None; from gateway.modelserver.__main__ import main; sys.exit(main())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-c", hide, "--model", str(tmp_path), "--name", "m", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "gateway modelserver: error: the xgboost model format needs xgboost, which is not installed: "
        "pip install 'serving-gateway[xgboost]'"
    )


def test_format_argument() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--model", "m", "--name", "m"]).format is None
    assert parser.parse_args(["--model", "m", "--name", "m", "--format", "sklearn"]).format == "sklearn"
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--name", "m", "--format", "tensorflow"])
