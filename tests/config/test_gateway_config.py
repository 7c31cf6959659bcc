from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import AutoscalerSettings, GatewaySettings, load
from tests.config.support import paddle, problems, write

HEAD = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\n"


def gateway(spec: str) -> str:
    indented = "".join(f"  {line}\n" for line in spec.strip("\n").splitlines())
    return f"{HEAD}spec:\n{indented}"


def test_defaults_without_a_gateway_config(tmp_path: Path) -> None:
    config = load([write(tmp_path, "x.yaml", paddle("foo"))])
    assert config.gateway == GatewaySettings()
    assert config.gateway.domain == "example.com"
    assert config.gateway.backend == "local"


def test_full_gateway_config(tmp_path: Path) -> None:
    text = gateway(
        """
domain: models.internal
listen: 127.0.0.1:0
adminListen: "[::1]:9191"
backend: static
redis: redis://localhost:6379/0
stateDir: state
autoscaler:
  stableWindow: 1m30s
  panicWindowPercentage: "20"
  panicThresholdPercentage: 300
  maxScaleUpRate: 10
  maxScaleDownRate: 4
  scaleToZeroGracePeriod: 45s
  scaleDownDelay: 2m
  targetBurstCapacity: -1
  containerConcurrencyTargetDefault: 50
  targetUtilization: 0.8
  requestsPerSecondTargetDefault: "150"
  enableScaleToZero: "false"
  initialScale: 0
  allowZeroInitialScale: true
  tickInterval: 500ms
activator:
  queueDepth: 100
  requestTimeout: 1m
  activationTimeout: 30
proxy:
  maxHeaderBytes: 32Ki
  maxBodyBytes: 1Mi
  headerTimeout: 5s
  keepaliveTimeout: 1m
  upstreamKeepaliveTimeout: 3s
  connectTimeout: 2s
  maxResponseHeaderBytes: 16Ki
  maxConnections: 5000
  trustedProxies: [10.0.0.0/8, "192.168.1.7", "fd00::/8"]
  sendTimeout: 20s
  bodyTimeout: 15s
  responseStartTimeout: 10m
  drainTimeout: 15s
"""
    )
    settings = load([write(tmp_path, "gw.yaml", text)]).gateway
    assert settings.domain == "models.internal"
    assert settings.listen == "127.0.0.1:0"
    assert settings.admin_listen == "[::1]:9191"
    assert settings.backend == "static"
    assert settings.redis == "redis://localhost:6379/0"
    assert settings.state_dir == str(tmp_path / "state")
    assert settings.autoscaler == AutoscalerSettings(
        stable_window=90.0,
        panic_window_percentage=20.0,
        panic_threshold_percentage=300.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=4.0,
        scale_to_zero_grace_period=45.0,
        scale_down_delay=120.0,
        target_burst_capacity=-1.0,
        container_concurrency_target_default=50.0,
        target_utilization=80.0,
        requests_per_second_target_default=150.0,
        enable_scale_to_zero=False,
        initial_scale=0,
        allow_zero_initial_scale=True,
        tick_interval=0.5,
    )
    assert settings.activator.queue_depth == 100
    assert settings.activator.request_timeout == 60.0
    assert settings.activator.activation_timeout == 30.0
    assert settings.proxy.max_header_bytes == 32 * 1024
    assert settings.proxy.max_body_bytes == 1024 * 1024
    assert settings.proxy.response_start_timeout == 600.0
    assert settings.proxy.upstream_keepalive_timeout == 3.0
    assert settings.proxy.max_response_header_bytes == 16 * 1024
    assert settings.proxy.max_connections == 5000
    assert settings.proxy.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32", "fd00::/8")
    assert settings.proxy.send_timeout == 20.0
    assert settings.proxy.body_timeout == 15.0


def test_empty_spec_gives_defaults(tmp_path: Path) -> None:
    config = load([write(tmp_path, "gw.yaml", HEAD)])
    assert config.gateway == GatewaySettings()
    assert config.services == ()


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.yaml", gateway("domian: x.com\nautoscaler:\n  stableWindw: 60s\n"))
    label = f"{path}: document 1 (GatewayConfig)"
    assert problems([path]) == [
        f"{label}: spec.domian: unknown key (did you mean domain?)",
        f"{label}: spec.autoscaler.stableWindw: unknown key (did you mean stableWindow?)",
    ]


