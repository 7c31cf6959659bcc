"""Datatype names: ONNX tensor types, KServe V2 datatypes and NumPy dtypes."""

from __future__ import annotations

import numpy as np

ONNX_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
V2_TO_ONNX: dict[str, str] = {v2: onnx for onnx, v2 in ONNX_TO_V2.items()}

# Little-endian on the wire (binary tensor extension), whatever the host is.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}
V2_DATATYPES = frozenset(V2_TO_NUMPY)


def v2_from_onnx(onnx_type: str) -> str | None:
    """The V2 datatype for an ONNX type string such as ``tensor(float)``, or None if V2 has none."""
    return ONNX_TO_V2.get(onnx_type)


def numpy_from_v2(datatype: str) -> np.dtype:
    """The NumPy dtype that holds a V2 datatype (``object`` for BYTES)."""
    return V2_TO_NUMPY[datatype]


def v2_from_numpy(dtype: np.dtype) -> str:
    """The V2 datatype of a NumPy array's dtype; strings and bytes map to BYTES."""
    if dtype.kind in "OUS":
        return "BYTES"
    if dtype.kind == "b":
        return "BOOL"
    for name, candidate in V2_TO_NUMPY.items():
        if candidate.kind == dtype.kind and candidate.itemsize == dtype.itemsize:
            return name
    raise ValueError(f"no V2 datatype for NumPy dtype {dtype}")


def element_size(datatype: str) -> int | None:
    """Bytes per element in the binary encoding, None for BYTES (variable length)."""
    if datatype == "BYTES":
        return None
    return V2_TO_NUMPY[datatype].itemsize
