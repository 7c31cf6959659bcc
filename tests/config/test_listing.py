from __future__ import annotations

from pathlib import Path

from gateway.config import load, routing_table
from tests.config.support import paddle, write


def test_routing_table_lists_hosts_revisions_and_warnings(tmp_path: Path) -> None:
    spec = """\
    canaryTrafficPercent: 20
    default:
      command: python a.py --port {port}
    canary:
      containerImage: registry/b
    service:
      minScale: 1
      maxScale: 4
      target: 0
    """
    path = write(tmp_path, "x.yaml", paddle("foo", spec, namespace="team"))
    table = routing_table(load([path]))
    lines = table.splitlines()
    assert lines[0].startswith("domain example.com, backend local, listen 0.0.0.0:8080")
    host_line = next(line for line in lines if line.startswith("foo.team.example.com"))
    assert host_line.split() == [
        "foo.team.example.com",
        "foo-default",
        "80%",
        "local",
        "1..4",
        "kpa",
        "100",
        "concurrency",
        "(default)",
        "/",
        "concurrency",
        "unlimited",
    ]
    canary_line = next(line for line in lines if "foo-canary" in line and "20%" in line)
    assert canary_line.split() == ["foo-canary", "20%"]
    assert any(line.split() == ["default-foo.team.example.com", "foo-default", "tag"] for line in lines)
    assert any(line.split() == ["canary-foo.team.example.com", "foo-canary", "tag"] for line in lines)
    assert f"# team/foo from {path}: document 1 (PaddleService/foo)" in lines
    assert "warnings (1):" in lines
    assert lines[-1].startswith(f"  - {path}: document 1 (PaddleService/foo): spec.canary: has a container image")


def test_routing_table_without_services(tmp_path: Path) -> None:
    path = write(tmp_path, "gw.yaml", "apiVersion: serving-gateway/v1\nkind: GatewayConfig\n")
    assert "(no services)" in routing_table(load([path]))


def test_routing_table_spells_out_the_concurrency_limit(tmp_path: Path) -> None:
    local = write(
        tmp_path, "local.yaml", paddle("foo", "default:\n  command: python a.py --port {port}\nservice:\n  target: 5\n")
    )
    line = next(line for line in routing_table(load([local])).splitlines() if line.startswith("foo.default.example.com"))
    assert line.split()[-4:] == ["concurrency", "/", "concurrency", "5"]
    static = write(
        tmp_path,
        "static.yaml",
        paddle("bar", "default:\n  endpoints: [http://127.0.0.1:9000]\nservice:\n  target: 3\nbackend: static\n"),
    )
    line = next(line for line in routing_table(load([static])).splitlines() if line.startswith("bar.default.example.com"))
    assert line.split()[-4:] == ["concurrency", "3", "per", "endpoint"]


def isvc(name: str, predictor: str, annotations: str = "") -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata:\n  name: {name}\n{annotations}spec:\n  predictor:\n{predictor}"
        "    containers:\n    - name: c\n      image: x\n      command: [python, s.py, '{port}']\n"
    )


def test_the_target_shown_is_the_one_the_autoscaler_uses_under_container_concurrency(tmp_path: Path) -> None:
    # the autoscaler (autoscale/settings.py) takes containerConcurrency as the target when none is given, and caps a
    # larger one at it: `gateway validate` said "100 concurrency (default)" for a revision scaled at 1
    single = write(tmp_path, "a.yaml", isvc("single", "    containerConcurrency: 1\n"))
    capped = write(
        tmp_path,
        "b.yaml",
        isvc("capped", "    containerConcurrency: 2\n", '  annotations:\n    autoscaling.knative.dev/target: "10"\n'),
    )
    below = write(
        tmp_path,
        "c.yaml",
        isvc("below", "    containerConcurrency: 8\n", '  annotations:\n    autoscaling.knative.dev/target: "3"\n'),
    )
    table = routing_table(load([single, capped, below])).splitlines()

    def target_of(host: str) -> str:
        line = next(line for line in table if line.startswith(host))
        return " ".join(line.split()[6:])

    assert target_of("single.default.example.com") == "1 concurrency (containerConcurrency) / concurrency 1"
    assert target_of("capped.default.example.com") == "2 concurrency (target 10 capped at containerConcurrency) / concurrency 2"
    assert target_of("below.default.example.com") == "3 concurrency / concurrency 8"
