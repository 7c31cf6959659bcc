"""Run the emulated cluster on its own, to try `spec.backend: kubernetes` without a cluster.

    python -m tests.kube [--dir DIR] [--unwrapped]

Starts the API emulator and the node (pods are local processes on their own 127.0.x.y, see
tests/kube/__init__.py for what is and is not emulated), writes DIR/kubeconfig, prints the line to
export, then one line per change of a Deployment's pods until Ctrl-C or SIGTERM, which stops every pod.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import types
from pathlib import Path

from tests.kube.cluster import Cluster
from tests.kube.controller import is_ready
from tests.kube.server import KubeApi


def summary(api: KubeApi) -> dict[str, dict[str, int]]:
    """Per `namespace/deployment`: wanted replicas, live pods, ready pods."""
    out: dict[str, dict[str, int]] = {}
    for deployment in api.objects("deployments"):
        meta = deployment["metadata"]
        out[f"{meta['namespace']}/{meta['name']}"] = {
            "replicas": int(deployment["spec"].get("replicas") or 0),
            "pods": 0,
            "ready": 0,
        }
    for pod in api.objects("pods"):
        meta = pod["metadata"]
        owner = next((ref["name"] for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "Deployment"), None)
        row = out.get(f"{meta['namespace']}/{owner}")
        if row is not None:
            row["pods"] += 1
            row["ready"] += int(is_ready(pod))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("testbed"), help="kubeconfig and pod logs go here (default ./testbed)")
    parser.add_argument("--unwrapped", action="store_true", help="plain kmock: no resourceVersion, selectors ignored")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api = KubeApi(wrapped=not args.unwrapped)
    cluster = Cluster(api, args.dir / "pods")
    try:
        kubeconfig = api.write_kubeconfig(args.dir / "kubeconfig")
        print(f"API {api.url}; pod logs in {args.dir / 'pods'}", flush=True)
        print(f"export KUBECONFIG={kubeconfig.resolve()}", flush=True)
        last: dict[str, dict[str, int]] | None = None
        while not stop.wait(0.5):
            now = summary(api)
            if now != last:
                print(time.strftime("%H:%M:%S"), json.dumps(now, sort_keys=True), flush=True)
                last = now
    finally:
        cluster.close()
        api.close()
    print("stopped: every pod's process has exited", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