def test_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.yaml", gateway("activator:\n  zzz: 1\n"))
    assert problems([path]) == [
        (
            f"{path}: document 1 (GatewayConfig): spec.activator.zzz: unknown key; "
            "expected one of: queueDepth, requestTimeout, activationTimeout"
        )
    ]


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.yaml", HEAD + "sepc: {}\n")
    (found,) = problems([path])
    assert found == f"{path}: document 1 (GatewayConfig): sepc: unknown key (did you mean spec?)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("autoscaler:\n  stableWindow: 5s", "spec.autoscaler.stableWindow: must be 6s..1h, got 5s"),
        ("autoscaler:\n  stableWindow: 2h", "spec.autoscaler.stableWindow: must be 6s..1h, got 2h"),
        (
            "autoscaler:\n  stableWindow: 6500ms",
            "spec.autoscaler.stableWindow: must be whole seconds, got 6500ms",
        ),
        (
            "autoscaler:\n  stableWindow: abc",
            "spec.autoscaler.stableWindow: must be a duration like 60s, got 'abc'",
        ),
        (
            "autoscaler:\n  stableWindow: 10x",
            "spec.autoscaler.stableWindow: must be a duration like 60s, got '10x'",
        ),
        (
            "autoscaler:\n  panicWindowPercentage: 0",
            "spec.autoscaler.panicWindowPercentage: must be 1..100, got 0",
        ),
        (
            "autoscaler:\n  panicWindowPercentage: 101",
            "spec.autoscaler.panicWindowPercentage: must be 1..100, got 101",
        ),
        ("autoscaler:\n  maxScaleUpRate: 1", "spec.autoscaler.maxScaleUpRate: must be > 1, got 1"),
        ("autoscaler:\n  maxScaleDownRate: 0.5", "spec.autoscaler.maxScaleDownRate: must be > 1, got 0.5"),
        (
            "autoscaler:\n  targetBurstCapacity: -2",
            "spec.autoscaler.targetBurstCapacity: must be >= 0 or -1, got -2",
        ),
        (
            "autoscaler:\n  scaleToZeroGracePeriod: 0s",
            "spec.autoscaler.scaleToZeroGracePeriod: must be > 0, got 0s",
        ),
        ("autoscaler:\n  scaleDownDelay: -1s", "spec.autoscaler.scaleDownDelay: must be >= 0s, got -1s"),
        (
            "autoscaler:\n  targetUtilization: 150",
            "spec.autoscaler.targetUtilization: must be in (0, 100], got 150",
        ),
        (
            "autoscaler:\n  containerConcurrencyTargetDefault: 0",
            "spec.autoscaler.containerConcurrencyTargetDefault: must be >= 0.01, got 0",
        ),
        (
            "autoscaler:\n  enableScaleToZero: yes please",
            "spec.autoscaler.enableScaleToZero: must be true or false, got 'yes please'",
        ),
        (
            "autoscaler:\n  initialScale: 0",
            "spec.autoscaler.initialScale: must be >= 1 unless allowZeroInitialScale is true, got 0",
        ),
        (
            "autoscaler:\n  tickInterval: soon",
            "spec.autoscaler.tickInterval: must be a duration like 60s, got 'soon'",
        ),
        ("activator:\n  queueDepth: 0", "spec.activator.queueDepth: must be >= 1, got 0"),
        ("activator:\n  requestTimeout: 0", "spec.activator.requestTimeout: must be > 0, got 0"),
        (
            "proxy:\n  maxBodyBytes: lots",
            "spec.proxy.maxBodyBytes: must be a byte size like 65536 or 64Ki, got 'lots'",
        ),
        ("proxy:\n  connectTimeout: 1y", "spec.proxy.connectTimeout: must be a duration like 60s, got '1y'"),
        (
            "proxy:\n  maxConnections: 0",
            "spec.proxy.maxConnections: must be >= 1, got 0 (leave it out to derive it from the open-file limit)",
        ),
        ("proxy:\n  maxConnections: -5", "spec.proxy.maxConnections: must be >= 1, got -5"),
        ("proxy:\n  bodyTimeout: never", "spec.proxy.bodyTimeout: must be a duration like 60s, got 'never'"),
        (
            "proxy:\n  maxResponseHeaderBytes: big",
            "spec.proxy.maxResponseHeaderBytes: must be a byte size like 65536 or 64Ki, got 'big'",
        ),
        (
            "proxy:\n  trustedProxies: [10.0.0.0/8, 10.0.0.300]",
            "spec.proxy.trustedProxies[1]: must be an IP address or CIDR such as 10.0.0.0/8, got '10.0.0.300'",
        ),
        ("proxy:\n  trustedProxies: 10.0.0.0/8", "spec.proxy.trustedProxies: must be a list, got '10.0.0.0/8'"),
        ("proxy:\n  sendTimeout: 0s", "spec.proxy.sendTimeout: must be > 0, got 0s"),
        ("listen: localhost", "spec.listen: must be HOST:PORT like 0.0.0.0:8080, got 'localhost'"),
        (
            "adminListen: 1.2.3.4:99999",
            "spec.adminListen: must be HOST:PORT like 0.0.0.0:8080, got '1.2.3.4:99999'",
        ),
        ("backend: docker", "spec.backend: must be one of local, kubernetes, static, got 'docker'"),
        (
            "redis: localhost:6379",
            "spec.redis: must be a redis://HOST:PORT URL (or rediss:// for TLS, unix:///path for a socket), got 'localhost:6379'",
        ),
        ("redis: redis://h:99999", "spec.redis: has a port that is not a number in 1..65535, got 'redis://h:99999'"),
        ("redis: redis://:6379", "spec.redis: must name a host: redis://HOST:PORT, got 'redis://:6379'"),
        (
            "redis: redis://h:6379/cache",
            "spec.redis: may end with a database number (redis://HOST:PORT/0), nothing else, got 'redis://h:6379/cache'",
        ),
        ("redis: 'unix://'", "spec.redis: must name the socket: unix:///path/to/redis.sock, got 'unix://'"),
        ("redis: 6379", "spec.redis: must be a redis://HOST:PORT URL, got 6379"),
        (
            "domain: Example.COM",
            "spec.domain: must be a lowercase DNS name like example.com, got 'Example.COM'",
        ),
        ("autoscaler: [1, 2]", "spec.autoscaler: must be a mapping, got a list"),
    ],
)
def test_invalid_values(tmp_path: Path, spec: str, message: str) -> None:
    path = write(tmp_path, "gw.yaml", gateway(spec))
    assert problems([path]) == [f"{path}: document 1 (GatewayConfig): {message}"]


