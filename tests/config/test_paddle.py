from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.autoscale.settings import RevisionScaling
from gateway.config import ScalingSpec, load
from gateway.config.model import AutoscalerSettings
from tests.config.support import one_service, paddle, problems, write

LABEL = "document 1 (PaddleService/foo)"
COMMAND = "  command: [python, serve.py, '{port}']\n"


def test_elasticserving_defaults(tmp_path: Path) -> None:
    spec = "default:\n" + COMMAND + "canary:\n" + COMMAND
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    assert service.namespace == "default"
    assert service.canary_percent == 50
    assert service.scaling == ScalingSpec(
        min_scale=0,
        max_scale=0,
        autoscaler_class="kpa",
        metric="concurrency",
        target=100.0,
        container_concurrency=100,
    )
    effective = RevisionScaling.resolve(AutoscalerSettings(), service.scaling)
    assert effective.stable_window == 60.0
    assert effective.panic_window == 6.0  # panicWindow 10 % of 60 s
    assert effective.panic_threshold == 2.0  # panicThreshold 200 %
    assert effective.total_value == 100.0 and effective.target_value == 70.0  # target 100, utilisation 70 %
    limits = {"cpu": "0.2", "memory": "512Mi"}
    assert service.default.resources == {"requests": limits, "limits": limits}
    assert service.canary is not None and service.canary.resources == service.default.resources
    assert service.backend is None
    assert service.timeout is None


def test_gateway_autoscaler_settings_reach_services_that_do_not_set_them(tmp_path: Path) -> None:
    gateway = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  autoscaler:\n    stableWindow: 20s\n---\n"
    config = load([write(tmp_path, "x.yaml", gateway + paddle("foo"))])
    effective = RevisionScaling.resolve(config.gateway.autoscaler, one_service(config).scaling)
    assert effective.stable_window == 20.0 and effective.panic_window == 2.0


def test_no_canary_means_zero_percent(tmp_path: Path) -> None:
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo"))]))
    assert service.canary is None
    assert service.canary_percent == 0
    assert [r.name for r in service.revisions()] == ["default"]


def test_elasticserving_revision_keys(tmp_path: Path) -> None:
    spec = """\
    default:
      containerImage: registry/resnet
      tag: "1.0"
      port: "9292"
      arg: cd Serving && python3 web_service.py 9292
      command: python3 web_service.py {port}
    """
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    default = service.default
    assert default.image == "registry/resnet:1.0"
    assert default.container_command == ("/bin/bash", "-c")
    assert default.args == ("cd Serving && python3 web_service.py 9292",)
    assert default.container_port == 9292
    assert default.command == "python3 web_service.py {port}"
    assert default.workdir == str(tmp_path)


def test_gateway_revision_keys(tmp_path: Path) -> None:
    spec = """\
    default:
      command: ["{python}", -m, gateway, modelserver, --port, "{port}"]
      readinessPath: /v2/health/ready
      env: {MODEL: iris, THREADS: 4, DEBUG: true}
      workdir: models
      accelerator: kunlun
      acceleratorCount: "2"
      nodeSelector: {pool: xpu}
      tolerations: [{key: xpu, operator: Exists, effect: NoSchedule}]
    canary:
      command: python serve.py
      env: [{name: MODEL, value: iris2}]
      accelerator: nvidia.com/gpu
    """
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    default = service.default
    assert default.command == ("{python}", "-m", "gateway", "modelserver", "--port", "{port}")
    assert default.readiness_path == "/v2/health/ready"
    assert default.env == (("MODEL", "iris"), ("THREADS", "4"), ("DEBUG", "true"))
    assert default.workdir == os.path.join(str(tmp_path), "models")
    assert default.accelerator == "kunlun"
    assert default.accelerator_count == 2
    assert default.node_selector == (("pool", "xpu"),)
    assert default.tolerations == ({"key": "xpu", "operator": "Exists", "effect": "NoSchedule"},)
    assert service.canary is not None
    assert service.canary.env == (("MODEL", "iris2"),)
    assert service.canary.accelerator == "nvidia.com/gpu"
    assert service.canary.accelerator_count == 1


