"""Storage URIs as KServe's storage initializer takes them, parsed without touching the network.

A local path (absolute or relative) or `file://PATH` is read where it is; `s3://BUCKET[/PREFIX]`,
`gs://BUCKET[/PREFIX]` and `http(s)://HOST/PATH` are downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import StorageError

REMOTE_SCHEMES = ("s3", "gs", "http", "https")
SCHEMES = ("file", *REMOTE_SCHEMES)
KUBERNETES_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts a model, and so do we
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_ONE_SLASH = re.compile(r"(s3|gs|https?|file):/?(?!/)", re.IGNORECASE)  # s3:/bucket, gs:bucket: not a local path


def redact(uri: str) -> str:
    """`uri` as it may be shown (errors, logs, status): userinfo (`user:secret@`) and the query string (a presigned
    URL's signature) replaced by `***`. Only the download itself uses the URI as written."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    cut = min((i for i in (rest.find(ch) for ch in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    path, query, fragment = tail.partition("?")
    if query:
        fragment = fragment.partition("#")[1] + fragment.partition("#")[2]
        tail = f"{path}?***{fragment}"
    return f"{scheme}://{authority}{tail}"


@dataclass(frozen=True, slots=True)
class StorageUri:
    """`scheme` is "file" for a local path; `bucket` is the host of an http(s) URI; `key` has no leading slash."""

    raw: str
    scheme: str
    bucket: str = ""
    key: str = ""
    path: str = ""  # the local path of a file URI

    @property
    def remote(self) -> bool:
        return self.scheme != "file"

    @property
    def shown(self) -> str:
        """The URI as errors and logs show it: credentials redacted (see `redact`)."""
        return redact(self.raw)


def parse(uri: str) -> StorageUri:
    """The parts of `uri`; :class:`StorageError` saying what is wrong with it otherwise."""
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError("empty storage URI")
    if any(ch in uri for ch in "\r\n\0"):
        raise StorageError(f"{redact(uri)!r}: control characters in a storage URI")
    if "://" not in uri:
        if (bad := _ONE_SLASH.match(uri)) is not None:
            scheme = bad.group(1).lower()
            cut = len(scheme) + 1 if scheme == "file" else bad.end()  # file:/abs is file:///abs
            meant = redact(f"{scheme}://{uri[cut:]}")
            raise StorageError(f"{meant.replace('://', uri[len(scheme) : cut], 1)}: malformed URI, did you mean {meant}?")
        return StorageUri(uri, "file", path=uri)
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise StorageError(f"{redact(uri)}: unsupported scheme {scheme!r}, expected a local path or one of {', '.join(SCHEMES)}")
    if scheme == "file":
        if not rest.strip():
            raise StorageError(f"{redact(uri)}: names no file")
        return StorageUri(uri, "file", path=rest)
    if scheme in ("http", "https"):
        return _web(uri, scheme)
    bucket, _, key = rest.partition("/")
    if not bucket or any(ch in bucket for ch in " ?#"):
        raise StorageError(f"{redact(uri)}: expected {scheme}://BUCKET/PREFIX, bucket {bucket!r}")
    return StorageUri(uri, scheme, bucket, key)


def _web(uri: str, scheme: str) -> StorageUri:
    parts = urlsplit(uri)
    if not parts.hostname:
        raise StorageError(f"{redact(uri)}: no host")
    if not parts.path.strip("/"):
        raise StorageError(f"{redact(uri)}: names no file on {parts.hostname}")
    return StorageUri(uri, scheme, parts.netloc, parts.path.lstrip("/"))


def is_remote(uri: str) -> bool:
    """Whether `uri` is downloaded (s3, gs, http, https) rather than read in place."""
    return "://" in uri and uri.split("://", 1)[0].lower() in REMOTE_SCHEMES


def archive_suffix(name: str) -> str | None:
    """The archive suffix `name` ends with (.zip, .tar.gz, .tgz, .tar), or None."""
    lowered = name.lower()
    return next((suffix for suffix in ARCHIVE_SUFFIXES if lowered.endswith(suffix)), None)
