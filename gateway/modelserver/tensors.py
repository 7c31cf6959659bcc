"""V2 tensors on the wire: JSON ``data`` and the binary tensor data extension, both ways."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .datatypes import V2_DATATYPES, element_size, numpy_from_v2, v2_from_numpy
from .errors import BadRequest, ModelServerError
from .responses import parse_json, render_json

if TYPE_CHECKING:
    from .specs import ServedModel, TensorSpec

_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded ``/infer`` request: input arrays by name and the outputs to send back."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...]


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split a body into its JSON header and binary tail (``Inference-Header-Content-Length``)."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length is {header_length!r}; the body has {len(body)} bytes")
    return body[:length], body[length:]


def parse_infer_request(model: ServedModel, body: bytes, header_length: str | None = None) -> InferRequest:
    """Decode and check an inference request against the model's inputs and outputs."""
    header, tail = split_body(body, header_length)
    content = parse_json(header)
    request_id = content.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    if "inputs" not in content:
        raise BadRequest("missing 'inputs'")
    entries = content["inputs"]
    if not isinstance(entries, list) or not entries:
        raise BadRequest("'inputs' must be a non-empty list")
    inputs = _read_inputs(model, entries, tail)
    for spec in model.inputs:
        if spec.name not in inputs and not spec.any_name:
            raise BadRequest(f"missing input {spec.name!r}")
    return InferRequest(request_id, inputs, _requested_outputs(model, content))


def _read_inputs(model: ServedModel, entries: list[Any], tail: bytes) -> dict[str, np.ndarray]:
    """Each input's tensor, from its JSON `data` or from its slice of the binary tail (in order)."""
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, entry in enumerate(entries):
        spec, shape, datatype = _check_input_header(model, index, entry)
        if spec.any_name and inputs:
            raise BadRequest(f"the model takes one input (rows of features), got {len(entries)}")
        if spec.name in inputs:
            raise BadRequest(f"input {spec.name!r} is given twice")
        size = _binary_size(entry, spec.name)
        if size is not None:
            if offset + size > len(tail):
                raise BadRequest(f"input {spec.name!r}: binary_data_size {size} runs past the end of the body")
            flat = _from_binary(spec.name, datatype, tail[offset : offset + size], math.prod(shape))
            offset += size
        elif "data" in entry:
            flat = _from_json(spec.name, datatype, entry["data"], math.prod(shape))
        else:
            raise BadRequest(f"input {spec.name!r}: missing 'data'")
        inputs[spec.name] = flat.reshape(shape)
    if offset != len(tail):
        raise BadRequest(f"the body has {len(tail) - offset} bytes of binary data no input claims")
    return inputs


def _check_input_header(model: ServedModel, index: int, entry: Any) -> tuple[TensorSpec, list[int], str]:
    if not isinstance(entry, dict):
        raise BadRequest(f"inputs[{index}] must be an object")
    name = entry.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{index}]: missing 'name'")
    spec = model.input(name)
    if spec is None:
        known = ", ".join(s.name for s in model.inputs)
        raise BadRequest(f"unknown input {name!r}; the model's inputs are: {known}")
    datatype = entry.get("datatype")
    if datatype is None:
        raise BadRequest(f"input {name!r}: missing 'datatype'")
    if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
    if not spec.takes(datatype):
        wanted = ", ".join(sorted({spec.datatype, *spec.also}))
        raise BadRequest(f"input {name!r}: datatype {datatype} does not match the model's {wanted}")
    shape = entry.get("shape")
    if shape is None:
        raise BadRequest(f"input {name!r}: missing 'shape'")
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if not spec.accepts(shape):
        raise BadRequest(f"input {name!r}: shape {shape} does not fit the model's {list(spec.shape)}")
    return spec, shape, datatype


def _binary_size(entry: dict[str, Any], name: str) -> int | None:
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"input {name!r}: 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer")
    if "data" in entry:
        raise BadRequest(f"input {name!r}: give either 'data' or binary_data_size, not both")
    return size