def test_spec_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.yaml", HEAD + "spec: [domain]\n")
    assert problems([path]) == [f"{path}: document 1 (GatewayConfig): spec: must be a mapping, got a list"]


def test_two_gateway_configs_name_both_documents(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", gateway("domain: a.com"))
    second = write(tmp_path, "b.yaml", paddle("foo") + "---\n" + gateway("domain: b.com"))
    assert problems([first, second]) == [
        (
            f"{second}: document 2 (GatewayConfig): only one GatewayConfig is allowed; "
            f"the first is {first}: document 1 (GatewayConfig)"
        )
    ]


def test_gateway_config_after_the_services_still_applies(tmp_path: Path) -> None:
    services = write(tmp_path, "a.yaml", paddle("foo", "default:\n  endpoints: [http://10.0.0.1:80]\n"))
    settings = write(tmp_path, "z.yaml", gateway("backend: static\ndomain: svc.local"))
    config = load([services, settings])
    assert config.gateway.backend == "static"
    assert config.gateway.domain == "svc.local"
    assert config.services[0].default.endpoints == ("http://10.0.0.1:80",)


@pytest.mark.parametrize(
    "url", ["redis://10.0.0.1:6379", "redis://:secret@redis:6379/2", "rediss://r.example:6380", "unix:///run/r.sock"]
)
def test_redis_urls_are_accepted_as_given(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, "gw.yaml", f"apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  redis: '{url}'\n")
    config = load([path])
    assert config.gateway.redis == url and not config.warnings


def test_knative_name_for_target_utilization_is_accepted(tmp_path: Path) -> None:
    body = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  autoscaler:\n    containerConcurrencyTargetPercentage: 80\n"
    assert load([write(tmp_path, "gw.yaml", body)]).gateway.autoscaler.target_utilization == 80.0
