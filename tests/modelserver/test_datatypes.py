from __future__ import annotations

import numpy as np
import pytest

from gateway.modelserver.datatypes import (
    ONNX_TO_V2,
    V2_DATATYPES,
    element_size,
    numpy_from_v2,
    v2_from_numpy,
    v2_from_onnx,
)
from gateway.modelserver.model import TensorSpec

from .utils import DATATYPES


def test_every_v2_datatype_has_an_onnx_type() -> None:
    assert sorted(ONNX_TO_V2.values()) == sorted(DATATYPES) == sorted(V2_DATATYPES)


@pytest.mark.parametrize(
    ("onnx_type", "v2"),
    [("tensor(float)", "FP32"), ("tensor(double)", "FP64"), ("tensor(float16)", "FP16"),
     ("tensor(int64)", "INT64"), ("tensor(uint8)", "UINT8"), ("tensor(bool)", "BOOL"),
     ("tensor(string)", "BYTES"), ("tensor(bfloat16)", None), ("seq(tensor(float))", None)],
)  # fmt: skip
def test_onnx_to_v2(onnx_type: str, v2: str | None) -> None:
    assert v2_from_onnx(onnx_type) == v2


@pytest.mark.parametrize("datatype", [t for t in DATATYPES if t != "BYTES"])
def test_numpy_round_trip(datatype: str) -> None:
    dtype = numpy_from_v2(datatype)
    assert v2_from_numpy(dtype) == datatype
    assert element_size(datatype) == dtype.itemsize
    assert dtype.byteorder in ("<", "|", "=")


def test_strings_are_bytes() -> None:
    assert numpy_from_v2("BYTES") == np.dtype(object)
    assert element_size("BYTES") is None
    for dtype in (np.dtype(object), np.dtype("U3"), np.dtype("S3")):
        assert v2_from_numpy(dtype) == "BYTES"
    with pytest.raises(ValueError, match="no V2 datatype"):
        v2_from_numpy(np.dtype(np.complex64))


@pytest.mark.parametrize(
    ("shape", "accepted"),
    [
        ([2, 4], True),
        ([0, 4], True),
        ([1, 4], True),
        ([2, 3], False),
        ([8], False),
        ([1, 4, 1], False),
    ],
)
def test_spec_accepts_dynamic_dimensions(shape: list[int], accepted: bool) -> None:
    assert TensorSpec("input", "FP32", (-1, 4)).accepts(shape) is accepted
