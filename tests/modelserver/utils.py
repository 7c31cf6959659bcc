"""Real servers on unused loopback ports, and small ONNX models built for the tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from tests.conftest import wait_until_blocking

IRIS = Path(__file__).resolve().parents[2] / "config" / "models" / "iris.onnx"
SEED_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on an unused loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until_blocking(lambda: server.started, "server start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def wait_ready(url: str, within: float = 10.0) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{url}/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    wait_until_blocking(ready, f"{url} to be ready", within=within)


def write_identity_model(path: Path) -> Path:
    """A model passing every V2 datatype through: ``in_T`` to ``out_T``, shape [-1, 2]."""
    import onnx
    from onnx import helper

    element_types = {
        "BOOL": onnx.TensorProto.BOOL,
        "UINT8": onnx.TensorProto.UINT8,
        "UINT16": onnx.TensorProto.UINT16,
        "UINT32": onnx.TensorProto.UINT32,
        "UINT64": onnx.TensorProto.UINT64,
        "INT8": onnx.TensorProto.INT8,
        "INT16": onnx.TensorProto.INT16,
        "INT32": onnx.TensorProto.INT32,
        "INT64": onnx.TensorProto.INT64,
        "FP16": onnx.TensorProto.FLOAT16,
        "FP32": onnx.TensorProto.FLOAT,
        "FP64": onnx.TensorProto.DOUBLE,
        "BYTES": onnx.TensorProto.STRING,
    }
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in element_types],
        "identity",
        [helper.make_tensor_value_info(f"in_{t}", e, ["batch", 2]) for t, e in element_types.items()],
        [helper.make_tensor_value_info(f"out_{t}", e, ["batch", 2]) for t, e in element_types.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def write_sequence_output_model(path: Path) -> Path:
    """A model whose second output is a sequence, which V2 cannot carry."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("SequenceConstruct", ["x"], ["seq"]),
        ],
        "sequence",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [
            helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3]),
            helper.make_tensor_sequence_value_info("seq", onnx.TensorProto.FLOAT, [3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path
