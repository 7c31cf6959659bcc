"""Builds the Starlette application: V1 and V2 routes around one model slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from . import v1, v2
from .errors import ModelServerError
from .loader import Hook, ModelSlot
from .responses import handle_http_exception, handle_model_server_error
from .service import MAX_INFLATED_BYTES, ModelService


def create_app(
    model_path: str,
    name: str,
    *,
    model_format: str | None = None,
    load_in_background: bool = True,
    version: str = "1",
    before_load: Hook | None = None,
    before_infer: Hook | None = None,
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> Starlette:
    """A KServe V1 + V2 application serving the model at ``model_path`` (a file, or a folder holding one)
    as ``name``; ``model_format`` is onnx, sklearn or xgboost, None to tell it by the file's name.

    With ``load_in_background`` the model loads in a thread once the application starts
    (readiness turns true when it is done); otherwise it loads here and a bad file raises
    :class:`~gateway.modelserver.errors.ModelLoadError`. The hooks are for tests:
    ``before_load`` runs in the loading thread, ``before_infer`` in each inference's thread.
    A compressed request body inflating past ``max_inflated_bytes`` is refused with 413.
    The slot is at ``app.state.slot``.
    """
    slot = ModelSlot(model_path, model_format, before_load=before_load)
    if not load_in_background:
        slot.load()
    service = ModelService(name, version, slot, before_infer=before_infer, max_inflated_bytes=max_inflated_bytes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        slot.start()
        yield

    app = Starlette(
        routes=[*v1.routes(service), *v2.routes(service)],
        exception_handlers={
            ModelServerError: handle_model_server_error,
            HTTPException: handle_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.service = service
    return app
