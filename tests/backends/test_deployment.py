"""The Deployment built for each revision: what runs, where, with what; every one a valid apps/v1 Deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gateway.backends.deployment import build_deployment, label_selector, managed_by_us
from gateway.backends.errors import BackendConfigError
from gateway.config import KubernetesSettings, RevisionSpec, ServiceSpec, load
from gateway.types import RevisionKey
from tests.backends.deployment_support import assert_valid, build, container, load_kubernetes, pod

PADDLE = """\
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: lac
  namespace: nlp
spec:
{spec}
"""
IMAGE = "  default:\n    containerImage: registry.example.com/lac\n    tag: v2\n"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DEFAULT_RESOURCES = {"requests": {"cpu": "0.2", "memory": "512Mi"}, "limits": {"cpu": "0.2", "memory": "512Mi"}}


def paddle(spec: str) -> str:
    return PADDLE.format(spec=spec.rstrip("\n"))


def test_paddle_service_runs_its_image_with_bash_c_arg(tmp_path: Path) -> None:
    spec = (
        "  runtimeVersion: paddleserving\n"
        "  default:\n"
        "    containerImage: registry.example.com/lac\n"
        "    tag: v2\n"
        "    port: 9292\n"
        "    arg: python3 -m paddle_serving_server.serve --model lac_model/ --port 9292\n"
        "    env: {MODEL: lac, THREADS: 4}\n"
    )
    served = container(build(load_kubernetes(tmp_path, paddle(spec))))
    assert served == {
        "name": "paddleserving",
        "image": "registry.example.com/lac:v2",
        "command": ["/bin/bash", "-c"],
        "args": ["python3 -m paddle_serving_server.serve --model lac_model/ --port 9292"],
        "ports": [{"name": "http", "containerPort": 9292, "protocol": "TCP"}],
        "env": [{"name": "MODEL", "value": "lac"}, {"name": "THREADS", "value": "4"}, {"name": "PORT", "value": "9292"}],
        "resources": DEFAULT_RESOURCES,
        "readinessProbe": {"tcpSocket": {"port": 9292}, "periodSeconds": 1},
    }


def test_paddle_service_without_arg_keeps_the_image_entrypoint(tmp_path: Path) -> None:
    served = container(build(load_kubernetes(tmp_path, paddle(IMAGE))))
    assert "command" not in served and "args" not in served
    assert served["name"] == "paddleserving"  # ElasticServing's runtimeVersion when none is given
    assert served["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_a_given_port_variable_is_kept(tmp_path: Path) -> None:
    served = container(build(load_kubernetes(tmp_path, paddle(IMAGE + "    env: {PORT: '9000'}\n    port: 9000\n"))))
    assert served["env"] == [{"name": "PORT", "value": "9000"}]


@pytest.mark.parametrize(
    "given, requests, limits",
    [
        ("{limits: {memory: 2Gi}}", {"cpu": "0.2", "memory": "512Mi"}, {"memory": "2Gi", "cpu": "0.2"}),
        ("{requests: {cpu: 100m}}", {"cpu": "100m", "memory": "512Mi"}, {"cpu": "0.2", "memory": "512Mi"}),
        # a default never puts a request above its limit (the API server would refuse the Deployment)
        ("{requests: {cpu: '1'}, limits: {memory: 256Mi}}", {"cpu": "1", "memory": "256Mi"}, {"memory": "256Mi", "cpu": "1"}),
        ("{limits: {cpu: 100m, memory: 1e9}}", {"cpu": "100m", "memory": "512Mi"}, {"cpu": "100m", "memory": "1e9"}),
        ("{requests: {memory: 1Gi}, limits: {cpu: '2'}}", {"memory": "1Gi", "cpu": "0.2"}, {"cpu": "2", "memory": "1Gi"}),
    ],
)
def test_partial_resources_are_filled_key_by_key(
    tmp_path: Path, given: str, requests: dict[str, str], limits: dict[str, str]
) -> None:
    served = container(build(load_kubernetes(tmp_path, paddle(f"  resources: {given}\n" + IMAGE))))
    assert served["resources"] == {"requests": requests, "limits": limits}


def test_deployment_names_labels_and_selector(tmp_path: Path) -> None:
    spec = IMAGE + "  canary:\n    containerImage: registry.example.com/lac\n    tag: v3\n"
    config = load_kubernetes(tmp_path, paddle(spec))
    default, canary = build(config, revision="default"), build(config, revision="canary", replicas=None)
    revision = {"serving-gateway/service": "lac", "serving-gateway/namespace": "nlp", "serving-gateway/revision": "canary"}
    managed = {**revision, "app.kubernetes.io/managed-by": "serving-gateway"}
    assert (canary["metadata"]["name"], canary["metadata"]["namespace"]) == ("lac-canary", "nlp")
    assert canary["metadata"]["labels"] == {**managed, "serving-gateway/owner": "serving-gateway"}  # the Deployment only
    assert canary["spec"]["selector"] == {"matchLabels": revision}
    assert canary["spec"]["template"]["metadata"]["labels"] == managed
    assert "replicas" not in canary["spec"]
    assert default["metadata"]["name"] == "lac-default"
    assert default["spec"]["replicas"] == 1
    assert container(canary)["image"] == "registry.example.com/lac:v3"
    assert managed_by_us(default) and managed_by_us(canary)


@pytest.mark.parametrize(
    "deployment",
    [
        {"metadata": {"name": "theirs"}},
        {"metadata": {"name": "theirs", "labels": None}},
        {"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}},
        {"metadata": None},
        {},
    ],
)
def test_deployments_made_by_others_are_not_ours(deployment: dict[str, Any]) -> None:
    assert not managed_by_us(deployment)


def test_label_selector_lists_a_revisions_pods() -> None:
    key = RevisionKey("nlp", "lac", "canary")
    assert label_selector(key) == "serving-gateway/service=lac,serving-gateway/namespace=nlp,serving-gateway/revision=canary"


def test_readiness_probe_is_http_on_readiness_path(tmp_path: Path) -> None:
    served = container(build(load_kubernetes(tmp_path, paddle(IMAGE + "    port: 9292\n    readinessPath: /healthz\n"))))
    assert served["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": 9292}, "periodSeconds": 1}


def test_image_pull_policy_from_gateway_config(tmp_path: Path) -> None:
    config = load_kubernetes(tmp_path, paddle(IMAGE), "  kubernetes:\n    imagePullPolicy: Always\n")
    assert container(build(config))["imagePullPolicy"] == "Always"


def test_a_revision_without_image_is_refused_by_name() -> None:
    service = ServiceSpec("lac", "nlp", RevisionSpec("default", command="serve {port}"))
    with pytest.raises(BackendConfigError, match="nlp/lac-default: no container image to run"):
        build_deployment(service, service.default, KubernetesSettings())


# Accelerators


@pytest.mark.parametrize(
    "accelerator, count, resource",
    [
        ("nvidia", None, {"nvidia.com/gpu": "1"}),
        ("nvidia", 4, {"nvidia.com/gpu": "4"}),
        ("nvidia.com/gpu", None, {"nvidia.com/gpu": "1"}),
    ],
)
def test_nvidia_adds_gpus_to_limits_and_the_gpu_toleration(
    tmp_path: Path, accelerator: str, count: int | None, resource: dict[str, str]
) -> None:
    lines = f"    accelerator: {accelerator}\n" + (f"    acceleratorCount: {count}\n" if count else "")
    deployment = build(load_kubernetes(tmp_path, paddle(IMAGE + lines)))
    assert container(deployment)["resources"] == {
        "requests": DEFAULT_RESOURCES["requests"],
        "limits": {**DEFAULT_RESOURCES["limits"], **resource},
    }
    assert pod(deployment)["tolerations"] == [GPU_TOLERATION]


@pytest.mark.parametrize(
    "gateway, resource, key",
    [
        ("", "baidu.com/xpu", "baidu.com/xpu"),
        ("  kubernetes:\n    kunlunResource: kunlunxin.com/xpu\n", "kunlunxin.com/xpu", "kunlunxin.com/xpu"),
        (
            "  kubernetes:\n    kunlunResource: kunlunxin.com/xpu\n    kunlunTolerationKey: kunlun-device-enable\n",
            "kunlunxin.com/xpu",
            "kunlun-device-enable",
        ),
        ("  kubernetes:\n    kunlunTolerationKey: example.com/xpu-node\n", "baidu.com/xpu", "example.com/xpu-node"),
    ],
)
def test_kunlun_adds_its_resource_and_toleration(tmp_path: Path, gateway: str, resource: str, key: str) -> None:
    deployment = build(load_kubernetes(tmp_path, paddle(IMAGE + "    accelerator: kunlun\n    acceleratorCount: 2\n"), gateway))
    assert container(deployment)["resources"]["limits"] == {**DEFAULT_RESOURCES["limits"], resource: "2"}
    assert pod(deployment)["tolerations"] == [{"key": key, "operator": "Exists", "effect": "NoSchedule"}]


def test_an_accelerator_given_as_a_resource_name_is_used_as_is(tmp_path: Path) -> None:
    deployment = build(load_kubernetes(tmp_path, paddle(IMAGE + "    accelerator: amd.com/gpu\n")))
    assert container(deployment)["resources"]["limits"]["amd.com/gpu"] == "1"
    assert "tolerations" not in pod(deployment)  # no known taint for it


@pytest.mark.parametrize(
    "resources, requests, limits",
    [
        ("limits: {nvidia.com/gpu: 2}", {}, {"nvidia.com/gpu": "2"}),
        ("requests: {nvidia.com/gpu: 2}", {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "2"}),
        ("{requests: {nvidia.com/gpu: 3}, limits: {nvidia.com/gpu: 3}}", {"nvidia.com/gpu": "3"}, {"nvidia.com/gpu": "3"}),
    ],
)
def test_explicit_resources_win_over_the_accelerator_count(
    tmp_path: Path, resources: str, requests: dict[str, str], limits: dict[str, str]
) -> None:
    spec = f"  resources: {{{resources}}}\n" if not resources.startswith("{") else f"  resources: {resources}\n"
    deployment = build(load_kubernetes(tmp_path, paddle(spec + IMAGE + "    accelerator: nvidia\n    acceleratorCount: 1\n")))
    found = container(deployment)["resources"]
    assert found["requests"] == {**DEFAULT_RESOURCES["requests"], **requests}
    assert found["limits"] == {**DEFAULT_RESOURCES["limits"], **limits}


def test_node_selector_and_tolerations_pass_through(tmp_path: Path) -> None:
    lines = (
        "    accelerator: nvidia\n"
        "    nodeSelector: {gpu-type: a100, zone: 'b'}\n"
        "    tolerations:\n"
        "    - {key: dedicated, operator: Equal, value: inference, effect: NoSchedule}\n"
        "    - {key: nvidia.com/gpu, operator: Exists}\n"  # the user's own GPU toleration: not doubled
    )
    deployment = build(load_kubernetes(tmp_path, paddle(IMAGE + lines)))
    assert pod(deployment)["nodeSelector"] == {"gpu-type": "a100", "zone": "b"}
    assert pod(deployment)["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists"},
    ]


# SimpleMLService

SIMPLEML = """\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata:
  name: mnist
