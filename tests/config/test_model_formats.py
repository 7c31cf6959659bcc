"""InferenceService model formats (issue 12 item 4): modelFormat and the older keys select onnx, sklearn or
xgboost; a local model path is checked per format; the runtime table is read and checked for kubernetes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.config import load
from gateway.config.model import BUILTIN_RUNTIME, ModelRuntime
from tests.config.support import one_service, problems, write

LABEL = "document 1 (InferenceService/iris)"
KUBERNETES = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: kubernetes\n"


def isvc(predictor: str, name: str = "iris") -> str:
    indented = "".join(f"    {line}\n" for line in predictor.strip("\n").splitlines())
    return f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\nspec:\n  predictor:\n{indented}"


def kfserving(predictor: str) -> str:
    indented = "".join(f"      {line}\n" for line in predictor.strip("\n").splitlines())
    return (
        "apiVersion: serving.kubeflow.org/v1alpha2\nkind: InferenceService\nmetadata:\n  name: iris\n"
        f"spec:\n  default:\n    predictor:\n{indented}"
    )


def model_files(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def command_model(command: object) -> tuple[str, str]:
    """The --model and --format a model-server command gives."""
    assert isinstance(command, tuple) and command[:4] == (sys.executable, "-m", "gateway", "modelserver"), command
    return command[command.index("--model") + 1], command[command.index("--format") + 1]


@pytest.mark.parametrize(
    ("predictor", "file", "fmt"),
    [
        ("model:\n  modelFormat: {name: sklearn}\n  storageUri: m", "model.joblib", "sklearn"),
        ("model:\n  modelFormat: {name: SKLearn}\n  storageUri: m", "model.pkl", "sklearn"),
        ("model:\n  modelFormat: {name: XGBoost, version: '2'}\n  storageUri: m", "model.bst", "xgboost"),
        ("model:\n  modelFormat: {name: ONNX}\n  storageUri: m", "model.onnx", "onnx"),
        ("sklearn:\n  storageUri: m", "model.pickle", "sklearn"),
        ("xgboost:\n  storageUri: m", "model.json", "xgboost"),
        ("xgboost:\n  storageUri: m", "model.ubj", "xgboost"),
        ("onnx:\n  storageUri: m", "model.onnx", "onnx"),
    ],
)
def test_the_format_selects_the_model_file_and_the_server_format(tmp_path: Path, predictor: str, file: str, fmt: str) -> None:
    # The folder holds a model file of each format: the one asked for is served.
    others = {"onnx": "model.onnx", "sklearn": "model.joblib", "xgboost": "model.bst"}
    model_files(tmp_path / "m", *{**others, fmt: file}.values())
    default = one_service(load([write(tmp_path, "x.yaml", isvc(predictor))]), "iris").default
    assert command_model(default.command) == (str(tmp_path / "m" / file), fmt)
    assert default.model_format == fmt and default.readiness_path == "/v2/health/ready"


def test_a_file_named_directly_and_one_file_of_any_name_in_a_folder(tmp_path: Path) -> None:
    model_files(tmp_path / "a", "iris-classifier.pkl", "notes.txt")
    model_files(tmp_path / "b", "model.joblib")
    text = isvc("sklearn:\n  storageUri: a", "one") + "---\n" + isvc("sklearn:\n  storageUri: file://b/model.joblib", "two")
    config = load([write(tmp_path, "x.yaml", text)])
    assert command_model(one_service(config, "one").default.command) == (str(tmp_path / "a" / "iris-classifier.pkl"), "sklearn")
    assert command_model(one_service(config, "two").default.command) == (str(tmp_path / "b" / "model.joblib"), "sklearn")


def test_kfserving_predictors_take_the_formats_too(tmp_path: Path) -> None:
    model_files(tmp_path / "m", "model.bst")
    default = one_service(load([write(tmp_path, "x.yaml", kfserving("xgboost:\n  storageUri: m"))]), "iris").default
    assert command_model(default.command) == (str(tmp_path / "m" / "model.bst"), "xgboost")


@pytest.mark.parametrize(
    ("predictor", "files", "message"),
    [
        (
            "sklearn:\n  storageUri: m",
            ("model.onnx",),
            "spec.predictor.sklearn.storageUri: folder {m} must hold model.joblib or model.pkl or model.pickle or "
            "exactly one .joblib/.pkl/.pickle file, found 0 (it holds model.onnx)",
        ),
        (
            "model:\n  modelFormat: {name: xgboost}\n  storageUri: m",
            ("a.bst", "b.bst"),
            "spec.predictor.model.storageUri: folder {m} must hold model.bst or model.json or model.ubj or "
            "exactly one .bst/.json/.ubj file, found 2 (a.bst, b.bst)",
        ),
        (
            "sklearn:\n  storageUri: m/model.onnx",
            ("model.onnx",),
            "spec.predictor.sklearn.storageUri: must name a sklearn model file (ending .joblib or .pkl or .pickle), "
            "got {m}/model.onnx",
        ),
        ("xgboost:\n  storageUri: m/model.bst", (), "spec.predictor.xgboost.storageUri: model file not found: {m}/model.bst"),
        (
            "sklearn:\n  storageUri: m",
            ("README.md", ".hidden", "a.onnx", "b.onnx", "c.txt", "d.txt", "e.txt", "f.txt"),
            "spec.predictor.sklearn.storageUri: folder {m} must hold model.joblib or model.pkl or model.pickle or "
            "exactly one .joblib/.pkl/.pickle file, found 0 (it holds README.md, a.onnx, b.onnx, c.txt, d.txt and 2 more)",
        ),
        (
            "model:\n  modelFormat: {name: onnx}\n  storageUri: m",
            (),
            "spec.predictor.model.storageUri: folder {m} must hold model.onnx or exactly one .onnx file, found 0 (it is empty)",
        ),
    ],
)
def test_a_local_model_path_is_checked_per_format(tmp_path: Path, predictor: str, files: tuple[str, ...], message: str) -> None:
    model_files(tmp_path / "m", *files)
    path = write(tmp_path, "x.yaml", isvc(predictor))
    assert problems([path]) == [f"{path}: {LABEL}: {message.format(m=tmp_path / 'm')}"]


def test_kfserving_refuses_other_formats_naming_what_is_served(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", kfserving("tensorflow:\n  storageUri: gs://kfserving-samples/models/tensorflow/flowers"))
    [problem] = problems([path])
    assert problem.endswith(
        "spec.default.predictor.tensorflow: only onnx, sklearn, xgboost models are served by the built-in "
        "model server (or give containers[0] with a command), got a tensorflow predictor"
    )


def test_a_missing_extra_is_a_warning_under_local_saying_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_files(tmp_path / "m", "model.bst")
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if the xgboost extra were not installed
    path = write(tmp_path, "x.yaml", isvc("xgboost:\n  storageUri: m"))
    config = load([path])
    assert config.warnings == (
        f"{path}: {LABEL}: spec.predictor.xgboost.storageUri: the xgboost model format needs xgboost, which is not "
        "installed: pip install 'serving-gateway[xgboost]'; until then its replicas fail to start",
    )


def test_a_runtime_is_noted_under_local(tmp_path: Path) -> None:
    model_files(tmp_path / "m", "model.pkl")
    path = write(
        tmp_path, "x.yaml", isvc("model:\n  modelFormat: {name: sklearn}\n  runtime: kserve-sklearnserver\n  storageUri: m")
    )
    config = load([path])
    assert config.services[0].default.model_runtime == "kserve-sklearnserver"
    assert config.warnings == (
        f"{path}: {LABEL}: spec.predictor.model.runtime: used by the kubernetes backend only; the local backend runs "
        "the built-in model server",
    )


RUNTIMES = """\
  kubernetes:
    modelServerImage: registry.example.com/serving-gateway:0.2.0
    runtimes:
      kserve-sklearnserver:
        modelFormats: [SKLearn]
        image: kserve/sklearnserver:v0.14.1
        args: ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port={port}"]
      gpu-xgboost:
        modelFormats: [xgboost]
        image: registry.example.com/serving-gateway-gpu:0.2.0