def test_missing_default(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", "canary:\n" + COMMAND))
    assert problems([path]) == [f"{path}: {LABEL}: spec.default: required"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("150", "must be 0..100, got 150"),
        ("-1", "must be 0..100, got -1"),
        ("abc", "must be an integer 0..100, got 'abc'"),
        ("12.5", "must be an integer 0..100, got 12.5"),
        ('"101"', "must be 0..100, got 101"),
        ("[50]", "must be an integer 0..100, got a list"),
    ],
)
def test_canary_percent_out_of_range(tmp_path: Path, value: str, message: str) -> None:
    spec = f"canaryTrafficPercent: {value}\ndefault:\n{COMMAND}canary:\n{COMMAND}"
    path = write(tmp_path, "x.yaml", paddle("foo", spec))
    assert problems([path]) == [f"{path}: {LABEL}: spec.canaryTrafficPercent: {message}"]


def test_canary_percent_as_string_and_zero(tmp_path: Path) -> None:
    spec = f"canaryTrafficPercent: '30'\ndefault:\n{COMMAND}canary:\n{COMMAND}"
    assert one_service(load([write(tmp_path, "a.yaml", paddle("foo", spec))])).canary_percent == 30
    spec = f"canaryTrafficPercent: 0\ndefault:\n{COMMAND}canary:\n{COMMAND}"
    assert one_service(load([write(tmp_path, "b.yaml", paddle("foo", spec))])).canary_percent == 0


def test_canary_percent_without_canary(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", f"canaryTrafficPercent: 20\ndefault:\n{COMMAND}"))
    assert problems([path]) == [f"{path}: {LABEL}: spec.canaryTrafficPercent: given (20) without spec.canary"]


def test_service_section(tmp_path: Path) -> None:
    spec = """\
    default:
      command: x
    service:
      minScale: 1
      maxScale: "5"
      autoscaler: kpa.autoscaling.knative.dev
      metric: rps
      window: 1m30s
      panicWindow: "20"
      panicThreshold: "300"
      target: "50"
      targetUtilization: "80"
    """
    scaling = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))])).scaling
    assert scaling == ScalingSpec(
        min_scale=1,
        max_scale=5,
        autoscaler_class="kpa",
        metric="rps",
        target=50.0,
        container_concurrency=50,
        target_utilization=80.0,
        stable_window=90.0,
        panic_window_percentage=20.0,
        panic_threshold_percentage=300.0,
    )


def test_target_zero_means_unlimited_concurrency(tmp_path: Path) -> None:
    spec = f"default:\n{COMMAND}service:\n  target: 0\n"
    scaling = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))])).scaling
    assert scaling.container_concurrency == 0
    assert scaling.target is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kpa", "kpa"),
        ("kpa.autoscaling.knative.dev", "kpa"),
        ("hpa.autoscaling.knative.dev", "hpa"),
        ("hpa", "hpa"),
    ],
)
def test_autoscaler_classes(tmp_path: Path, value: str, expected: str) -> None:
    spec = f"default:\n{COMMAND}service:\n  autoscaler: {value}\n"
    assert one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))])).scaling.autoscaler_class == expected


def test_unknown_autoscaler_class(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", f"default:\n{COMMAND}service:\n  autoscaler: foo\n"))
    assert problems([path]) == [
        (
            f"{path}: {LABEL}: spec.service.autoscaler: must be one of kpa.autoscaling.knative.dev, "
            "hpa.autoscaling.knative.dev, kpa, hpa, got 'foo'"
        )
    ]


def test_cpu_metric_is_a_warning_for_hpa_and_an_error_for_kpa(tmp_path: Path) -> None:
    hpa = write(tmp_path, "a.yaml", paddle("foo", f"default:\n{COMMAND}service:\n  autoscaler: hpa\n  metric: cpu\n"))
    config = load([hpa])
    assert config.services[0].scaling.metric == "concurrency"
    assert config.warnings == (
        (f"{hpa}: {LABEL}: spec.service.metric: cpu is measured by Kubernetes' HPA, not by the gateway; scaling on concurrency"),
    )
    kpa = write(tmp_path, "b.yaml", paddle("foo", f"default:\n{COMMAND}service:\n  metric: cpu\n"))
    assert problems([kpa]) == [
        f"{kpa}: {LABEL}: spec.service.metric: must be concurrency or rps for the kpa autoscaler, got 'cpu'"
    ]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            "minScale: 3\n  maxScale: 2",
            "spec.service.maxScale: must be 0 (unbounded) or >= the minimum scale 3, got 2",
        ),
        ("minScale: -1", "spec.service.minScale: must be >= 0, got -1"),
        ("window: abc", "spec.service.window: must be a duration like 60s, got 'abc'"),
        ("window: 5s", "spec.service.window: must be 6s..1h, got 5s"),
        ("window: 6500ms", "spec.service.window: must be whole seconds, got 6500ms"),
        ("panicWindow: '0'", "spec.service.panicWindow: must be 1..100, got 0"),
        ("panicThreshold: '100'", "spec.service.panicThreshold: must be 110..1000, got 100"),
        (
            "targetUtilization: 'seventy'",
            "spec.service.targetUtilization: must be a number 1..100, got 'seventy'",
        ),
        ("target: -5", "spec.service.target: must be >= 0, got -5"),
        (
            "metric: latency",
            "spec.service.metric: must be one of concurrency, rps, cpu, memory, got 'latency'",
        ),
    ],
)
def test_invalid_service_values(tmp_path: Path, service: str, message: str) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", f"default:\n{COMMAND}service:\n  {service}\n"))
    assert problems([path]) == [f"{path}: {LABEL}: {message}"]


