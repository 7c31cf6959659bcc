"""KServe V1 (TensorFlow Serving style) REST protocol: list, status and ``:predict``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import BadRequest, ModelServerError
from .responses import json_response, parse_json, render_json
from .service import ModelService

if TYPE_CHECKING:
    from .specs import ServedModel


def routes(service: ModelService) -> list[BaseRoute]:
    """The V1 endpoints for ``service``."""

    async def list_models(request: Request) -> Response:
        return json_response({"models": [service.name]})

    async def model_status(request: Request) -> Response:
        name = request.path_params["model"]
        service.check(name)
        return json_response({"name": name, "ready": service.ready}, 200 if service.ready else 503)

    async def predict(request: Request) -> Response:
        model = service.model(request.path_params["model"])
        body = await request.body()
        content = await service.in_thread(_predict, service, model, body)
        return Response(content, media_type="application/json")

    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}:predict", predict, methods=["POST"]),
        Route("/v1/models/{model}", model_status, methods=["GET"]),
    ]


def _predict(service: ModelService, model: ServedModel, body: bytes) -> bytes:
    content = parse_json(body)
    if "instances" not in content:
        raise BadRequest("missing 'instances'")
    instances = content["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list")
    if len(model.inputs) != 1:
        names = ", ".join(spec.name for spec in model.inputs)
        raise BadRequest(f"V1 predict needs a model with one input; this one has: {names}; use V2")
    spec = model.inputs[0]
    try:
        array = np.asarray(instances, dtype=spec.dtype)
    except OverflowError as exc:
        raise BadRequest(f"'instances' hold a number too large for {spec.datatype} (input {spec.name!r}): {exc}") from exc
    except RecursionError:
        raise BadRequest(f"'instances' are nested too deeply for input {spec.name!r}") from None
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"'instances' cannot be read as {spec.datatype} for input {spec.name!r}: {exc}") from exc
    if not spec.accepts(array.shape):
        raise BadRequest(f"'instances' have shape {list(array.shape)}; input {spec.name!r} needs {list(spec.shape)}")
    service.before_infer()
    (predictions,) = model.run({spec.name: array}, [model.outputs[0].name])
    try:
        return render_json({"predictions": predictions.tolist()})
    except ValueError as exc:
        raise ModelServerError("the predictions hold NaN or Infinity, which JSON cannot carry") from exc
