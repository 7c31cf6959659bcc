"""KServe V2 / Open Inference Protocol over REST, with Triton's binary tensor data extension."""

from __future__ import annotations

import gzip
import zlib
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from .errors import BadRequest, ModelServerError
from .responses import json_response
from .service import ModelService
from .tensors import encode_infer_response, parse_infer_request

if TYPE_CHECKING:
    from .specs import ServedModel

SERVER_NAME = "serving-gateway-modelserver"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"
# Smaller responses are sent as they are: compressing them costs more than it saves.
COMPRESS_MIN_SIZE = 1024
# Compressed request bodies are inflated this many bytes at a time, so the size limit bites early.
INFLATE_CHUNK = 1024 * 1024


def routes(service: ModelService) -> list[BaseRoute]:
    """The V2 endpoints for ``service``, each model route also under ``/versions/{version}``."""

    async def server_metadata(request: Request) -> Response:
        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        return json_response({"ready": service.ready}, 200 if service.ready else 503)

    async def model_metadata(request: Request) -> Response:
        model = service.model(request.path_params["model"], request.path_params.get("version"))
        return json_response(
            {
                "name": service.name,
                "versions": [service.version],
                "platform": model.platform,
                "inputs": [spec.metadata() for spec in model.inputs],
                "outputs": [spec.metadata() for spec in model.outputs],
            }
        )

    async def model_ready(request: Request) -> Response:
        service.check(request.path_params["model"], request.path_params.get("version"))
        return json_response({"name": service.name, "ready": service.ready}, 200 if service.ready else 503)

    async def infer(request: Request) -> Response:
        model = service.model(request.path_params["model"], request.path_params.get("version"))
        body = await request.body()
        return await service.in_thread(_infer, service, model, body, request.headers)

    model_routes = [
        ("", model_metadata, "GET"),
        ("/ready", model_ready, "GET"),
        ("/infer", infer, "POST"),
    ]
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        *(
            Route(prefix + suffix, endpoint, methods=[method])
            for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
            for suffix, endpoint, method in model_routes
        ),
    ]


def _infer(service: ModelService, model: ServedModel, body: bytes, headers: Headers) -> Response:
    body = _decompress(body, headers.get("content-encoding"), service.max_inflated_bytes)
    request = parse_infer_request(model, body, headers.get(HEADER_LENGTH))
    service.before_infer()
    names = [output.name for output in request.outputs]
    arrays = model.run(request.inputs, names)
    header: dict[str, object] = {"model_name": service.name, "model_version": service.version}
    if request.id is not None:
        header["id"] = request.id
    pairs = zip(request.outputs, arrays, strict=True)
    tensors = [(output.name, array, output.binary) for output, array in pairs]
    content, json_length = encode_infer_response(header, tensors)
    response_headers = {}
    if json_length is not None:
        response_headers[HEADER_LENGTH] = str(json_length)
    encoding = _accepted_encoding(headers.get("accept-encoding"))
    if encoding is not None and len(content) >= COMPRESS_MIN_SIZE:
        content = gzip.compress(content, 1) if encoding == "gzip" else zlib.compress(content, 1)
        response_headers["Content-Encoding"] = encoding
    media_type = "application/json" if json_length is None else "application/octet-stream"
    return Response(content, headers=response_headers, media_type=media_type)


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` inflated, in chunks, refusing (413) to inflate past ``limit`` bytes before the memory is spent."""
    if encoding is None or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    # gzip bodies may hold several members back to back (as gzip.decompress reads them).
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            while True:
                part = inflater.decompress(pending, INFLATE_CHUNK)
                size += len(part)
                if size > limit:
                    raise ModelServerError(
                        f"the {encoding} body inflates to more than {limit} bytes, the model server's limit "
                        "(--max-inflated-bytes)",
                        413,
                    )
                parts.append(part)
                pending = inflater.unconsumed_tail
                if inflater.eof or not (pending or part):
                    break
            if not inflater.eof:
                raise BadRequest(f"body is not valid {encoding} data: the compressed stream ends early")
            pending = inflater.unused_data
            if encoding == "deflate" or not pending.strip(b"\0"):
                break
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {encoding} data: {exc}") from exc
    return b"".join(parts)


def _accepted_encoding(accept: str | None) -> str | None:
    if not accept:
        return None
    offered = {}
    for item in accept.split(","):
        token, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        offered[token.strip().lower()] = quality
    for encoding in ("gzip", "deflate"):
        if offered.get(encoding, 0.0) > 0:
            return encoding
    return None
