"""The processes a comparison needs: backends (nginx answering "ok", the 100 ms Python replica) and the
proxies in front of them (nginx, HAProxy, the gateway with a static backend), each on a free loopback
port and in the scenario's work folder. A proxy not installed is skipped by the caller (`available`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtests.harness.procs import HarnessError, Proc, Stack, free_port, tool, wait_port

HERE = Path(__file__).resolve().parents[1]
REPLICA = HERE / "burst_replica.py"
HOST = "bench.default.example.com"
PROXIES = ("nginx", "haproxy", "gateway")


@dataclass
class Target:
    name: str
    port: int
    proc: Proc | None = None


def available(name: str) -> bool:
    return name in ("direct", "gateway") or tool(name) is not None


def _nginx_top(work: Path, name: str) -> str:
    tmp = work / f"{name}-tmp"
    tmp.mkdir(exist_ok=True)
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""  # as root the workers drop to nobody
    temps = "".join(f"    {kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes 1;\npid {work}/{name}.pid;\nerror_log {work}/{name}-error.log warn;\n"
        "events { worker_connections 4096; multi_accept on; }\nhttp {\n"
        "    access_log off;\n    keepalive_requests 1000000;\n    keepalive_timeout 75s;\n" + temps
    )


def start_nginx_backend(stack: Stack, cpu: int | None) -> Target:
    """nginx, one worker, `GET /` -> 200 "ok\\n": a backend no Python proxy can outrun."""
    exe = tool("nginx")
    if exe is None:
        raise HarnessError("nginx is not installed (Debian: nginx-light)")
    port = free_port()
    conf = stack.work / "backend-nginx.conf"
    conf.write_text(
        _nginx_top(stack.work, "backend-nginx") + "    default_type text/plain;\n"
        f'    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n        location / {{ return 200 "ok\\n"; }}\n    }}\n}}\n'
    )
    proc = stack.start("backend-nginx", [exe, "-p", str(stack.work), "-c", str(conf), "-g", "daemon off;"], cpu=cpu)
    wait_port(port, proc)
    return Target("backend", port, proc)


def start_replica_backend(stack: Stack, cpu: int | None, name: str = "backend-replica") -> Target:
    """loadtests/burst_replica.py: `GET /work?ms=N` sleeps N ms and answers {"pid": ...}."""
    port = free_port()
    proc = stack.start(name, [sys.executable, str(REPLICA), str(port)], cpu=cpu)
    wait_port(port, proc)
    return Target(name, port, proc)


def start_nginx_proxy(stack: Stack, backend: int, cpu: int | None) -> Target:
    exe = tool("nginx")
    if exe is None:
        raise HarnessError("nginx is not installed (Debian: nginx-light)")
    port = free_port()
    conf = stack.work / "nginx.conf"
    conf.write_text(
        _nginx_top(stack.work, "nginx") + f"    upstream backend {{\n        server 127.0.0.1:{backend};\n        keepalive 64;\n"
        "        keepalive_requests 1000000;\n    }\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n        location / {{\n"
        "            proxy_pass http://backend;\n            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n            proxy_set_header Host $host;\n'
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "            proxy_set_header X-Forwarded-Proto $scheme;\n            proxy_read_timeout 60s;\n"
        "        }\n    }\n}\n"
    )
    proc = stack.start("nginx", [exe, "-p", str(stack.work), "-c", str(conf), "-g", "daemon off;"], cpu=cpu)
    wait_port(port, proc)
    return Target("nginx", port, proc)


def start_haproxy(stack: Stack, backend: int, cpu: int | None) -> Target:
    """HAProxy in HTTP mode, one thread, keep-alive to the backend, X-Forwarded-For added like the others."""
    exe = tool("haproxy")
    if exe is None:
        raise HarnessError("haproxy is not installed (Debian: haproxy)")
    port = free_port()
    conf = stack.work / "haproxy.cfg"
    conf.write_text(
        "global\n    nbthread 1\n    maxconn 4096\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 75s\n    timeout server 60s\n"
        "    timeout http-keep-alive 75s\n    option forwardfor\n    http-reuse always\n"
        f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
        f"backend be\n    server s1 127.0.0.1:{backend}\n"
    )
    proc = stack.start("haproxy", [exe, "-db", "-f", str(conf)], cpu=cpu)
    wait_port(port, proc)
    return Target("haproxy", port, proc)


def static_config(backend: int, name: str = "bench") -> str:
    return (
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n---\n"
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\n"
        f'metadata: {{name: {name}, namespace: default}}\nspec:\n  default:\n    endpoints: ["http://127.0.0.1:{backend}"]\n'
    )


def start_proxy(stack: Stack, name: str, backend: int, cpu: int | None) -> Target:
    """One of PROXIES in front of the backend port, or the backend itself for "direct"."""
    from loadtests.harness.gateway import start_gateway

    if name == "direct":
        return Target("direct", backend)
    if name == "nginx":
        return start_nginx_proxy(stack, backend, cpu)
    if name == "haproxy":
        return start_haproxy(stack, backend, cpu)
    if name == "gateway":
        gw = start_gateway(stack, static_config(backend), cpu=cpu, log_level="warning")
        return Target("gateway", gw.port, gw.proc)
    raise HarnessError(f"unknown target {name!r}: direct, {', '.join(PROXIES)}")