def test_max_scale_zero_is_unbounded_whatever_min_scale(tmp_path: Path) -> None:
    spec = f"default:\n{COMMAND}service:\n  minScale: 3\n  maxScale: 0\n"
    scaling = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))])).scaling
    assert (scaling.min_scale, scaling.max_scale) == (3, 0)


def test_annotations_override_spec(tmp_path: Path) -> None:
    meta = """\
  annotations:
    autoscaling.knative.dev/min-scale: "2"
    autoscaling.knative.dev/maxScale: "8"
    autoscaling.knative.dev/target: "7"
    autoscaling.knative.dev/metric: rps
    autoscaling.knative.dev/window: 2m
    autoscaling.knative.dev/panic-window-percentage: "5"
    autoscaling.knative.dev/panicThresholdPercentage: "400"
    autoscaling.knative.dev/target-utilization-percentage: "90"
    autoscaling.knative.dev/target-burst-capacity: "-1"
    autoscaling.knative.dev/initial-scale: "0"
    autoscaling.knative.dev/scale-down-delay: 30s
    autoscaling.knative.dev/class: hpa.autoscaling.knative.dev
    example.com/owner: someone
"""
    spec = f"default:\n{COMMAND}service:\n  minScale: 1\n  maxScale: 3\n  target: 20\n"
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec, extra_meta=meta))]))
    assert service.scaling == ScalingSpec(
        min_scale=2,
        max_scale=8,
        autoscaler_class="hpa",
        metric="rps",
        target=7.0,
        container_concurrency=20,
        target_utilization=90.0,
        stable_window=120.0,
        panic_window_percentage=5.0,
        panic_threshold_percentage=400.0,
        target_burst_capacity=-1.0,
        initial_scale=0,
        scale_down_delay=30.0,
    )


def test_bad_and_unknown_annotations(tmp_path: Path) -> None:
    meta = """\
  annotations:
    autoscaling.knative.dev/max-scale: many
    autoscaling.knative.dev/metric-aggregation-algorithm: weighted-exponential
"""
    path = write(tmp_path, "x.yaml", paddle("foo", extra_meta=meta))
    assert problems([path]) == [
        (f"{path}: {LABEL}: metadata.annotations[autoscaling.knative.dev/max-scale]: must be an integer >= 0, got 'many'")
    ]
    ok = write(tmp_path, "ok.yaml", paddle("foo", extra_meta=meta.replace("many", "4")))
    assert load([ok]).warnings == (
        (
            f"{ok}: {LABEL}: metadata.annotations[autoscaling.knative.dev/metric-aggregation-algorithm]: "
            "autoscaling annotation not supported by the gateway, ignored"
        ),
    )


def test_annotation_max_below_spec_min_names_the_annotation(tmp_path: Path) -> None:
    meta = '  annotations:\n    autoscaling.knative.dev/max-scale: "1"\n'
    spec = f"default:\n{COMMAND}service:\n  minScale: 2\n"
    path = write(tmp_path, "x.yaml", paddle("foo", spec, extra_meta=meta))
    assert problems([path]) == [
        (
            f"{path}: {LABEL}: metadata.annotations[autoscaling.knative.dev/max-scale]: "
            "must be 0 (unbounded) or >= the minimum scale 2, got 1"
        )
    ]


