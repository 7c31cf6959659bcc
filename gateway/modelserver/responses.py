"""Compact JSON bodies and the JSON error shape shared by V1 and V2."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, ModelServerError

JSON = "application/json"


def render_json(content: Any) -> bytes:
    """Compact JSON; NaN and Infinity raise ValueError because JSON cannot carry them."""
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def parse_json(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; anything else is a :class:`BadRequest`."""
    try:
        content = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    except RecursionError:
        raise BadRequest("malformed JSON: arrays or objects are nested too deeply") from None
    if not isinstance(content, dict):
        raise BadRequest("request body must be a JSON object")
    return content


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(render_json(content), status_code=status, headers=headers, media_type=JSON)


def error_response(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


async def handle_model_server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelServerError)
    return error_response(exc.message, exc.status)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.detail, exc.status_code)
