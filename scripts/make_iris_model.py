"""Train a small iris classifier and write it as ONNX to config/models/iris.onnx.

Needs the ``model`` extra (scikit-learn, skl2onnx). The graph has one FLOAT input
``input`` [None, 4] and two outputs, ``label`` INT64 [None] then ``probabilities``
FLOAT [None, 3], which is what the model server and its tests expect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "config" / "models" / "iris.onnx"
SEED_ROWS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)
SEED_LABELS = [1, 1]
OUTPUT_NAMES = ("label", "probabilities")


def build() -> onnx.ModelProto:
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=1000, random_state=0)
    classifier.fit(features.astype(np.float32), labels)
    model = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    assert isinstance(model, onnx.ModelProto)
    _rename_outputs(model, OUTPUT_NAMES)
    model.doc_string = "LogisticRegression on sklearn's iris dataset (scripts/make_iris_model.py)"
    onnx.checker.check_model(model)
    return model


def _rename_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> None:
    graph = model.graph
    if len(graph.output) != len(names):
        raise SystemExit(f"expected {len(names)} outputs, got {[o.name for o in graph.output]}")
    mapping = {out.name: new for out, new in zip(graph.output, names, strict=True) if out.name != new}
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for out in graph.output:
        out.name = mapping.get(out.name, out.name)


def verify(model_bytes: bytes) -> None:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    if [i.name for i in session.get_inputs()] != ["input"] or outputs != list(OUTPUT_NAMES):
        raise SystemExit(f"unexpected graph signature: outputs {outputs}")
    label, probabilities = session.run(None, {"input": SEED_ROWS})
    if label.dtype != np.int64 or label.tolist() != SEED_LABELS:
        raise SystemExit(f"seed rows predicted {label.tolist()} ({label.dtype}), want {SEED_LABELS}")
    if probabilities.shape != (2, 3):
        raise SystemExit(f"probabilities shape {probabilities.shape}, want (2, 3)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the model")
    args = parser.parse_args(argv)
    data = build().SerializeToString()
    verify(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
