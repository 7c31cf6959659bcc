"""Errors that carry the HTTP status they map to at the protocol boundary."""

from __future__ import annotations


class ModelServerError(Exception):
    """A request failed; ``status`` is the HTTP status to answer with."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(ModelServerError):
    """The request is malformed or does not fit the model."""

    status = 400


class ModelNotFound(ModelServerError):
    """No model (or model version) by that name is served here."""

    status = 404


class ModelNotReady(ModelServerError):
    """The model exists but its session is not loaded (yet, or at all)."""

    status = 503


class ModelLoadError(Exception):
    """The model file could not be read or is not a model ONNX Runtime can run."""