spec:
{spec}
"""


def simpleml(spec: str) -> str:
    return SIMPLEML.format(spec=spec.rstrip("\n"))


def test_tensorflow_runs_tensorflow_serving_with_the_documented_command(tmp_path: Path) -> None:
    spec = (
        "  replicas: 3\n"
        "  storage: {s3: {secretName: s3, uri: 's3://models/mnist/', containerPath: /models/mnist}}\n"
        "  tensorflow:\n"
        "    image: t9kpublic/tensorflow-serving:2.6.0\n"
        "    resources: {requests: {cpu: 1, memory: 1Gi}}\n"
    )
    config = load_kubernetes(tmp_path, simpleml(spec))
    service = config.services[0]
    assert (service.scaling.min_scale, service.scaling.max_scale, service.scaling.autoscaler_class) == (3, 3, "fixed")
    deployment = build(config, replicas=service.scaling.min_scale)
    assert deployment["spec"]["replicas"] == 3
    served = container(deployment)
    assert served["name"] == "tensorflow"
    assert served["image"] == "t9kpublic/tensorflow-serving:2.6.0"
    assert served["command"] == ["/usr/bin/tensorflow_model_server"]
    assert served["args"] == ["--port=9090", "--rest_api_port=8080", "--model_name=mnist", "--model_base_path=/models/mnist"]
    assert served["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert served["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}


def test_pytorch_runs_torchserve_with_the_models_flag(tmp_path: Path) -> None:
    spec = "  pytorch:\n    image: example/torchserve:0.9\n    modelsFlag: resnet-18=resnet-18.mar\n"
    served = container(build(load_kubernetes(tmp_path, simpleml(spec))))
    assert (served["name"], served["command"]) == ("pytorch", ["torchserve"])
    assert served["args"] == ["--start", "--model-store=/var/lib/t9k/model", "--models", "resnet-18=resnet-18.mar"]


def test_service_ports_pick_the_served_port(tmp_path: Path) -> None:
    spec = "  tensorflow: {image: 't9kpublic/tensorflow-serving:2.6.0'}\n  service:\n    ports: [{name: http, port: 7070}]\n"
    served = container(build(load_kubernetes(tmp_path, simpleml(spec))))
    assert served["ports"] == [{"name": "http", "containerPort": 7070, "protocol": "TCP"}]
    assert served["readinessProbe"] == {"tcpSocket": {"port": 7070}, "periodSeconds": 1}


CUSTOM_POD = """\
  custom:
    spec:
      serviceAccountName: model-reader
      nodeSelector: {pool: inference}
      tolerations: [{key: dedicated, operator: Exists}]
      volumes: [{name: models, persistentVolumeClaim: {claimName: mnist}}]
      initContainers:
      - {name: fetch, image: 'busybox:1.36', command: [sh, -c, 'true']}
      containers:
      - name: user-container
        image: t9kpublic/tensorflow-serving:2.6.0
        command: [/usr/bin/tensorflow_model_server]
        args: [--port=9000, --rest_api_port=8080, --model_name=mnist, --model_base_path=/custom/path]
        volumeMounts: [{name: models, mountPath: /custom/path}]
        env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: s3, key: token}}}]
      - name: sidecar
        image: example/log-shipper:1
