"""Where the model server's model comes from: `--model` as a local file, a folder, or a storage URI.

A remote URI (s3://, gs://, http(s)://) is downloaded by `gateway.storage` before the server listens,
into `--cache-dir`, by default `$SERVING_GATEWAY_STATE_DIR/models`: the local backend sets that
variable for every replica, so replicas of every revision share one cache under the gateway's state
directory. Without it: `$XDG_STATE_HOME/serving-gateway/models` (or ~/.local/state/...).
A folder (downloaded or local) holds `model.onnx` or exactly one `.onnx` file, at its top or below.
"""

from __future__ import annotations

import os

from gateway.storage import StorageError, default_cache_dir, fetch, is_remote

MODEL_SUFFIX = ".onnx"


def resolve_model(model: str, cache_dir: str | None = None) -> str:
    """The local model file `model` names, downloaded first if it is remote; StorageError naming it if not.

    A local path that does not exist is returned as it is, for the server's own check to name.
    """
    if not is_remote(model):
        path = _local(model)
        return pick_model_file(path) if os.path.isdir(path) else path
    path = fetch(model, cache_dir or default_cache_dir())
    if not os.path.isdir(path):
        return path
    try:
        return pick_model_file(path)
    except StorageError as exc:
        raise StorageError(f"{model}: {exc}") from exc


def pick_model_file(folder: str) -> str:
    """`model.onnx` at the top of `folder`, else its one `.onnx` file anywhere below."""
    named = os.path.join(folder, f"model{MODEL_SUFFIX}")
    if os.path.isfile(named):
        return named
    found = sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names if name.endswith(MODEL_SUFFIX)
    )
    if len(found) == 1:
        return found[0]
    listing = ", ".join(os.path.relpath(p, folder) for p in found[:5]) or "none"
    raise StorageError(
        f"model folder {folder} holds no model{MODEL_SUFFIX} and not exactly one {MODEL_SUFFIX} file (found: {listing})"
    )


def _local(model: str) -> str:
    path = model[len("file://") :] if model.lower().startswith("file://") else model
    return os.path.expanduser(path)