@pytest.mark.parametrize(
    ("name", "namespace", "path_and_value"),
    [
        (
            "Foo",
            None,
            "metadata.name: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got 'Foo'",
        ),
        (
            "foo_bar",
            None,
            "metadata.name: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got 'foo_bar'",
        ),
        (
            "a" * 64,
            None,
            f"metadata.name: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got '{'a' * 64}'",
        ),
        (
            "foo",
            "Team.A",
            "metadata.namespace: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got 'Team.A'",
        ),
        (
            "-foo",
            None,
            "metadata.name: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got '-foo'",
        ),
    ],
)
def test_names_must_be_dns_labels(tmp_path: Path, name: str, namespace: str | None, path_and_value: str) -> None:
    path = write(tmp_path, "x.yaml", paddle(name, namespace=namespace))
    assert problems([path]) == [f"{path}: document 1 (PaddleService/{name}): {path_and_value}"]


def test_name_is_required(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo").replace("  name: foo\n", "  namespace: team\n"))
    assert problems([path]) == [f"{path}: document 1 (PaddleService): metadata.name: required"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata: [foo]", "metadata: must be a mapping, got a list"),
        ("metadata: foo", "metadata: must be a mapping, got 'foo'"),
        ("spec: [default]", "spec: must be a mapping, got a list"),
        ("spec: 3", "spec: must be a mapping, got 3"),
    ],
)
def test_wrong_types_at_the_top(tmp_path: Path, text: str, message: str) -> None:
    doc = paddle("foo")
    key = text.split(":")[0]
    if key == "metadata":
        doc = doc.replace("metadata:\n  name: foo\n", text + "\n")
        label = "document 1 (PaddleService)"
    else:
        doc = doc[: doc.index("spec:")] + text + "\n"
        label = LABEL
    path = write(tmp_path, "x.yaml", doc)
    assert problems([path]) == [f"{path}: {label}: {message}"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("default: python serve.py", "spec.default: must be a mapping, got 'python serve.py'"),
        ("default:\n  command: {run: x}", "spec.default.command: must be a list, got a mapping"),
        ("default:\n  command: []", "spec.default.command: must not be empty"),
        ("default:\n  command: [python, [x]]", "spec.default.command[1]: must be a string, got a list"),
        (
            "default:\n  command: x\n  env: 5",
            "spec.default.env: must be a mapping or a list of {name, value}, got 5",
        ),
        ("default:\n  command: x\n  env: {A: [1]}", "spec.default.env.A: must be a string, got a list"),
        (
            "default:\n  command: x\n  nodeSelector: [a]",
            "spec.default.nodeSelector: must be a mapping, got a list",
        ),
        (
            "default:\n  command: x\n  tolerations: {key: a}",
            "spec.default.tolerations: must be a list, got a mapping",
        ),
        (
            "default:\n  command: x\n  tolerations: [a]",
            "spec.default.tolerations[0]: must be a mapping, got 'a'",
        ),
        (
            "default:\n  command: x\n  port: http",
            "spec.default.port: must be an integer 1..65535, got 'http'",
        ),
        ("default:\n  command: x\nservice: [1]", "spec.service: must be a mapping, got a list"),
        (
            "default:\n  command: x\nresources: {requests: {cpu: lots}}",
            "spec.resources.requests.cpu: must be a quantity like 512Mi or 0.5, got 'lots'",
        ),
        ("default:\n  command: x\nresources: {limits: 1}", "spec.resources.limits: must be a mapping, got 1"),
        (
            "default:\n  command: x\ntimeout: forever",
            "spec.timeout: must be a duration like 60s, got 'forever'",
        ),
        (
            "default:\n  command: x\nbackend: docker",
            "spec.backend: must be one of local, kubernetes, static, got 'docker'",
        ),
        ("default:\n  command: x\nruntimeVersion: [1]", "spec.runtimeVersion: must be a string, got a list"),
        ("default:\n  tag: latest\n  command: x", "spec.default.tag: given without containerImage"),
        (
            "default:\n  command: x\n  containerImage: a\n  image: b",
            "spec.default.image: give either containerImage (with tag) or image, not both",
        ),
        (
            "default:\n  command: x\n  acceleratorCount: 2",
            "spec.default.acceleratorCount: given without accelerator",
        ),
        (
            "default:\n  command: x\n  accelerator: amd",
            "spec.default.accelerator: must be nvidia, kunlun or a resource name like nvidia.com/gpu, got 'amd'",
        ),
        (
            "default:\n  command: x\n  accelerator: nvidia\n  acceleratorCount: 0",
            "spec.default.acceleratorCount: must be >= 1, got 0",
        ),
        (
            "default:\n  command: x\n  readinessPath: healthz",
            "spec.default.readinessPath: must be a URL path starting with /, got 'healthz'",
        ),
        (
            "default:\n  command: x\n  endpoints: http://a:1",
            "spec.default.endpoints: must be a list, got 'http://a:1'",
        ),
        ("default:\n  command: x\n  endpoints: []", "spec.default.endpoints: must list at least one URL"),
        (
            "default:\n  command: x\n  endpoints: ['ftp://a:1']",
            "spec.default.endpoints[0]: must be an http base URL like http://10.0.0.5:8000, got 'ftp://a:1'",
        ),
        (
            "default:\n  command: x\n  endpoints: ['http://a:99999']",
            "spec.default.endpoints[0]: must be an http base URL like http://10.0.0.5:8000, got 'http://a:99999'",
        ),
        (
            "default:\n  command: x\n  endpoints: ['http://a:1/?q=1']",
            "spec.default.endpoints[0]: must be an http base URL like http://10.0.0.5:8000, got 'http://a:1/?q=1'",
        ),
        (
            "default:\n  command: x\n  endpoints: ['https://a:1']",
            "spec.default.endpoints[0]: https endpoints are not supported (the gateway speaks plain HTTP to replicas), got 'https://a:1'",
        ),
        (
            "default:\n  command: x\n  endpoints: ['http://a:1/v1']",
            "spec.default.endpoints[0]: must be a base URL without a path (the request's own path is forwarded), got 'http://a:1/v1'",
        ),
    ],
)
def test_invalid_revision_and_spec_values(tmp_path: Path, spec: str, message: str) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", spec + "\n"))
    assert problems([path]) == [f"{path}: {LABEL}: {message}"]


