"""The test bed's fixtures (defined in tests/kube/fixtures.py, so that other test directories can use them too)."""

from __future__ import annotations

from tests.kube.fixtures import cluster, kube_api, kube_client, kubeconfig

__all__ = ["cluster", "kube_api", "kube_client", "kubeconfig"]
