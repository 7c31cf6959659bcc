"""Fixtures of the Kubernetes test bed: an API server stand-in, a kubeconfig pointing at it, and a cluster.

tests/kube/conftest.py offers them to tests/kube; another directory's conftest.py offers them to its tests
the same way (`from tests.kube.fixtures import cluster, kube_api, ...` plus `__all__`), or the root
conftest.py to every test with `pytest_plugins = ["tests.kube.fixtures"]`.

- `kube_api`: the emulator on a free loopback port, wrapped (real API server semantics). For plain kmock,
  parametrise it indirectly: `@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)`;
  `kubeconfig`, `kube_client` and `cluster` follow whichever `kube_api` the test gets.
- `kubeconfig`: a kubeconfig file for it (`kubernetes.config.load_kube_config(str(path))`, or
  `KUBECONFIG=path` for a gateway process); namespace `default`, a dummy token.
- `kube_client`: the official client's `ApiClient` built from that file.
- `cluster`: the API plus the controller and node; Deployments get pods that run as real processes.
  At teardown every container process must be gone, or the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.kube.cluster import Cluster
from tests.kube.pods import leftover
from tests.kube.server import KubeApi

MODES = ("wrapped", "unwrapped")


@pytest.fixture
def kube_api(request: pytest.FixtureRequest) -> Iterator[KubeApi]:
    mode = getattr(request, "param", "wrapped")
    if mode not in MODES:
        raise ValueError(f"kube_api is parametrised with one of {MODES}, got {mode!r}")
    api = KubeApi(wrapped=mode == "wrapped")
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def kubeconfig(kube_api: KubeApi, tmp_path: Path) -> Path:
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cluster(kube_api: KubeApi, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(kube_api, tmp_path / "pods")
    try:
        yield cluster
    finally:
        pids = cluster.all_pids()
        cluster.close()
        left = leftover(pids)
        assert not left, f"container processes left running after the cluster stopped: {left}"
