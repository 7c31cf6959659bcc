"""Small scikit-learn and XGBoost iris models, trained by the tests that serve them (well under a second each).

Both answer the KServe quick start's iris-input.json rows (`SEED_ROWS`) with class 1, 1. Each test
module asks for the packages with `needs("sklearn", "xgboost")` (tests/conftest.py), so a machine without
the extras skips them; the packages are imported only when a model is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEED_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
SEED_INPUT = {"instances": SEED_ROWS}  # the quick start's iris-input.json
SEED_V2 = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": SEED_ROWS}]}


def iris() -> tuple[Any, Any]:
    from sklearn import datasets

    features, labels = datasets.load_iris(return_X_y=True)
    return features, labels


def write_sklearn_iris(path: Path, *, labels: list[str] | None = None, logistic: bool = False) -> Path:
    """An SVC (as in the KServe quick start) dumped with joblib to `path` (.joblib, .pkl or .pickle alike).

    With `labels`, the classes are those strings instead of 0, 1, 2; `logistic` trains a logistic
    regression instead, which has predict_proba.
    """
    import joblib
    from sklearn import linear_model, svm

    features, targets = iris()
    if labels is not None:
        targets = [labels[int(target)] for target in targets]
    model = linear_model.LogisticRegression(max_iter=1000) if logistic else svm.SVC(gamma="scale")
    model.fit(features, targets)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def write_xgboost_iris(path: Path) -> Path:
    """A multi:softmax Booster saved to `path`: JSON for .json, UBJSON otherwise (.ubj, and .bst as KServe names it)."""
    import xgboost

    features, targets = iris()
    params = {"objective": "multi:softmax", "num_class": 3, "max_depth": 3, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(features, label=targets), num_boost_round=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(booster.save_raw("json" if path.suffix == ".json" else "ubj"))
    return path
