"""scikit-learn and XGBoost InferenceServices served end to end on the local backend (issue 12 item 4):
models the test trains, replicas of `gateway modelserver`, the KServe quick start's requests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.config import load
from tests.conftest import free_port, needs, serve_argv, wait_until, wait_until_blocking
from tests.tabular_models import SEED_INPUT, SEED_ROWS, write_sklearn_iris, write_xgboost_iris

pytestmark = [pytest.mark.e2e, needs("sklearn", "xgboost")]

ROOT = Path(__file__).resolve().parents[2]
V2_INPUT = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": SEED_ROWS}]}
Start = Callable[[Path], Awaitable[str]]


def isvc(name: str, predictor: str) -> str:
    """The quick start's InferenceService (in namespace kserve-test), with `predictor` under spec.predictor."""
    body = "".join(f"    {line}\n" for line in predictor.strip("\n").splitlines())
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f'metadata:\n  name: "{name}"\n  namespace: kserve-test\nspec:\n  predictor:\n{body}'
    )


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[Gateway] = []

    async def start(config: Path) -> str:
        gw = Gateway(load([str(config)]), [str(config)], state_dir=tmp_path / "state")
        await gw.start(listen="127.0.0.1:0")
        started.append(gw)
        return f"http://127.0.0.1:{gw.proxy.sockets[0][1]}"

    yield start
    for gw in started:
        await gw.stop(drain_timeout=2)


async def test_sklearn_and_xgboost_answer_the_quick_start_with_modelformat_and_the_older_keys(
    serve: Start, tmp_path: Path
) -> None:
    write_sklearn_iris(tmp_path / "models" / "sklearn" / "model.joblib")
    write_xgboost_iris(tmp_path / "models" / "xgboost" / "model.bst")
    services = {
        "sklearn-iris": "model:\n  modelFormat:\n    name: sklearn\n  storageUri: models/sklearn",
        "sklearn-iris-old": 'sklearn:\n  storageUri: "file://models/sklearn/model.joblib"',
        "xgboost-iris": "model:\n  modelFormat: {name: xgboost}\n  storageUri: models/xgboost",
        "xgboost-iris-old": "xgboost:\n  storageUri: models/xgboost/model.bst",
    }
    config = tmp_path / "isvc.yaml"
    config.write_text("---\n".join(isvc(name, predictor) for name, predictor in services.items()))
    base = await serve(config)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for name in services:
            host = {"Host": f"{name}.kserve-test.example.com"}
            v1 = await client.post(f"/v1/models/{name}:predict", json=SEED_INPUT, headers=host)
            assert v1.status_code == 200, (name, v1.text)
            assert v1.json() == {"predictions": [1, 1]}, name  # xgboost's 1.0 equals 1
            v2 = await client.post(f"/v2/models/{name}/infer", json=V2_INPUT, headers=host)
            assert v2.status_code == 200, (name, v2.text)
            [output] = v2.json()["outputs"]
            datatype = "INT64" if name.startswith("sklearn") else "FP32"
            assert output == {"name": "output-0", "datatype": datatype, "shape": [2], "data": [1, 1]}, name
            metadata = (await client.get(f"/v2/models/{name}", headers=host)).json()
            assert metadata["platform"] == name.split("-")[0], name


async def test_a_model_that_does_not_load_is_a_fast_503_naming_the_file(serve: Start, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pkl").write_bytes(b"not a pickle at all")
    config = tmp_path / "isvc.yaml"
    config.write_text(isvc("sklearn-iris", "sklearn:\n  storageUri: broken"))
    base = await serve(config)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Host": "sklearn-iris.kserve-test.example.com"}) as client:

        async def failed_fast() -> httpx.Response | None:
            r = await client.post("/v1/models/sklearn-iris:predict", json=SEED_INPUT)
            return r if r.status_code == 503 else None

        await wait_until(failed_fast, "the failed replica to be reported", within=30)
        started = time.monotonic()
        r = await client.post("/v1/models/sklearn-iris:predict", json=SEED_INPUT)
        assert time.monotonic() - started < 2
    assert r.status_code == 503 and r.headers["retry-after"]
    error = r.json()["error"]
    assert f"cannot load model file {broken / 'model.pkl'}: not a readable pickle or joblib file" in error, error


def test_gateway_serve_runs_the_sklearn_quick_start(tmp_path: Path) -> None:
    """The command line, as a user runs it: `gateway serve -f isvc.yaml`, then curl with iris-input.json."""
    write_sklearn_iris(tmp_path / "model" / "model.joblib")
    config = tmp_path / "isvc.yaml"
    config.write_text(
        isvc("sklearn-iris", f"model:\n  modelFormat:\n    name: sklearn\n  storageUri: file://{tmp_path / 'model'}")
    )
    port = free_port()
    argv = serve_argv(config, listen=f"127.0.0.1:{port}", state_dir=tmp_path / "state")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer: dict[str, object] = {}

        def answered() -> bool:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/models/sklearn-iris:predict",
                    json=SEED_INPUT,
                    headers={"Host": "sklearn-iris.kserve-test.example.com"},
                    timeout=30,
                )
            except httpx.TransportError:
                return process.poll() is not None  # refused while starting; a gateway that died fails below
            answer.update(status=r.status_code, body=r.json())
            return True

        wait_until_blocking(answered, "the gateway to answer", within=60)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert answer == {"status": 200, "body": {"predictions": [1, 1]}}
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
