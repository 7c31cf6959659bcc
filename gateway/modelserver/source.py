"""Where the model server's model comes from: `--model` as a local path, or a storage URI.

A remote URI (s3://, gs://, http(s)://) is downloaded by `gateway.storage` before the server listens,
into `--cache-dir`, by default `$SERVING_GATEWAY_STATE_DIR/models`: the local backend sets that
variable for every replica, so replicas of every revision share one cache under the gateway's state
directory. Without it: `$XDG_STATE_HOME/serving-gateway/models` (or ~/.local/state/...). The download
is a folder, read as any model folder is (`formats.locate`); one holding nothing but one folder (an
archive of `iris/`) is read through to it.
"""

from __future__ import annotations

import os

from gateway.storage import default_cache_dir, fetch, is_remote


def resolve_model(model: str, cache_dir: str | None = None) -> str:
    """The local path of the model `model` names, downloaded first if it is remote; StorageError naming it if
    it cannot be. A local path is returned as it is (`file://` removed), for the server's own checks."""
    if not is_remote(model):
        path = model[len("file://") :] if model.lower().startswith("file://") else model
        return os.path.expanduser(path)
    path = fetch(model, cache_dir or default_cache_dir())
    while os.path.isdir(path):
        entries = [name for name in os.listdir(path) if not name.startswith(".")]
        if len(entries) != 1 or not os.path.isdir(os.path.join(path, entries[0])):
            break
        path = os.path.join(path, entries[0])
    return path
