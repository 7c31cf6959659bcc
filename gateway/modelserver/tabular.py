"""scikit-learn and XGBoost models, served as KServe's sklearn server and xgbserver serve them.

Both take one input, rows of features (`[rows, features]`), under any name (KServe reads the first
input), of any numeric or BOOL datatype; the output is `output-0`, whatever `predict` returns
(KServe's name): class labels (INT64, or BYTES for string labels), values (FP64), XGBoost's FP32.
With `PREDICT_PROBA=true` in the environment a scikit-learn model that has `predict_proba` answers
with the class probabilities instead, as KServe's does. What an output is (datatype, shape) is found
by predicting one row of zeros at load; a model that cannot do that is described as a vector of FP64.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .datatypes import v2_from_numpy
from .errors import BadRequest, ModelLoadError, ModelServerError
from .specs import TensorSpec

INPUT_NAME = "input-0"
OUTPUT_NAME = "output-0"
NUMERIC = frozenset({"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"})
PREDICT_PROBA = "PREDICT_PROBA"
NTHREAD = "NTHREAD"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())


class TabularModel:
    """A model that predicts from one `[rows, features]` array: ``predict`` is the framework's call."""

    def __init__(self, platform: str, predict: Callable[[np.ndarray], Any], features: int, datatype: str) -> None:
        self.platform = platform
        self._predict = predict
        self._input = TensorSpec(INPUT_NAME, datatype, (-1, features), also=NUMERIC - {datatype}, any_name=True)
        self.inputs: tuple[TensorSpec, ...] = (self._input,)
        self.outputs: tuple[TensorSpec, ...] = (self._describe_output(features),)

    def _describe_output(self, features: int) -> TensorSpec:
        try:
            probe = np.asarray(self._predict(np.zeros((1, max(features, 1)), dtype=self._input.dtype)))
            return TensorSpec(OUTPUT_NAME, v2_from_numpy(probe.dtype), (-1, *probe.shape[1:]))
        except Exception:  # a model that takes other inputs than zeros still serves; only its metadata is vaguer
            return TensorSpec(OUTPUT_NAME, "FP64", (-1,))

    def input(self, name: str) -> TensorSpec | None:
        return self._input if name == self._input.name else replace(self._input, name=name)

    def output(self, name: str) -> TensorSpec | None:
        return self.outputs[0] if name == OUTPUT_NAME else None

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
        (rows,) = feeds.values()
        try:
            result = np.asarray(self._predict(rows))
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"the {self.platform} model rejected the input: {_first_line(exc)}") from exc
        except Exception as exc:
            raise ModelServerError(f"the {self.platform} model failed: {_first_line(exc)}") from exc
        return [result for _ in outputs]


def load_sklearn(path: str) -> TabularModel:
    """A pickled or joblib-dumped estimator: anything with ``predict`` (this runs the pickle's code)."""
    import joblib

    try:
        estimator = joblib.load(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    except (ImportError, AttributeError) as exc:
        reason = f"it needs what is not installed here ({type(exc).__name__}: {_first_line(exc)})"
        raise ModelLoadError(f"cannot load model file {path}: {reason}") from exc
    except Exception as exc:
        reason = f"not a readable pickle or joblib file ({type(exc).__name__}: {_first_line(exc)})"
        raise ModelLoadError(f"cannot load model file {path}: {reason}") from exc
    if not callable(getattr(estimator, "predict", None)):
        raise ModelLoadError(f"cannot load model file {path}: it holds a {type(estimator).__name__}, not a model with predict()")
    predict = estimator.predict
    if os.environ.get(PREDICT_PROBA, "false").lower() == "true" and callable(getattr(estimator, "predict_proba", None)):
        predict = estimator.predict_proba
    features = getattr(estimator, "n_features_in_", -1)
    return TabularModel("sklearn", predict, int(features) if isinstance(features, int | np.integer) else -1, "FP64")


def nthread() -> int:
    """XGBoost's threads per prediction: ``$NTHREAD`` or 1 (KServe's xgbserver runs with --nthread=1)."""
    text = os.environ.get(NTHREAD, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ModelLoadError(f"{NTHREAD} must be a whole number >= 1, got {text!r}")
    return int(text)


def load_xgboost(path: str) -> TabularModel:
    """A Booster saved as .bst (binary), .json or .ubj; the format is told by the bytes, not the name."""
    import xgboost

    threads = nthread()
    try:
        with open(path, "rb") as file:
            data = file.read()
        booster = xgboost.Booster(params={"nthread": threads}, model_file=bytearray(data))
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load model file {path}: {_first_line(exc)}") from exc

    def predict(rows: np.ndarray) -> np.ndarray:
        result: np.ndarray = booster.predict(xgboost.DMatrix(rows, nthread=threads))
        return result

    return TabularModel("xgboost", predict, booster.num_features(), "FP32")