"""


def test_custom_pod_spec_is_kept_whole(tmp_path: Path) -> None:
    deployment = build(load_kubernetes(tmp_path, simpleml(CUSTOM_POD)))
    found = pod(deployment)
    assert found["serviceAccountName"] == "model-reader"
    assert found["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": "mnist"}}]
    assert found["initContainers"] == [{"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}]
    assert found["nodeSelector"] == {"pool": "inference"}
    assert found["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert found["containers"][1] == {"name": "sidecar", "image": "example/log-shipper:1"}
    served = found["containers"][0]
    assert served["volumeMounts"] == [{"name": "models", "mountPath": "/custom/path"}]
    assert served["env"] == [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "token"}}}]
    # What the gateway needs to route to it is added: the served port (8080 by default) and a probe.
    assert served["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert served["readinessProbe"] == {"tcpSocket": {"port": 8080}, "periodSeconds": 1}


def test_the_served_port_comes_first(tmp_path: Path) -> None:
    spec = (
        "  custom:\n    spec:\n      containers:\n      - name: server\n        image: example/server:1\n"
        "        ports: [{name: grpc, containerPort: 9000}, {name: web, containerPort: 8080}]\n"
    )
    served = container(build(load_kubernetes(tmp_path, simpleml(spec))))
    assert served["ports"] == [{"name": "web", "containerPort": 8080}, {"name": "grpc", "containerPort": 9000}]


def test_custom_pod_keeps_its_own_probe_and_ports(tmp_path: Path) -> None:
    spec = (
        "  custom:\n    spec:\n      containers:\n      - name: server\n        image: example/server:1\n"
        "        ports: [{name: web, containerPort: 8080}]\n"
        "        readinessProbe: {httpGet: {path: /ready, port: 8080}, initialDelaySeconds: 5}\n"
    )
    served = container(build(load_kubernetes(tmp_path, simpleml(spec))))
    assert served["ports"] == [{"name": "web", "containerPort": 8080}]
    assert served["readinessProbe"] == {"httpGet": {"path": "/ready", "port": 8080}, "initialDelaySeconds": 5}


# InferenceService

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  namespace: models
spec:
  predictor:
{predictor}
"""


