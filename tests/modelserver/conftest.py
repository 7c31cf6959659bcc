from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.modelserver.server import create_app

from .utils import IRIS, serve, wait_ready, write_identity_model


@pytest.fixture(scope="session")
def iris_path() -> str:
    if not IRIS.is_file():
        pytest.fail(f"{IRIS} is missing; run scripts/make_iris_model.py")
    return str(IRIS)


@pytest.fixture(scope="module")
def iris_url(iris_path: str) -> Iterator[str]:
    """A real server for the iris model, ready."""
    with serve(create_app(iris_path, "iris")) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="session")
def identity_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("onnx", reason="building test models needs the onnx package")
    return str(write_identity_model(tmp_path_factory.mktemp("models") / "identity.onnx"))


@pytest.fixture(scope="module")
def identity_url(identity_path: str) -> Iterator[str]:
    """A real server for a model passing every V2 datatype through, ready."""
    with serve(create_app(identity_path, "identity")) as url:
        wait_ready(url)
        yield url
