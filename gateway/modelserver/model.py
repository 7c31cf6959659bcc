"""An ONNX Runtime session with its inputs and outputs described in V2 terms."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from .datatypes import v2_from_onnx
from .errors import BadRequest, ModelLoadError, ModelServerError
from .specs import TensorSpec

__all__ = ["OnnxModel", "TensorSpec"]


def _spec(arg: Any) -> TensorSpec | None:
    datatype = v2_from_onnx(arg.type)
    if datatype is None:
        return None
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape or ())
    return TensorSpec(arg.name, datatype, shape)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class OnnxModel:
    """A loaded model. ``run`` is thread-safe and releases the GIL while ONNX Runtime computes."""

    platform = "onnxruntime_onnx"

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        inputs = []
        for arg in session.get_inputs():
            spec = _spec(arg)
            if spec is None:
                raise ModelLoadError(f"input {arg.name!r} has type {arg.type}, which V2 cannot carry")
            inputs.append(spec)
        # Outputs V2 cannot carry (sequences, maps) are left out rather than refusing the model.
        outputs = [spec for spec in map(_spec, session.get_outputs()) if spec is not None]
        if not outputs:
            raise ModelLoadError("the model has no output of a tensor type V2 can carry")
        self.inputs: tuple[TensorSpec, ...] = tuple(inputs)
        self.outputs: tuple[TensorSpec, ...] = tuple(outputs)
        self._inputs = {spec.name: spec for spec in inputs}
        self._outputs = {spec.name: spec for spec in outputs}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OnnxModel:
        """Read and load an ONNX file; raises :class:`ModelLoadError` with a one-line reason."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {os.fspath(path)}: {exc.strerror or exc}") from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"cannot load model file {os.fspath(path)}: {_first_line(exc)}") from exc
        return cls(session)

    def input(self, name: str) -> TensorSpec | None:
        return self._inputs.get(name)

    def output(self, name: str) -> TensorSpec | None:
        return self._outputs.get(name)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
        """Compute ``outputs`` from ``feeds``; ONNX Runtime's own complaints become 400 or 500."""
        try:
            return list(self._session.run(list(outputs), dict(feeds)))
        except ort_errors.InvalidArgument as exc:
            raise BadRequest(f"ONNX Runtime rejected the input: {_clean(exc)}") from exc
        except Exception as exc:
            raise ModelServerError(f"ONNX Runtime failed: {_clean(exc)}") from exc


def _clean(exc: BaseException) -> str:
    return " ".join(str(exc).split())