def isvc(predictor: str) -> str:
    return ISVC.format(predictor=predictor.rstrip("\n"))


def test_predictor_containers_are_used_as_given(tmp_path: Path) -> None:
    predictor = (
        "    nodeSelector: {accelerator: t4}\n"
        "    containers:\n"
        "    - name: kserve-container\n"
        "      image: example/sklearn-server:1\n"
        "      args: [--model_name=iris, --http_port=8080]\n"
        "      env: [{name: STORAGE_URI, value: 'gs://bucket/iris'}]\n"
        "      resources: {limits: {cpu: '1', memory: 2Gi}}\n"
        "      ports: [{containerPort: 8080, protocol: TCP}]\n"
    )
    deployment = build(load_kubernetes(tmp_path, isvc(predictor)))
    served = container(deployment)
    assert served == {
        "name": "kserve-container",
        "image": "example/sklearn-server:1",
        "args": ["--model_name=iris", "--http_port=8080"],
        "env": [{"name": "STORAGE_URI", "value": "gs://bucket/iris"}],
        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    assert pod(deployment)["nodeSelector"] == {"accelerator": "t4"}
    assert deployment["metadata"]["namespace"] == "models"


def test_a_container_without_a_name_gets_kserves(tmp_path: Path) -> None:
    predictor = "    containers:\n    - image: example/server:1\n      ports: [{containerPort: 9000}]\n"
    served = container(build(load_kubernetes(tmp_path, isvc(predictor))))
    assert served == {
        "image": "example/server:1",
        "ports": [{"containerPort": 9000}],
        "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1},
        "name": "kserve-container",
    }


ONNX = "    model:\n      modelFormat: {name: onnx}\n      storageUri: file:///app/config/models/iris.onnx\n"


@pytest.mark.parametrize(
    "gateway, image",
    [
        ("", "serving-gateway:0.1.0"),
        (
            "  kubernetes:\n    modelServerImage: registry.example.com/ml/serving-gateway:0.2.0\n",
            "registry.example.com/ml/serving-gateway:0.2.0",
        ),
    ],
)
def test_onnx_predictor_runs_the_gateway_model_server(tmp_path: Path, gateway: str, image: str) -> None:
    predictor = ONNX + "      resources: {limits: {cpu: '2'}}\n"
    served = container(build(load_kubernetes(tmp_path, isvc(predictor), gateway)))
    assert served == {
        "name": "kserve-container",
        "image": image,
        "command": ["gateway", "modelserver"],
        "args": [
            "--model",
            "/app/config/models/iris.onnx",
            "--format",
            "onnx",
            "--name",
            "iris",
            "--port",
            "8080",
            "--host",
            "0.0.0.0",
        ],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "PORT", "value": "8080"}],
        "resources": {"limits": {"cpu": "2"}},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8080}, "periodSeconds": 1},
    }