"""


def test_the_runtime_table_is_read_after_the_given_ones_comes_the_builtin(tmp_path: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", KUBERNETES + RUNTIMES)
    settings = load([gateway]).gateway.kubernetes
    assert settings.runtimes == (
        ModelRuntime(
            "kserve-sklearnserver",
            ("sklearn",),
            "kserve/sklearnserver:v0.14.1",
            None,
            ("--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port={port}"),
        ),
        ModelRuntime(
            "gpu-xgboost",
            ("xgboost",),
            "registry.example.com/serving-gateway-gpu:0.2.0",
            BUILTIN_RUNTIME.command,
            BUILTIN_RUNTIME.args,
        ),
        BUILTIN_RUNTIME,
    )


def test_a_runtime_named_as_the_builtin_replaces_it(tmp_path: Path) -> None:
    text = KUBERNETES + "  kubernetes:\n    runtimes:\n      serving-gateway: {modelFormats: [onnx]}\n"
    [runtime] = load([write(tmp_path, "gw.yaml", text)]).gateway.kubernetes.runtimes
    assert runtime == ModelRuntime("serving-gateway", ("onnx",), None, BUILTIN_RUNTIME.command, BUILTIN_RUNTIME.args)


@pytest.mark.parametrize(
    ("runtimes", "message"),
    [
        ("[a]", "spec.kubernetes.runtimes: must be a mapping, got a list"),
        ("{tf: {modelFormats: [tensorflow], image: tf:1}}", "spec.kubernetes.runtimes.tf.modelFormats[0]: must be a format"),
        ("{sk: {image: sk:1}}", "spec.kubernetes.runtimes.sk.modelFormats: required (the model formats it serves"),
        ("{sk: {modelFormats: [], image: sk:1}}", "spec.kubernetes.runtimes.sk.modelFormats: must list at least one format"),
        ("{sk: {modelFormats: [sklearn]}}", "spec.kubernetes.runtimes.sk.image: required (the container image"),
        (
            "{sk: {modelFormats: [sklearn], image: 'Not An Image'}}",
            "spec.kubernetes.runtimes.sk.image: must be a container image",
        ),
        ("{sk: {modelFormats: [sklearn], image: sk:1, ports: [8080]}}", "spec.kubernetes.runtimes.sk.ports: unknown key"),
        ("{sk: {modelFormats: [sklearn], image: sk:1, args: x}}", "spec.kubernetes.runtimes.sk.args: must be a list"),
    ],
)
def test_bad_runtimes_are_refused_naming_the_field(tmp_path: Path, runtimes: str, message: str) -> None:
    path = write(tmp_path, "gw.yaml", KUBERNETES + f"  kubernetes:\n    runtimes: {runtimes}\n")
    found = problems([path])
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(
    ("gateway", "model", "message"),
    [
        (
            "",
            "modelFormat: {name: sklearn}\n  runtime: kserve-sklearnserver",
            "spec.predictor: no runtime 'kserve-sklearnserver' in GatewayConfig spec.kubernetes.runtimes (there are: "
            "serving-gateway)",
        ),
        (
            RUNTIMES,
            "modelFormat: {name: onnx}\n  runtime: kserve-sklearnserver",
            "spec.predictor: runtime 'kserve-sklearnserver' does not serve onnx models (it serves sklearn)",
        ),
        (
            "  kubernetes:\n    runtimes:\n      serving-gateway: {modelFormats: [onnx]}\n",
            "modelFormat: {name: xgboost}",
            "spec.predictor: no runtime in GatewayConfig spec.kubernetes.runtimes serves xgboost models (there are: "
            "serving-gateway)",
        ),
    ],
)
def test_under_kubernetes_a_model_needs_a_runtime(tmp_path: Path, gateway: str, model: str, message: str) -> None:
    settings = write(tmp_path, "gw.yaml", KUBERNETES + gateway)
    path = write(tmp_path, "x.yaml", isvc(f"model:\n  {model}\n  storageUri: /app/config/models/m"))
    assert problems([settings, path]) == [f"{path}: {LABEL}: {message}"]


def test_under_kubernetes_a_named_runtime_is_kept(tmp_path: Path) -> None:
    settings = write(tmp_path, "gw.yaml", KUBERNETES + RUNTIMES)
    path = write(
        tmp_path,
        "x.yaml",
        isvc("model:\n  modelFormat: {name: sklearn}\n  runtime: kserve-sklearnserver\n  storageUri: /mnt/models"),
    )
    default = load([settings, path]).services[0].default
    assert (default.model_path, default.model_format, default.model_runtime) == ("/mnt/models", "sklearn", "kserve-sklearnserver")