def test_several_problems_in_one_document_are_all_reported(tmp_path: Path) -> None:
    spec = """\
    canaryTrafficPercent: 150
    default:
      command: x
      accelerator: amd
    canary:
      command: y
      endpoints: [nope]
    service:
      window: abc
    """
    path = write(tmp_path, "x.yaml", paddle("foo", spec))
    assert [p.split(": ", 3)[2] for p in problems([path])] == [
        "spec.default.accelerator",
        "spec.canary.endpoints[0]",
        "spec.canaryTrafficPercent",
        "spec.service.window",
    ]


def test_unknown_keys_in_a_paddleservice_are_warnings(tmp_path: Path) -> None:
    spec = "default:\n  command: x {port}\n  comand: y\nservce: {}\nvolumes: []\n"
    path = write(tmp_path, "x.yaml", paddle("foo", spec) + "extra: 1\n")
    config = load([path])
    assert config.warnings == (
        f"{path}: {LABEL}: extra: unknown key, ignored",
        f"{path}: {LABEL}: spec.servce: unknown key, ignored (did you mean service?)",
        f"{path}: {LABEL}: spec.volumes: not supported by the gateway, ignored",
        f"{path}: {LABEL}: spec.default.comand: unknown key, ignored (did you mean command?)",
    )


def test_resources_fill_elasticserving_defaults(tmp_path: Path) -> None:
    spec = "default:\n  command: x\nresources:\n  requests: {cpu: '1'}\n  limits: {nvidia.com/gpu: 1}\n"
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    assert service.default.resources == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        # ElasticServing would fill cpu 0.2 here, a limit under the request that the API server refuses
        "limits": {"nvidia.com/gpu": "1", "cpu": "1", "memory": "512Mi"},
    }


def test_backend_and_timeout(tmp_path: Path) -> None:
    spec = "backend: static\ntimeout: 1m\ndefault:\n  endpoints: ['http://10.0.0.1:8000/']\n"
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    assert service.backend == "static"
    assert service.timeout == 60.0
    assert service.default.endpoints == ("http://10.0.0.1:8000",)