def test_onnx_predictor_placement(tmp_path: Path) -> None:
    predictor = "    nodeSelector: {pool: cpu}\n    tolerations: [{key: spot, operator: Exists, effect: NoSchedule}]\n" + ONNX
    found = pod(build(load_kubernetes(tmp_path, isvc(predictor))))
    assert found["nodeSelector"] == {"pool": "cpu"}
    assert found["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]


def test_shipped_kubernetes_example_builds(tmp_path: Path) -> None:
    folder = Path(__file__).resolve().parents[2] / "config" / "examples" / "kubernetes"
    config = load([str(folder)])
    assert config.gateway.backend == "kubernetes"
    for service in config.services:
        for revision in service.revisions():
            assert_valid(build_deployment(service, revision, config.gateway.kubernetes, replicas=1))


# The service manifests of the documents the project started from (shared/seeds), as given there.
SEEDS = {
    "elasticserving_resnet": """\
apiVersion: v1
kind: Namespace
metadata:
  labels:
    istio-injection: enabled
  name: paddleservice-system
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: paddleservice-sample
  namespace: paddleservice-system
spec:
  canary:
    arg: cd Serving/python/examples/imagenet && python3 resnet50_web_service_canary.py
      ResNet50_vd_model cpu 9292
    containerImage: jinmionhaobaidu/resnetcanary
    port: 9292
    tag: latest
  canaryTrafficPercent: 50
  default:
    arg: cd Serving/python/examples/imagenet && python3 resnet50_web_service.py ResNet50_vd_model
      cpu 9292
    containerImage: jinmionhaobaidu/resnet
    port: 9292
    tag: latest
  runtimeVersion: paddleserving
  service:
    minScale: 0
    window: 10s
""",
    "elasticserving_lac": """\
apiVersion: v1
kind: Namespace
metadata:
  labels:
    istio-injection: enabled
  name: paddleservice-system
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: paddleservice-sample
  namespace: paddleservice-system
spec:
  canary:
    arg: python3 Serving/python/examples/lac/lac_web_service_canary.py lac_model/
      lac_workdir 9292
    containerImage: jinmionhaobaidu/pdservinglaccanary
    port: 9292
    tag: latest
  canaryTrafficPercent: 50
  default:
    arg: python3 Serving/python/examples/lac/lac_web_service.py lac_model/ lac_workdir
      9292
    containerImage: jinmionhaobaidu/pdservinglac
    port: 9292
    tag: latest
  runtimeVersion: paddleserving
  service:
    minScale: 0
    maxScale: 0
    autoscaler: "kpa"
    metric: "concurrency" # scaling metric
    window: "60s"
    panicWindow: 10 # percentage of stable window
    target: 100
    targetUtilization: 70
""",
    "elasticserving_manual_lac": """\
# lac.yaml
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: paddleservice-sample
  namespace: paddleservice-system
spec:
  default:
    arg: python3 -m paddle_serving_server.serve --model lac_model/ --port 9292
    containerImage: registry.baidubce.com/paddleflow-public/lac-serving
    port: 9292
    tag: latest
  runtimeVersion: paddleserving
  service:
    minScale: 1
""",
    "kserve_sklearn": """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    sklearn:
      storageUri: "gs://kfserving-samples/models/sklearn/iris"
""",
    "simpleml_tensorflow": """\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata:
  name: sample
spec:
  replicas: 1
  storage:
    s3:
      secretName: s3-secret
      uri: s3://models/mnist/
      containerPath: /var/lib/t9k/model
  tensorflow:
    image: t9kpublic/tensorflow-serving:2.6.0
    resources:
      requests:
        cpu: 1
        memory: 1Gi
""",
    "simpleml_custom": """\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata:
  name: pvc-custom
spec:
  replicas: 1
  storage:
    s3:
      secretName: s3-secret
      uri: s3://models/mnist/
      containerPath: /custom/path
  custom:
    spec:
      containers:
      - name: user-container
        args:
        - --port=9000
        - --rest_api_port=8080
        - --model_name=mnist
        - --model_base_path=/custom/path
        command:
        - /usr/bin/tensorflow_model_server
        image: "t9kpublic/tensorflow-serving:2.6.0"
""",
}

BUILDABLE_SEEDS = list(SEEDS)  # the KServe quick start too, now that its gs:// model is fetched


@pytest.mark.parametrize("name", BUILDABLE_SEEDS)
def test_each_seed_manifest_builds_valid_deployments(tmp_path: Path, name: str) -> None:
    config = load_kubernetes(tmp_path, SEEDS[name])
    built = [
        build_deployment(service, revision, config.gateway.kubernetes, replicas=1)
        for service in config.services
        for revision in service.revisions()
    ]
    assert built
    for deployment in built:
        assert_valid(deployment)
        assert container(deployment)["image"]


def test_seed_elasticserving_sample_runs_as_elasticserving_ran_it(tmp_path: Path) -> None:
    config = load_kubernetes(tmp_path, SEEDS["elasticserving_resnet"])
    canary = container(build(config, revision="canary"))
    assert canary["name"] == "paddleserving"
    assert canary["image"] == "jinmionhaobaidu/resnetcanary:latest"
    assert canary["command"] == ["/bin/bash", "-c"]
    assert canary["args"] == [
        "cd Serving/python/examples/imagenet && python3 resnet50_web_service_canary.py ResNet50_vd_model cpu 9292"
    ]
    assert canary["ports"][0]["containerPort"] == 9292
    assert canary["resources"] == DEFAULT_RESOURCES


def test_seed_simpleml_custom_keeps_its_container(tmp_path: Path) -> None:
    served = container(build(load_kubernetes(tmp_path, SEEDS["simpleml_custom"])))
    assert served["name"] == "user-container"
    assert served["command"] == ["/usr/bin/tensorflow_model_server"]
    assert served["args"] == ["--port=9000", "--rest_api_port=8080", "--model_name=mnist", "--model_base_path=/custom/path"]


def test_seed_sklearn_inference_service_fetches_its_model_first(tmp_path: Path) -> None:
    """KServe's quick start (a gs:// storageUri): an init container fetches it into /mnt/models (issue 12 item 3)."""
    deployment = build(load_kubernetes(tmp_path, SEEDS["kserve_sklearn"]))
    init = pod(deployment)["initContainers"][0]
    assert init["command"] == ["gateway", "storage-initializer"]
    assert init["args"] == ["gs://kfserving-samples/models/sklearn/iris", "/mnt/models"]
    served = container(deployment)
    assert served["args"][:4] == ["--model", "/mnt/models", "--format", "sklearn"]
    assert served["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True}]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["spec"].update(replica=1),  # an unknown field (strict schema)
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"port": 80}]),  # a wrong shape
        lambda d: d["spec"]["selector"]["matchLabels"].update(other="x"),  # a selector that selects nothing
        lambda d: d["spec"]["template"]["spec"]["containers"].append({"name": "paddleserving", "image": "x"}),
    ],
)
def test_the_validity_check_is_not_vacuous(tmp_path: Path, spoil: Any) -> None:
    deployment = build(load_kubernetes(tmp_path, paddle(IMAGE)))
    spoil(deployment)
    with pytest.raises((kubernetes_validate.ValidationError, AssertionError)):
        assert_valid(deployment)
