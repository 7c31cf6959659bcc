"""The one served model as the protocol handlers see it: name, version, readiness, threads."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread

from .errors import ModelNotFound, ModelNotReady
from .loader import Hook, ModelSlot

if TYPE_CHECKING:
    from .specs import ServedModel

T = TypeVar("T")

# A compressed request body may not inflate past this (the gateway's default request body limit too).
MAX_INFLATED_BYTES = 100 * 1024 * 1024


class ModelService:
    """Resolves model names and versions, and runs blocking work off the event loop.

    ``max_inflated_bytes`` caps what a gzip/deflate request body may inflate to.
    ``before_infer`` runs in the worker thread right before ONNX Runtime is called;
    tests use it to make an inference deliberately slow.
    """

    def __init__(
        self,
        name: str,
        version: str,
        slot: ModelSlot,
        *,
        before_infer: Hook | None = None,
        max_inflated_bytes: int = MAX_INFLATED_BYTES,
    ) -> None:
        self.name = name
        self.max_inflated_bytes = max_inflated_bytes
        self.version = version
        self.slot = slot
        self._before_infer = before_infer

    @property
    def ready(self) -> bool:
        return self.slot.model is not None

    def check(self, name: str, version: str | None = None) -> None:
        """Raise :class:`ModelNotFound` unless ``name`` (and ``version``) is what is served."""
        if name != self.name:
            raise ModelNotFound(f"model {name!r} not found; this server serves {self.name!r}")
        if version is not None and version != self.version:
            raise ModelNotFound(f"model {name!r} has no version {version!r}; it has {self.version!r}")

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The loaded model; :class:`ModelNotFound` or :class:`ModelNotReady` otherwise."""
        self.check(name, version)
        model = self.slot.model
        if model is None:
            reason = f": {self.slot.error}" if self.slot.error else " (still loading)"
            raise ModelNotReady(f"model {name!r} is not ready{reason}")
        return model

    def before_infer(self) -> None:
        if self._before_infer is not None:
            self._before_infer()

    async def in_thread(self, func: Callable[..., T], *args: object) -> T:
        """Run blocking work (decoding, inference, encoding) in a worker thread."""
        return await anyio.to_thread.run_sync(partial(func, *args))