def test_activation_scale_annotation_reaches_the_decider(tmp_path: Path) -> None:
    meta = '  annotations:\n    autoscaling.knative.dev/activation-scale: "3"\n'
    text = paddle("foo").replace("metadata:\n  name: foo\n", "metadata:\n  name: foo\n" + meta)
    service = one_service(load([write(tmp_path, "x.yaml", text)]))
    assert service.scaling.activation_scale == 3
    assert RevisionScaling.resolve(AutoscalerSettings(), service.scaling).decider_spec().activation_scale == 3


@pytest.mark.parametrize(
    "value, message",
    [
        ("1", "must be >= 2, got 1"),
        ("9", "must be within the scale bounds (0..4), got 9"),
    ],
)
def test_activation_scale_is_checked(tmp_path: Path, value: str, message: str) -> None:
    meta = f'  annotations:\n    autoscaling.knative.dev/activation-scale: "{value}"\n'
    text = paddle("foo", "default:\n  command: x\nservice:\n  maxScale: 4\n").replace(
        "metadata:\n  name: foo\n", "metadata:\n  name: foo\n" + meta
    )
    path = write(tmp_path, "x.yaml", text)
    assert problems([path]) == [f"{path}: {LABEL}: metadata.annotations[autoscaling.knative.dev/activation-scale]: {message}"]


def test_rps_metric_without_target_uses_knatives_rps_default(tmp_path: Path) -> None:
    spec = "default:\n  command: x\nservice:\n  metric: rps\n"
    service = one_service(load([write(tmp_path, "x.yaml", paddle("foo", spec))]))
    assert service.scaling.metric == "rps"
    assert service.scaling.target is None and service.scaling.container_concurrency == 0
    effective = RevisionScaling.resolve(AutoscalerSettings(), service.scaling)
    assert effective.total_value == 200.0 and effective.target_value == pytest.approx(140.0)
    explicit = one_service(load([write(tmp_path, "y.yaml", paddle("foo", spec + "  target: 50\n"))]))
    assert explicit.scaling.target == 50.0 and explicit.scaling.container_concurrency == 50


def test_pod_retention_from_annotation_and_gateway_config(tmp_path: Path) -> None:
    meta = "  annotations:\n    autoscaling.knative.dev/scale-to-zero-pod-retention-period: 2m\n"
    gateway = (
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  autoscaler:\n    scaleToZeroPodRetentionPeriod: 30s\n---\n"
    )
    config = load([write(tmp_path, "x.yaml", gateway + paddle("foo", extra_meta=meta) + "---\n" + paddle("bar"))])
    settings = config.gateway.autoscaler
    assert settings.scale_to_zero_pod_retention_period == 30.0
    foo = RevisionScaling.resolve(settings, one_service(config, "foo").scaling)
    bar = RevisionScaling.resolve(settings, one_service(config, "bar").scaling)
    assert foo.scale_to_zero_pod_retention == 120.0 and bar.scale_to_zero_pod_retention == 30.0
    bad = write(tmp_path, "bad.yaml", paddle("foo", extra_meta=meta.replace("2m", "2h")))
    assert problems([bad]) == [
        f"{bad}: {LABEL}: metadata.annotations[autoscaling.knative.dev/scale-to-zero-pod-retention-period]: "
        "must be 0s..1h, got 2h"
    ]


@pytest.mark.parametrize(
    "spec, key, where",
    [
        ("default:\n  command: x {port}\ntarget: 5\n", "spec.target", "spec.service.target"),
        ("default:\n  command: x {port}\n  minScale: 1\n", "spec.default.minScale", "spec.service.minScale"),
        (
            "default:\n  command: x {port}\nservice:\n  containerImage: a\n",
            "spec.service.containerImage",
            "spec.default.containerImage",
        ),
        (
            "default:\n  command: x {port}\n  canaryTrafficPercent: 5\n",
            "spec.default.canaryTrafficPercent",
            "spec.canaryTrafficPercent",
        ),
    ],
)
def test_a_key_at_the_wrong_level_is_pointed_to_where_it_belongs(tmp_path: Path, spec: str, key: str, where: str) -> None:
    config = load([write(tmp_path, "x.yaml", paddle("foo", spec))])
    assert any(w.endswith(f"{key}: unknown key, ignored (did you mean {where}?)") for w in config.warnings), config.warnings
