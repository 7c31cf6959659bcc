"""Readiness follows the model load; health answers while inference runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.modelserver.errors import ModelLoadError
from gateway.modelserver.loader import ModelSlot
from gateway.modelserver.server import create_app
from tests.conftest import wait_until_blocking

from .utils import SEED_ROWS, serve, wait_ready, write_sequence_output_model

PREDICT = {"instances": SEED_ROWS}


def test_not_ready_until_the_model_has_loaded(iris_path: str) -> None:
    release = threading.Event()
    app = create_app(iris_path, "iris", before_load=lambda: release.wait(10))
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        assert client.get("/v2/models/iris/ready").status_code == 503
        assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": False}
        assert client.get("/v1/models/iris").status_code == 503
        assert client.get("/v1/models").json() == {"models": ["iris"]}
        predict = client.post("/v1/models/iris:predict", json=PREDICT)
        assert predict.status_code == 503
        assert predict.json() == {"error": "model 'iris' is not ready (still loading)"}
        assert client.get("/v2/models/iris").status_code == 503
        assert client.get("/v2/models/nope/ready").status_code == 404

        release.set()
        wait_ready(url)
        assert client.get("/v2/models/iris/ready").status_code == 200
        assert client.post("/v1/models/iris:predict", json=PREDICT).json() == {"predictions": [1, 1]}


def test_health_answers_during_a_slow_inference(iris_path: str) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(10)

    app = create_app(iris_path, "iris", before_infer=slow)
    with (
        serve(app) as url,
        ThreadPoolExecutor(1) as pool,
        httpx.Client(base_url=url, timeout=2) as client,
    ):
        wait_ready(url)
        pending = pool.submit(httpx.post, f"{url}/v1/models/iris:predict", json=PREDICT, timeout=10)
        assert entered.wait(5)
        for path in (
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/iris/ready",
            "/v1/models/iris",
        ):
            assert client.get(path).status_code == 200
        assert not pending.done()
        release.set()
        assert pending.result(10).json() == {"predictions": [1, 1]}


def test_failed_load_keeps_the_server_live_but_not_ready(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    app = create_app(str(bad), "bad")
    with serve(app) as url, httpx.Client(base_url=url) as client:
        wait_until_blocking(lambda: app.state.slot.done, "the load to fail")
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        error = client.post("/v2/models/bad/infer", json={"inputs": []}).json()["error"]
        assert error.startswith(f"model 'bad' is not ready: cannot load model file {bad}: ")
        assert "INVALID_PROTOBUF" in error


def test_load_in_foreground_raises_for_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cannot read model file .*missing\.onnx: No such file"):
        create_app(str(tmp_path / "missing.onnx"), "m", load_in_background=False)


def test_load_in_foreground_is_ready_at_once(iris_path: str) -> None:
    app = create_app(iris_path, "iris", load_in_background=False)
    assert app.state.slot.model is not None
    assert app.state.service.ready


def test_slot_loads_once_and_reports_to_late_callbacks(iris_path: str) -> None:
    loads = []
    slot = ModelSlot(iris_path, before_load=lambda: loads.append(1))
    slot.start()
    slot.start()
    model = slot.load()
    assert slot.wait(5) and slot.done and slot.error is None
    assert loads == [1]
    seen: list[ModelSlot] = []
    slot.add_done_callback(seen.append)
    assert seen == [slot]
    assert [spec.name for spec in model.outputs] == ["label", "probabilities"]


def test_failing_hook_is_a_load_error(iris_path: str) -> None:
    def boom() -> None:
        raise RuntimeError("disk on fire")

    slot = ModelSlot(iris_path, before_load=boom)
    with pytest.raises(ModelLoadError, match="disk on fire"):
        slot.load()


def test_outputs_v2_cannot_carry_are_left_out(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="building test models needs the onnx package")
    model = ModelSlot(str(write_sequence_output_model(tmp_path / "seq.onnx"))).load()
    assert [spec.name for spec in model.outputs] == ["y"]
    assert [spec.metadata() for spec in model.inputs] == [{"name": "x", "datatype": "FP32", "shape": [3]}]
