"""What the protocol handlers know of a served model, whatever its format: tensors described in V2 terms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .datatypes import numpy_from_v2


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input or output: name, V2 datatype and shape (-1 for a dynamic dimension).

    ``also`` lists other datatypes the input takes (a scikit-learn or XGBoost model converts what it
    is given); ``any_name`` marks the one input of a model that takes it under any name, as KServe's
    sklearn and xgboost servers do.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    also: frozenset[str] = frozenset()
    any_name: bool = False

    @property
    def dtype(self) -> np.dtype:
        return numpy_from_v2(self.datatype)

    def accepts(self, shape: Sequence[int]) -> bool:
        """Whether a tensor of ``shape`` fits: same rank, fixed dimensions equal."""
        if len(shape) != len(self.shape):
            return False
        return all(want < 0 or want == got for want, got in zip(self.shape, shape, strict=True))

    def takes(self, datatype: str) -> bool:
        return datatype == self.datatype or datatype in self.also

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class ServedModel(Protocol):
    """A loaded model of any format. ``run`` is thread-safe; its complaints about the input are BadRequest."""

    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None: ...

    def output(self, name: str) -> TensorSpec | None: ...

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]: ...
