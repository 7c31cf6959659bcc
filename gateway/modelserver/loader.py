"""Loads the model once, in the background if asked, and tells whoever waits how it went."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import formats
from .errors import ModelLoadError

if TYPE_CHECKING:
    from .specs import ServedModel

logger = logging.getLogger("gateway.modelserver")

Hook = Callable[[], object]


class ModelSlot:
    """Holds a model that is loading, loaded, or failed to load.

    ``path`` is a model file or a folder holding one, of format ``fmt`` (None: told by the file's
    name, see :mod:`gateway.modelserver.formats`). ``before_load`` runs in the loading thread before
    the file is opened; tests use it to hold readiness back. Callbacks added with ``add_done_callback`` run once the load has
    finished either way, in the loading thread.
    """

    def __init__(self, path: str, fmt: str | None = None, *, before_load: Hook | None = None) -> None:
        self.path = path
        self.format = fmt
        self._before_load = before_load
        self._model: ServedModel | None = None
        self._error: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._callbacks: list[Callable[[ModelSlot], None]] = []

    @property
    def model(self) -> ServedModel | None:
        """The loaded model, or None while loading or after a failed load."""
        return self._model

    @property
    def error(self) -> str | None:
        """Why the load failed, or None."""
        return self._error

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the load has finished; False on timeout."""
        return self._done.wait(timeout)

    def add_done_callback(self, callback: Callable[[ModelSlot], None]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def start(self) -> None:
        """Load in a daemon thread; a second call does nothing."""
        if self._claim():
            threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def load(self) -> ServedModel:
        """Load in this thread and return the model; raises :class:`ModelLoadError`."""
        if self._claim():
            self._load()
        self._done.wait()
        if self._model is None:
            raise ModelLoadError(self._error or "model failed to load")
        return self._model

    def _claim(self) -> bool:
        with self._lock:
            if self._started:
                return False
            self._started = True
            return True

    def _load(self) -> None:
        started = time.perf_counter()
        logger.info("loading model from %s", self.path)
        try:
            if self._before_load is not None:
                self._before_load()
            self._model = load_model(self.path, self.format)
            logger.info("model loaded from %s in %.3f s", self.path, time.perf_counter() - started)
        except ModelLoadError as exc:
            self._error = str(exc)
        except Exception as exc:  # a failing hook or an unexpected framework error
            self._error = f"cannot load model file {self.path}: {exc}"
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


def load_model(path: str, fmt: str | None = None) -> ServedModel:
    """The model ``path`` names or holds, loaded; :class:`ModelLoadError` with a one-line reason.

    The framework is imported here, not before, so that the server binds and answers liveness first.
    """
    if os.path.isdir(path):
        path, fmt, problem = formats.locate(path, fmt)
        if problem is not None:
            raise ModelLoadError(problem)
    fmt = fmt or formats.of_file(path) or "onnx"
    problem = formats.missing(fmt)
    if problem is not None:
        raise ModelLoadError(problem)
    if fmt == "sklearn":
        from .tabular import load_sklearn

        return load_sklearn(path)
    if fmt == "xgboost":
        from .tabular import load_xgboost

        return load_xgboost(path)
    from .model import OnnxModel

    return OnnxModel.load(path)
