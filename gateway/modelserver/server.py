"""Runs the model server: ``run()`` for code, ``add_arguments``/``main_from_args`` for the CLI."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
import os
import sys
import time

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from gateway.storage import StorageError, is_remote, redact

from . import formats
from .app import create_app
from .errors import ModelLoadError
from .loader import ModelSlot
from .service import MAX_INFLATED_BYTES
from .source import resolve_model

__all__ = ["add_arguments", "create_app", "main_from_args", "run"]

logger = logging.getLogger("gateway.modelserver")


def run(
    model: str,
    name: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    model_format: str | None = None,
    log_level: str = "warning",
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> None:
    """Serve ``model`` (a file or a folder holding one, of ``model_format``: None tells it by the name) as
    ``name`` until SIGINT/SIGTERM; blocks.

    Liveness answers at once and readiness once the model has loaded. If the model
    cannot be loaded the server stops and :class:`ModelLoadError` is raised.
    ``max_inflated_bytes`` caps what a compressed request body may inflate to (413 past it).
    ``log_level`` is uvicorn's; the server's own lines (listening, loaded) are always logged.
    """
    app = create_app(model, name, model_format=model_format, max_inflated_bytes=max_inflated_bytes)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        log_level=log_level,
        log_config=_log_config(),
        access_log=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    slot: ModelSlot = app.state.slot

    def stop_if_failed(slot: ModelSlot) -> None:
        if slot.model is None:
            server.should_exit = True

    slot.add_done_callback(stop_if_failed)
    logger.info("serving model %r from %s on http://%s:%d", name, model, _url_host(host), port)
    server.run()
    if slot.done and slot.model is None:
        raise ModelLoadError(slot.error or f"cannot load model file {model}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _log_config() -> dict[str, object]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["gateway.modelserver"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model --cache-dir --format --name --port --host --max-inflated-bytes --log-level`` to ``parser``."""
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH|URI",
        help="model file to serve, or a folder holding one (model.onnx, model.joblib, ...), or a storage URI "
        "(s3://, gs://, http(s)://, file://) downloaded before serving",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where downloads are cached (default: $SERVING_GATEWAY_STATE_DIR/models, set by the local backend)",
    )
    parser.add_argument(
        "--format",
        choices=formats.NAMES,
        default=None,
        help="model format (default: told by the file's extension: .onnx; .joblib/.pkl/.pickle; .bst/.json/.ubj)",
    )
    parser.add_argument("--name", required=True, help="model name used in the URLs (/v2/models/NAME)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", 8080)),
        help="port (default: $PORT or 8080)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--max-inflated-bytes",
        type=_positive_int,
        default=MAX_INFLATED_BYTES,
        metavar="BYTES",
        help=f"largest size a gzip/deflate request body may inflate to; larger ones get 413 (default: {MAX_INFLATED_BYTES})",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: warning)",
    )


def main_from_args(args: argparse.Namespace) -> int:
    """Run the server from parsed arguments; returns the exit status (1 for a bad model file or download)."""
    shown, remote, started = redact(args.model), is_remote(args.model), time.monotonic()
    if remote:  # said before the download, so a replica that hangs in it says what it was doing
        print(f"gateway modelserver: fetching {shown}", file=sys.stderr, flush=True)
    try:
        model = resolve_model(args.model, args.cache_dir)
    except StorageError as exc:
        print(f"gateway modelserver: error: {exc}", file=sys.stderr)
        return 1
    if remote:
        print(f"gateway modelserver: fetched {shown} in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    problem = _check_model(model, args.format)
    if problem is None:
        try:
            run(
                model,
                args.name,
                args.host,
                args.port,
                model_format=args.format,
                log_level=args.log_level,
                max_inflated_bytes=args.max_inflated_bytes,
            )
            return 0
        except ModelLoadError as exc:
            problem = str(exc)
    if model != args.model:  # downloaded: name what the user gave too
        problem = f"{shown}: {problem}"
    print(f"gateway modelserver: error: {problem}", file=sys.stderr)
    return 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _check_model(path: str, fmt: str | None) -> str | None:
    """What makes the model unservable before a byte of it is read: the file, its format, the format's packages."""
    if not os.path.exists(path):
        return f"model file {path} does not exist"
    path, fmt, problem = formats.locate(path, fmt)
    if problem is not None:
        return problem
    return _check_model_file(path) or formats.missing(fmt)


def _check_model_file(path: str) -> str | None:
    if not os.path.isfile(path):
        return f"model file {path} is not a file"
    if not os.access(path, os.R_OK):
        return f"model file {path} is not readable"
    if os.path.getsize(path) == 0:
        return f"model file {path} is empty"
    return None
