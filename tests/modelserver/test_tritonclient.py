"""Triton's own HTTP client against the server: what KServe V2 users will actually run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from .utils import SEED_ROWS

SEED = np.array(SEED_ROWS, dtype=np.float32)


@pytest.fixture
def client(iris_url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(iris_url.removeprefix("http://"))
    yield client
    client.close()


def seed_input(binary_data: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input", list(SEED.shape), "FP32")
    tensor.set_data_from_numpy(SEED, binary_data=binary_data)
    return tensor


def test_health_and_readiness(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("nope")


def test_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata("iris")
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 3]),
    ]


def test_infer_json(client: httpclient.InferenceServerClient) -> None:
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer("iris", [seed_input(binary_data=False)], outputs=outputs, request_id="r1")
    assert result.get_response()["id"] == "r1"
    assert result.get_output("label")["data"] == [1, 1]
    label = result.as_numpy("label")
    assert label.dtype == np.int64
    assert label.tolist() == [1, 1]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_infer_binary_by_default(client: httpclient.InferenceServerClient) -> None:
    result = client.infer("iris", [seed_input(binary_data=True)])
    assert result.get_output("label")["parameters"] == {"binary_data_size": 16}
    assert result.as_numpy("label").tolist() == [1, 1]
    assert result.as_numpy("probabilities").argmax(axis=1).tolist() == [1, 1]


def test_infer_binary_outputs_from_json_input(client: httpclient.InferenceServerClient) -> None:
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=True)]
    result = client.infer("iris", [seed_input(binary_data=False)], model_version="1", outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    assert result.as_numpy("probabilities").shape == (2, 3)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_infer_compressed(client: httpclient.InferenceServerClient, algorithm: str) -> None:
    rows = np.tile(SEED, (200, 1))
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = client.infer(
        "iris",
        [tensor],
        outputs=[httpclient.InferRequestedOutput("label", binary_data=False)],
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    assert result.as_numpy("label").tolist() == [1, 1] * 200


def test_errors_reach_the_client(client: httpclient.InferenceServerClient) -> None:
    tensor = httpclient.InferInput("input", [2, 2], "FP32")
    tensor.set_data_from_numpy(SEED[:, :2].copy(), binary_data=False)
    with pytest.raises(InferenceServerException) as bad_shape:
        client.infer("iris", [tensor])
    assert bad_shape.value.status() == "400"
    assert "shape [2, 2] does not fit the model's [-1, 4]" in bad_shape.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [seed_input(binary_data=True)])
    assert unknown.value.status() == "404"