def _from_json(name: str, datatype: str, data: Any, count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: 'data' must be a list")
    try:
        raw = np.asarray(data)
    except (ValueError, OverflowError, RecursionError) as exc:
        raise BadRequest(f"input {name!r}: 'data' is not a regular (flat or nested) list of numbers: {exc}") from exc
    if raw.size != count:
        raise BadRequest(f"input {name!r}: shape needs {count} values, 'data' has {raw.size}")
    flat = _convert(data, raw, datatype) if raw.size else raw.astype(numpy_from_v2(datatype))
    if flat is None:
        raise BadRequest(f"input {name!r}: 'data' holds values that are not {datatype}")
    return flat.reshape(-1)


def _convert(data: list[Any], raw: np.ndarray, datatype: str) -> np.ndarray | None:
    kind = raw.dtype.kind
    if datatype == "BYTES":
        return raw.astype(object) if kind == "U" else None
    if datatype == "BOOL":
        return raw if kind == "b" else None
    dtype = numpy_from_v2(datatype)
    if datatype.startswith("FP"):
        return raw.astype(dtype) if kind in "iuf" else None
    if kind in "iu":
        limits = np.iinfo(dtype)
        return raw.astype(dtype) if raw.min() >= limits.min and raw.max() <= limits.max else None
    if kind in "fO":
        # NumPy turns a mix of large and negative (or huge) integers into float or object,
        # so look at the Python values themselves: they must all be ints that fit.
        values = np.asarray(data, dtype=object).reshape(-1).tolist()
        if not all(type(value) is int for value in values):
            return None
        try:
            return np.array(values, dtype=dtype)
        except OverflowError:
            return None
    return None


def _from_binary(name: str, datatype: str, raw: bytes, count: int) -> np.ndarray:
    if datatype == "BYTES":
        return _unpack_bytes(name, raw, count)
    itemsize = element_size(datatype)
    assert itemsize is not None
    if len(raw) != count * itemsize:
        raise BadRequest(
            f"input {name!r}: binary_data_size is {len(raw)} bytes; the shape needs {count} x {itemsize} = {count * itemsize}"
        )
    return np.frombuffer(raw, dtype=numpy_from_v2(datatype))


def _unpack_bytes(name: str, raw: bytes, count: int) -> np.ndarray:
    items: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"input {name!r}: BYTES element runs past its binary data")
        try:
            items.append(raw[offset : offset + length].decode())
        except UnicodeDecodeError as exc:
            raise BadRequest(f"input {name!r}: BYTES element is not UTF-8 text") from exc
        offset += length
    if len(items) != count:
        raise BadRequest(f"input {name!r}: shape needs {count} values, binary data has {len(items)}")
    flat = np.empty(count, dtype=object)
    flat[:] = items
    return flat


def _requested_outputs(model: ServedModel, content: dict[str, Any]) -> tuple[RequestedOutput, ...]:
    parameters = content.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be an object")
    binary_default = parameters.get("binary_data_output") is True
    entries = content.get("outputs")
    if entries is None:
        return tuple(RequestedOutput(spec.name, binary_default) for spec in model.outputs)
    if not isinstance(entries, list):
        raise BadRequest("'outputs' must be a list")
    requested = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest(f"outputs[{index}]: missing 'name'")
        name = entry["name"]
        if model.output(name) is None:
            known = ", ".join(s.name for s in model.outputs)
            raise BadRequest(f"unknown output {name!r}; the model's outputs are: {known}")
        options = entry.get("parameters") or {}
        if not isinstance(options, dict):
            raise BadRequest(f"output {name!r}: 'parameters' must be an object")
        if options.get("classification"):
            raise BadRequest(f"output {name!r}: the classification extension is not supported")
        requested.append(RequestedOutput(name, bool(options.get("binary_data", binary_default))))
    return tuple(requested)


def encode_infer_response(header: dict[str, Any], outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """Render a response; the second value is the JSON length when binary data follows it."""
    entries = []
    chunks = []
    for name, array, binary in outputs:
        datatype = v2_from_numpy(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            chunk = _to_binary(datatype, array)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = _to_json(name, datatype, array)
        entries.append(entry)
    try:
        head = render_json({**header, "outputs": entries})
    except ValueError as exc:
        raise ModelServerError("an output holds NaN or Infinity, which JSON cannot carry; ask for binary_data") from exc
    if not chunks:
        return head, None
    return head + b"".join(chunks), len(head)


def _to_json(name: str, datatype: str, array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if datatype != "BYTES":
        return flat.tolist()
    try:
        return [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    except UnicodeDecodeError as exc:
        raise ModelServerError(f"output {name!r} is not UTF-8 text; ask for binary_data") from exc


def _to_binary(datatype: str, array: np.ndarray) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=numpy_from_v2(datatype)).tobytes()
    parts = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)
