"""The binary tensor data extension, spoken by hand (tritonclient is tested separately)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from typing import Any

import httpx
import numpy as np
import pytest

from .utils import SEED_ROWS

SEED = np.array(SEED_ROWS, dtype="<f4")


def binary_request(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(len(head))}


def split_response(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers["Inference-Header-Content-Length"])
    return json.loads(response.content[:length]), response.content[length:]


def seed_binary_input() -> dict[str, Any]:
    return {
        "name": "input",
        "shape": [2, 4],
        "datatype": "FP32",
        "parameters": {"binary_data_size": SEED.nbytes},
    }


def test_binary_input_and_mixed_outputs(iris_url: str) -> None:
    header = {
        "inputs": [seed_binary_input()],
        "outputs": [
            {"name": "label", "parameters": {"binary_data": False}},
            {"name": "probabilities", "parameters": {"binary_data": True}},
        ],
    }
    content, headers = binary_request(header, SEED.tobytes())
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    body, tail = split_response(response)
    label, probabilities = body["outputs"]
    assert label["data"] == [1, 1]
    assert probabilities["parameters"] == {"binary_data_size": 24}
    assert "data" not in probabilities
    values = np.frombuffer(tail, dtype="<f4").reshape(probabilities["shape"])
    assert values.shape == (2, 3)
    assert values.argmax(axis=1).tolist() == [1, 1]


def test_binary_data_output_applies_to_every_output(iris_url: str) -> None:
    entry = {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": SEED.ravel().tolist()}
    header = {"inputs": [entry], "parameters": {"binary_data_output": True}}
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", json=header)
    body, tail = split_response(response)
    sizes = [output["parameters"]["binary_data_size"] for output in body["outputs"]]
    assert sizes == [16, 24]
    assert np.frombuffer(tail[:16], dtype="<i8").tolist() == [1, 1]


def pack_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def identity_chunks() -> dict[str, bytes]:
    arrays = {
        "BOOL": np.array([[True, False]]),
        "UINT8": np.array([[0, 255]], dtype="<u1"),
        "UINT16": np.array([[1, 65535]], dtype="<u2"),
        "UINT32": np.array([[2, 2**32 - 1]], dtype="<u4"),
        "UINT64": np.array([[3, 2**64 - 1]], dtype="<u8"),
        "INT8": np.array([[-128, 127]], dtype="<i1"),
        "INT16": np.array([[-(2**15), 7]], dtype="<i2"),
        "INT32": np.array([[-(2**31), 8]], dtype="<i4"),
        "INT64": np.array([[-(2**63), 9]], dtype="<i8"),
        "FP16": np.array([[0.5, np.inf]], dtype="<f2"),
        "FP32": np.array([[np.nan, -0.25]], dtype="<f4"),
        "FP64": np.array([[1e-300, -np.inf]], dtype="<f8"),
    }
    chunks = {t: a.tobytes() for t, a in arrays.items()}
    chunks["BYTES"] = pack_bytes(["héllo".encode(), b""])
    return chunks


def identity_request(chunks: dict[str, bytes], **extra: Any) -> tuple[bytes, dict[str, str]]:
    inputs = [
        {
            "name": f"in_{t}",
            "shape": [1, 2],
            "datatype": t,
            "parameters": {"binary_data_size": len(c)},
        }
        for t, c in chunks.items()
    ]
    return binary_request({"inputs": inputs, **extra}, *chunks.values())


def test_every_datatype_round_trips_as_binary(identity_url: str) -> None:
    chunks = identity_chunks()
    content, headers = identity_request(chunks, parameters={"binary_data_output": True})
    response = httpx.post(f"{identity_url}/v2/models/identity/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    body, tail = split_response(response)
    offset = 0
    for output in body["outputs"]:
        datatype = output["datatype"]
        size = output["parameters"]["binary_data_size"]
        assert output["name"] == f"out_{datatype}"
        assert output["shape"] == [1, 2]
        assert tail[offset : offset + size] == chunks[datatype], datatype
        offset += size
    assert offset == len(tail)


def test_nan_cannot_go_out_as_json(identity_url: str) -> None:
    content, headers = identity_request(identity_chunks(), outputs=[{"name": "out_FP32"}])
    response = httpx.post(f"{identity_url}/v2/models/identity/infer", content=content, headers=headers)
    assert response.status_code == 500
    assert "NaN or Infinity" in response.json()["error"]


@pytest.mark.parametrize(
    ("header_length", "tail", "size", "needle"),
    [
        (None, b"", 32, "runs past the end of the body"),
        (None, SEED.tobytes()[:28], 28, "binary_data_size is 28 bytes; the shape needs 8 x 4 = 32"),
        (None, SEED.tobytes() + b"\0", 32, "1 bytes of binary data no input claims"),
        ("ten", SEED.tobytes(), 32, "Inference-Header-Content-Length is 'ten'"),
        ("100000", SEED.tobytes(), 32, "Inference-Header-Content-Length is '100000'"),
        (None, SEED.tobytes(), -1, "binary_data_size must be a non-negative integer"),
    ],
)
def test_bad_binary_requests(iris_url: str, header_length: str | None, tail: bytes, size: int, needle: str) -> None:
    entry = seed_binary_input()
    entry["parameters"]["binary_data_size"] = size
    content, headers = binary_request({"inputs": [entry]}, tail)
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", content=content, headers=headers)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_data_and_binary_size_together_is_an_error(iris_url: str) -> None:
    entry = {**seed_binary_input(), "data": SEED.ravel().tolist()}
    content, headers = binary_request({"inputs": [entry]}, SEED.tobytes())
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", content=content, headers=headers)
    assert response.status_code == 400
    assert "either 'data' or binary_data_size" in response.json()["error"]


def test_bad_binary_bytes_element(identity_url: str) -> None:
    inputs = [
        {
            "name": "in_BYTES",
            "shape": [1, 2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": 6},
        }
    ]
    content, headers = binary_request({"inputs": inputs}, struct.pack("<I", 9) + b"ab")
    response = httpx.post(f"{identity_url}/v2/models/identity/infer", content=content, headers=headers)
    assert response.status_code == 400
    assert "BYTES element runs past its binary data" in response.json()["error"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_request_and_response(iris_url: str, encoding: str) -> None:
    rows = np.tile(SEED, (100, 1))
    header = {
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    raw = json.dumps(header).encode()
    content = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    headers = {"Content-Encoding": encoding, "Accept-Encoding": encoding}
    with httpx.Client() as client:
        request = client.build_request("POST", f"{iris_url}/v2/models/iris/infer", content=content, headers=headers)
        response = client.send(request, stream=True)
        compressed = b"".join(response.iter_raw())
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    plain = gzip.decompress(compressed) if encoding == "gzip" else zlib.decompress(compressed)
    assert json.loads(plain)["outputs"][0]["data"] == [1, 1] * 100


def test_small_responses_are_not_compressed(iris_url: str) -> None:
    header = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": SEED.ravel().tolist()}]}
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", json=header, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize(
    ("encoding", "needle"),
    [("br", "unsupported Content-Encoding 'br'"), ("gzip", "not valid gzip data")],
)
def test_bad_content_encoding(iris_url: str, encoding: str, needle: str) -> None:
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", content=b"{}", headers={"Content-Encoding": encoding})
    assert response.status_code == 400
    assert needle in response.json()["error"]
