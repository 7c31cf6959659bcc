"""Models from storage: local paths, `file://`, `s3://`, `gs://` and `http(s)://`, fetched into a cache.

`fetch(uri, cache_dir, credentials)` returns a local path. The S3 and GCS clients come with the optional
`storage` extra (`pip install 'serving-gateway[storage]'`); http(s) needs nothing more.
"""

from __future__ import annotations

from .cache import STATE_DIR_ENV, default_cache_dir, fetch
from .errors import EXTRA_HINT, MissingExtraError, StorageError, missing_library
from .limits import DEFAULT_MAX_BYTES, MAX_BYTES_ENV, TIMEOUT_ENV, Limits
from .uris import KUBERNETES_MODEL_DIR, REMOTE_SCHEMES, SCHEMES, StorageUri, is_remote, parse, redact

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXTRA_HINT",
    "KUBERNETES_MODEL_DIR",
    "Limits",
    "MAX_BYTES_ENV",
    "REMOTE_SCHEMES",
    "SCHEMES",
    "TIMEOUT_ENV",
    "STATE_DIR_ENV",
    "MissingExtraError",
    "StorageError",
    "StorageUri",
    "default_cache_dir",
    "fetch",
    "is_remote",
    "missing_library",
    "parse",
    "redact",
]
