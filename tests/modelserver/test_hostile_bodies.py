"""Hostile request bodies (compression bombs, huge integers, deep nesting) get a JSON 4xx from every format, never a 500."""

from __future__ import annotations

import argparse
import gzip
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from gateway.modelserver.server import add_arguments, create_app
from gateway.modelserver.service import MAX_INFLATED_BYTES

from .utils import IRIS, serve, wait_ready

LIMIT = 1024 * 1024
DEEP = 100_000


def _seed_v2(name: str = "input") -> bytes:
    return b'{"inputs":[{"name":"%s","datatype":"FP32","shape":[1,4],"data":[6.8,2.8,4.8,1.4]}]}' % name.encode()


@pytest.fixture(scope="module")
def small_limit_url() -> Iterator[str]:
    """The iris model with a 1 MiB inflation limit."""
    with serve(create_app(str(IRIS), "iris", max_inflated_bytes=LIMIT)) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """One ready server per format: format -> (base URL, model name)."""
    apps = {"onnx": (str(IRIS), "iris")}
    try:
        from tests.tabular_models import write_sklearn_iris, write_xgboost_iris

        root = Path(tmp_path_factory.mktemp("hostile"))
        write_sklearn_iris(root / "sk" / "model.joblib")
        write_xgboost_iris(root / "xg" / "model.bst")
        apps["sklearn"] = (str(root / "sk"), "sk")
        apps["xgboost"] = (str(root / "xg"), "xg")
    except ImportError:  # the sklearn/xgboost extras are optional; onnx still runs
        pass
    with ExitStack() as stack:
        urls = {fmt: stack.enter_context(serve(create_app(*app))) for fmt, app in apps.items()}
        for url in urls.values():
            wait_ready(url)
        yield {fmt: (url, apps[fmt][1]) for fmt, url in urls.items()}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_is_413_naming_the_limit(small_limit_url: str, encoding: str) -> None:
    plain = b" " * (4 * LIMIT) + _seed_v2()
    content = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    assert len(content) < LIMIT // 50
    response = httpx.post(f"{small_limit_url}/v2/models/iris/infer", content=content, headers={"Content-Encoding": encoding})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    assert f"more than {LIMIT} bytes" in response.json()["error"]
    assert "--max-inflated-bytes" in response.json()["error"]


@pytest.mark.e2e  # trains and serves a model of each format, then inflates 100 MB
def test_the_default_limit_refuses_a_body_inflating_past_it(servers: dict[str, tuple[str, str]]) -> None:
    url, name = servers["onnx"]
    content = gzip.compress(b" " * (MAX_INFLATED_BYTES + 1) + _seed_v2(), 1)
    response = httpx.post(f"{url}/v2/models/{name}/infer", content=content, headers={"Content-Encoding": "gzip"}, timeout=60)
    assert response.status_code == 413, response.text
    assert f"more than {MAX_INFLATED_BYTES} bytes" in response.json()["error"]


def test_bodies_under_the_limit_still_inflate_including_multi_member_gzip(small_limit_url: str) -> None:
    body = _seed_v2()
    for content in (gzip.compress(b" " * (LIMIT // 2) + body), gzip.compress(body[:10]) + gzip.compress(body[10:])):
        response = httpx.post(f"{small_limit_url}/v2/models/iris/infer", content=content, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content",
    [gzip.compress(_seed_v2())[:-12], gzip.compress(_seed_v2()) + b"junk", zlib.compress(_seed_v2())[:-6]],
    ids=["truncated", "trailing-garbage", "truncated-deflate"],
)
def test_broken_compressed_bodies_are_400(small_limit_url: str, content: bytes) -> None:
    encoding = "deflate" if content[:1] == b"\x78" else "gzip"
    response = httpx.post(f"{small_limit_url}/v2/models/iris/infer", content=content, headers={"Content-Encoding": encoding})
    assert response.status_code == 400, response.text
    assert f"not valid {encoding} data" in response.json()["error"]


BIG = b"1" + b"0" * 400


@pytest.mark.e2e  # trains and serves a model of each format
@pytest.mark.parametrize("fmt", ["onnx", "sklearn", "xgboost"])
@pytest.mark.parametrize(
    ("protocol", "body", "needle"),
    [
        ("v1", b'{"instances":[[' + BIG + b",2.8,4.8,1.4]]}", "too large"),
        ("v1", b'{"instances":' + b"[" * DEEP + b"]" * DEEP + b"}", "nested too deeply"),
        ("v1", b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nested too deeply"),
        ("v2", b'{"inputs":[{"name":"NAME","datatype":"FP32","shape":[1,4],"data":[' + BIG + b",1,2,3]}]}", "not FP32"),
        (
            "v2",
            b'{"inputs":[{"name":"NAME","datatype":"FP32","shape":[1,4],"data":' + b"[" * DEEP + b"]" * DEEP + b"}]}",
            "nested too deeply",
        ),
    ],
    ids=["v1-huge-int", "v1-deep-lists", "v1-deep-objects", "v2-huge-int", "v2-deep-lists"],
)
def test_huge_numbers_and_deep_nesting_are_400_json(
    servers: dict[str, tuple[str, str]], fmt: str, protocol: str, body: bytes, needle: str
) -> None:
    if fmt not in servers:
        pytest.skip(f"the {fmt} extra is not installed")  # never in CI: tests/conftest.py stops a CI run without it
    url, name = servers[fmt]
    input_name = b"input" if fmt == "onnx" else b"input-0"
    path = f"/v1/models/{name}:predict" if protocol == "v1" else f"/v2/models/{name}/infer"
    response = httpx.post(url + path, content=body.replace(b"NAME", input_name), timeout=30)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"]


@pytest.mark.parametrize(("value", "needle"), [("0", "must be more than 0"), ("lots", "not a whole number")])
def test_a_bad_max_inflated_bytes_is_a_usage_error(value: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="gateway modelserver")
    add_arguments(parser)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--model", "m.onnx", "--name", "m", "--max-inflated-bytes", value])
    assert exited.value.code == 2
    assert needle in capsys.readouterr().err
    assert parser.parse_args(["--model", "m.onnx", "--name", "m"]).max_inflated_bytes == MAX_INFLATED_BYTES
