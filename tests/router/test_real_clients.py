"""Real clients through the gateway: curl and wrk, as users run them (installed by scripts/test.sh)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import pytest

from tests.router.support import Replica

HOST = "iris.default.example.com"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    if path is None:
        pytest.fail(f"{name} is not installed: run the README's test command (bash scripts/test.sh), which installs it")
    return path


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.e2e
async def test_curl_with_host_header(gw_port: int) -> None:
    port = gw_port
    code, out, err = await run(tool("curl"), "-sS", "-i", "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/v1/models/iris")
    assert code == 0, err
    assert out.startswith("HTTP/1.1 200") and "x-gateway-revision: iris-default" in out
    code, out, err = await run(
        tool("curl"),
        "-sS",
        "-H",
        f"Host: {HOST}",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@-",
        f"http://127.0.0.1:{port}/upload",
        stdin=b"z" * 300_000,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["body_len"] == 300_000 and doc["chunked"] is True


@pytest.mark.e2e
async def test_wrk_load_has_no_errors(gw_port: int, replica: Replica) -> None:
    port = gw_port
    code, out, err = await run(tool("wrk"), "-t1", "-c16", "-d1s", "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/")
    assert code == 0, err
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    assert requests > 100
    assert replica.requests >= requests
    assert len(replica.peers) <= 16  # upstream keep-alive: one connection per concurrent client at most
