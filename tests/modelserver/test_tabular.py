"""scikit-learn and XGBoost models over V1 and V2, on real servers, as KServe's sklearn server and xgbserver answer."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.modelserver.errors import ModelLoadError
from gateway.modelserver.loader import load_model
from gateway.modelserver.server import create_app
from tests.conftest import needs
from tests.tabular_models import SEED_INPUT, SEED_ROWS, SEED_V2, write_sklearn_iris, write_xgboost_iris

from .utils import serve, wait_ready

pytestmark = [pytest.mark.e2e, needs("sklearn", "xgboost")]  # e2e: trains models; importing scikit-learn alone takes a second


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tabular")
    write_sklearn_iris(root / "sklearn" / "model.joblib")
    write_sklearn_iris(root / "labels" / "model.pkl", labels=["setosa", "versicolor", "virginica"])
    write_xgboost_iris(root / "xgboost" / "model.bst")
    return root


@pytest.fixture(scope="module")
def sklearn_url(models: Path) -> Iterator[str]:
    with serve(create_app(str(models / "sklearn"), "sklearn-iris")) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="module")
def xgboost_url(models: Path) -> Iterator[str]:
    with serve(create_app(str(models / "xgboost"), "xgboost-iris", model_format="xgboost")) as url:
        wait_ready(url)
        yield url


def test_sklearn_v1_answers_the_quick_start(sklearn_url: str) -> None:
    response = httpx.post(f"{sklearn_url}/v1/models/sklearn-iris:predict", json=SEED_INPUT)
    assert response.status_code == 200
    assert response.json() == {"predictions": [1, 1]}


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT64"])
def test_sklearn_v2_takes_any_numeric_datatype_and_answers_int64(sklearn_url: str, datatype: str) -> None:
    rows = SEED_ROWS if datatype != "INT64" else [[7, 3, 5, 1], [6, 3, 5, 2]]
    body = {"id": "r1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": datatype, "data": rows}]}
    response = httpx.post(f"{sklearn_url}/v2/models/sklearn-iris/infer", json=body)
    assert response.status_code == 200, response.text
    content = response.json()
    assert content["id"] == "r1" and content["model_name"] == "sklearn-iris"
    [output] = content["outputs"]
    assert output["name"] == "output-0" and output["datatype"] == "INT64" and output["shape"] == [2]
    assert output["data"] == ([1, 1] if datatype != "INT64" else [1, 2])


def test_sklearn_v2_takes_its_one_input_under_any_name_as_kserve_does(sklearn_url: str) -> None:
    body = {"inputs": [{"name": "predict", "shape": [8], "datatype": "FP64", "data": sum(SEED_ROWS, [])}]}
    body["inputs"][0]["shape"] = [2, 4]
    response = httpx.post(f"{sklearn_url}/v2/models/sklearn-iris/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1, 1]


def test_sklearn_metadata(sklearn_url: str) -> None:
    assert httpx.get(f"{sklearn_url}/v2/models/sklearn-iris").json() == {
        "name": "sklearn-iris",
        "versions": ["1"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }


def test_xgboost_v1_answers_the_quick_start_as_floats(xgboost_url: str) -> None:
    response = httpx.post(f"{xgboost_url}/v1/models/xgboost-iris:predict", json=SEED_INPUT)
    assert response.status_code == 200
    assert response.text == '{"predictions":[1.0,1.0]}'  # KServe's xgbserver answers the Booster's floats


def test_xgboost_v2_answers_fp32(xgboost_url: str) -> None:
    response = httpx.post(f"{xgboost_url}/v2/models/xgboost-iris/infer", json=SEED_V2)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [2], "data": [1.0, 1.0]}]


def test_xgboost_metadata(xgboost_url: str) -> None:
    metadata = httpx.get(f"{xgboost_url}/v2/models/xgboost-iris").json()
    assert metadata["platform"] == "xgboost"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]


@pytest.mark.parametrize("fixture", ["sklearn_url", "xgboost_url"])
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [[6.8, 2.8, 4.8]]}, "'instances' have shape [1, 3]; input 'input-0' needs [-1, 4]"),
        ({"instances": [6.8, 2.8, 4.8, 1.4]}, "'instances' have shape [4]; input 'input-0' needs [-1, 4]"),
        ({"instances": [["a", "b", "c", "d"]]}, "'instances' cannot be read as"),
        ({"instances": []}, "'instances' must be a non-empty list"),
        ({"rows": SEED_ROWS}, "missing 'instances'"),
    ],
)
def test_v1_bad_inputs_are_400_naming_what_is_wrong(
    request: pytest.FixtureRequest, fixture: str, body: dict[str, Any], needle: str
) -> None:
    url = request.getfixturevalue(fixture)
    name = "sklearn-iris" if fixture == "sklearn_url" else "xgboost-iris"
    response = httpx.post(f"{url}/v1/models/{name}:predict", json=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def _v2(name: str = "input-0", shape: list[int] | None = None, datatype: str = "FP32", data: Any = None) -> dict[str, Any]:
    return {"name": name, "shape": shape or [2, 4], "datatype": datatype, "data": SEED_ROWS if data is None else data}


@pytest.mark.parametrize("fixture", ["sklearn_url", "xgboost_url"])
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"inputs": [_v2(shape=[1, 3], data=[1, 2, 3])]}, "input 'input-0': shape [1, 3] does not fit the model's [-1, 4]"),
        ({"inputs": [_v2(shape=[8], data=sum(SEED_ROWS, []))]}, "input 'input-0': shape [8] does not fit the model's [-1, 4]"),
        ({"inputs": [_v2(name="x", datatype="BYTES", data=["a"] * 8)]}, "input 'x': datatype BYTES does not match the model's"),
        ({"inputs": [_v2(), _v2(name="other")]}, "the model takes one input (rows of features), got 2"),
        ({"inputs": [_v2()], "outputs": [{"name": "label"}]}, "unknown output 'label'; the model's outputs are: output-0"),
        ({"inputs": [_v2(data=[1, 2, 3])]}, "input 'input-0': shape needs 8 values, 'data' has 3"),
    ],
)
def test_v2_bad_inputs_are_400_naming_what_is_wrong(
    request: pytest.FixtureRequest, fixture: str, body: dict[str, Any], needle: str
) -> None:
    url = request.getfixturevalue(fixture)
    name = "sklearn-iris" if fixture == "sklearn_url" else "xgboost-iris"
    response = httpx.post(f"{url}/v2/models/{name}/infer", json=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_string_labels_are_bytes_over_v2_and_strings_over_v1(models: Path) -> None:
    with serve(create_app(str(models / "labels"), "flowers")) as url:
        wait_ready(url)
        assert httpx.post(f"{url}/v1/models/flowers:predict", json=SEED_INPUT).json() == {
            "predictions": ["versicolor", "versicolor"]
        }
        [output] = httpx.post(f"{url}/v2/models/flowers/infer", json=SEED_V2).json()["outputs"]
        assert output == {"name": "output-0", "datatype": "BYTES", "shape": [2], "data": ["versicolor", "versicolor"]}
        assert httpx.get(f"{url}/v2/models/flowers").json()["outputs"] == [
            {"name": "output-0", "datatype": "BYTES", "shape": [-1]}
        ]


def test_predict_proba_when_asked_as_kserve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sklearn_iris(tmp_path / "model.joblib", logistic=True)
    monkeypatch.setenv("PREDICT_PROBA", "true")
    model = load_model(str(tmp_path))
    assert [spec.metadata() for spec in model.outputs] == [{"name": "output-0", "datatype": "FP64", "shape": [-1, 3]}]
    with serve(create_app(str(tmp_path), "proba")) as url:
        wait_ready(url)
        predictions = httpx.post(f"{url}/v1/models/proba:predict", json=SEED_INPUT).json()["predictions"]
        assert len(predictions) == 2 and all(len(row) == 3 for row in predictions)
        assert all(abs(sum(row) - 1) < 1e-6 and max(row) == row[1] for row in predictions)
        [output] = httpx.post(f"{url}/v2/models/proba/infer", json=SEED_V2).json()["outputs"]
        assert (output["datatype"], output["shape"]) == ("FP64", [2, 3])


@pytest.mark.parametrize("name", ["model.bst", "model.json", "model.ubj"])
def test_xgboost_file_kinds_load_alike(tmp_path: Path, name: str) -> None:
    write_xgboost_iris(tmp_path / name)
    model = load_model(str(tmp_path))
    assert model.platform == "xgboost"
    import numpy as np

    assert model.run({"x": np.array(SEED_ROWS)}, ["output-0"])[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "model.pickle", "iris-classifier.pkl"])
def test_sklearn_file_kinds_load_alike(tmp_path: Path, name: str) -> None:
    write_sklearn_iris(tmp_path / name)
    assert load_model(str(tmp_path)).platform == "sklearn"
    assert load_model(str(tmp_path / name), "sklearn").platform == "sklearn"


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    cases: dict[str, tuple[bytes, str]] = {
        "garbage/model.pkl": (b"this is not a pickle", "not a readable pickle or joblib file"),
        "truncated/model.joblib": (pickle.dumps({"a": 1})[:5], "not a readable pickle or joblib file"),
        "dict/model.pkl": (pickle.dumps({"weights": [1, 2]}), "it holds a dict, not a model with predict()"),
        "corrupt/model.bst": (b"\x00\x01not a booster at all", "cannot load model file"),
        "corrupt-json/model.json": (b'{"learner": 3}', "cannot load model file"),
    }
    # A model pickled where a module existed that is not installed here (protocol 2: GLOBAL, EMPTY_TUPLE, NEWOBJ).
    moved = b"\x80\x02cno_such_module_for_the_test\nThing\n)\x81."
    cases["moved/model.pkl"] = (
        moved,
        "it needs what is not installed here (ModuleNotFoundError: No module named 'no_such_module_for_the_test')",
    )
    for relative, (content, needle) in cases.items():
        path = tmp_path / relative
        path.parent.mkdir()
        path.write_bytes(content)
        with pytest.raises(ModelLoadError) as info:
            load_model(str(path.parent))
        message = str(info.value)
        assert message.startswith(f"cannot load model file {path}: ") and needle in message, (relative, message)
        assert "\n" not in message


def test_folders_without_one_model_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"folder .*empty holds no model file \(one of \.onnx, \.joblib"):
        load_model(str(tmp_path / "empty"), None)
    with pytest.raises(ModelLoadError, match=r"folder .*empty must hold model\.bst or model\.json or model\.ubj or exactly one"):
        load_model(str(tmp_path / "empty"), "xgboost")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.pkl").write_bytes(b"x")
    (tmp_path / "two" / "b.pkl").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"exactly one \.joblib/\.pkl/\.pickle file, found 2"):
        load_model(str(tmp_path / "two"))
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "model.onnx").write_bytes(b"x")
    (tmp_path / "mixed" / "model.pkl").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"holds model files of formats onnx, sklearn; name the format"):
        load_model(str(tmp_path / "mixed"))
    (tmp_path / "mixed" / "model.onnx").unlink()
    (tmp_path / "mixed" / "a.onnx").write_bytes(b"x")
    (tmp_path / "mixed" / "metadata.json").write_text("{}")
    # model.pkl names the format; the other files are not taken for models of their extensions' formats
    with pytest.raises(ModelLoadError, match=r"cannot load model file .*mixed/model\.pkl: not a readable pickle"):
        load_model(str(tmp_path / "mixed"))


def test_a_missing_extra_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_xgboost_iris(tmp_path / "model.json")
    monkeypatch.setitem(__import__("sys").modules, "xgboost", None)  # as if xgboost were not installed
    with pytest.raises(ModelLoadError) as info:
        load_model(str(tmp_path))
    assert str(info.value) == (
        "the xgboost model format needs xgboost, which is not installed: pip install 'serving-gateway[xgboost]'"
    )


def test_nthread_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_xgboost_iris(tmp_path / "model.ubj")
    monkeypatch.setenv("NTHREAD", "2")
    assert load_model(str(tmp_path)).platform == "xgboost"
    monkeypatch.setenv("NTHREAD", "zero")
    with pytest.raises(ModelLoadError, match="NTHREAD must be a whole number >= 1, got 'zero'"):
        load_model(str(tmp_path))
