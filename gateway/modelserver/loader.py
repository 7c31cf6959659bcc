"""Loads the model once, in the background if asked, and tells whoever waits how it went."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ModelLoadError

if TYPE_CHECKING:
    from .model import OnnxModel

logger = logging.getLogger("gateway.modelserver")

Hook = Callable[[], object]


class ModelSlot:
    """Holds a model that is loading, loaded, or failed to load.

    ``before_load`` runs in the loading thread before the file is opened; tests use it to
    hold readiness back. Callbacks added with ``add_done_callback`` run once the load has
    finished either way, in the loading thread.
    """

    def __init__(self, path: str, *, before_load: Hook | None = None) -> None:
        self.path = path
        self._before_load = before_load
        self._model: OnnxModel | None = None
        self._error: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._callbacks: list[Callable[[ModelSlot], None]] = []

    @property
    def model(self) -> OnnxModel | None:
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

    def load(self) -> OnnxModel:
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
        try:
            if self._before_load is not None:
                self._before_load()
            # Imported here so that the server can bind and answer liveness first.
            from .model import OnnxModel

            self._model = OnnxModel.load(self.path)
            logger.info("model loaded from %s in %.3f s", self.path, time.perf_counter() - started)
        except ModelLoadError as exc:
            self._error = str(exc)
        except Exception as exc:  # a failing hook or an unexpected ONNX Runtime error
            self._error = f"cannot load model file {self.path}: {exc}"
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
