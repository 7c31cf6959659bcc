"""`s3://BUCKET/PREFIX` through boto3, configured from the environment KServe's storage initializer reads.

AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN); the endpoint from AWS_ENDPOINT_URL
(a URL) or S3_ENDPOINT (a host[:port], https unless S3_USE_HTTPS=0); S3_VERIFY_SSL=0 skips certificate
checks; AWS_REGION or AWS_DEFAULT_REGION; awsAnonymousCredential=true sends unsigned requests.
A prefix names one object (placed under its base name) or a folder: every object whose key continues
the prefix with a slash, placed at its key relative to the prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .archives import place_keys
from .errors import MissingExtraError, StorageError
from .limits import Budget
from .uris import StorageUri

_FALSE = ("0", "false", "no", "off")
# One request waits at most CONNECT_TIMEOUT + READ_TIMEOUT, and is tried ATTEMPTS times: an endpoint that accepts
# connections and never answers fails in about a minute, well inside the local backend's 120 s start timeout,
# so the replica lives to print why.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 20
ATTEMPTS = 2


def endpoint_url(env: Mapping[str, str]) -> str | None:
    """The S3 endpoint `env` names, as a URL; None for AWS itself."""
    url = env.get("AWS_ENDPOINT_URL") or env.get("S3_ENDPOINT")
    if not url:
        return None
    if "://" not in url:
        scheme = "http" if env.get("S3_USE_HTTPS", "1").strip().lower() in _FALSE else "https"
        url = f"{scheme}://{url}"
    return url


class S3Store:
    def __init__(self, uri: StorageUri, env: Mapping[str, str]) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore import UNSIGNED
            from botocore.config import Config
        except ImportError as exc:
            raise MissingExtraError(uri.shown, "boto3") from exc
        self.uri = uri
        anonymous = env.get("awsAnonymousCredential", "false").strip().lower() == "true"
        session = boto3.session.Session(
            aws_access_key_id=None if anonymous else env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=None if anonymous else env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=None if anonymous else env.get("AWS_SESSION_TOKEN") or None,
            region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )
        retries = {"mode": "standard", "total_max_attempts": ATTEMPTS}
        limits: dict[str, Any] = {"retries": retries, "connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}
        config = Config(signature_version=UNSIGNED, **limits) if anonymous else Config(**limits)
        verify = env.get("S3_VERIFY_SSL", "1").strip().lower() not in _FALSE
        self._client: Any = session.client("s3", endpoint_url=endpoint_url(env), verify=verify, config=config)
        self._transfer = TransferConfig(num_download_attempts=ATTEMPTS)  # s3transfer's own retries of a stalled body
        self._plain_http_hint = "://" not in env.get("S3_ENDPOINT", "://") and not env.get("AWS_ENDPOINT_URL")
        self._objects: list[tuple[str, str, int]] | None = None

    def _fail(self, exc: Exception) -> StorageError:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            code, message = error.get("Code", "?"), error.get("Message", "")
            return StorageError(f"{self.uri.shown}: S3 refused: {code}{': ' + message if message else ''}")
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return StorageError(f"{self.uri.shown}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({exc})")
        if type(exc).__name__ == "SSLError" and "WRONG_VERSION_NUMBER" in str(exc) and self._plain_http_hint:
            return StorageError(f"{self.uri.shown}: {exc} (is the endpoint http? set S3_USE_HTTPS=0)")
        return StorageError(f"{self.uri.shown}: {exc}")

    def objects(self) -> list[tuple[str, str, int]]:
        """(key, ETag, size) of every object the URI names; StorageError when none."""
        if self._objects is not None:
            return self._objects
        prefix = self.uri.key
        found: list[tuple[str, str, int]] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.uri.bucket, Prefix=prefix):
                for item in page.get("Contents") or ():
                    key = item["Key"]
                    if key.endswith("/") or not _under(key, prefix):
                        continue
                    found.append((key, str(item.get("ETag", "")), int(item.get("Size", 0))))
        except Exception as exc:  # botocore's errors: refused, unreachable, no credentials
            raise self._fail(exc) from exc
        if not found:
            raise StorageError(f"{self.uri.shown}: no such object or prefix in bucket {self.uri.bucket}")
        self._objects = found
        return found

    def version(self) -> str:
        return "\n".join(f"{key} {etag} {size}" for key, etag, size in self.objects())

    def download(self, dest: str, budget: Budget) -> None:
        objects = self.objects()
        budget.reserve(sum(size for _, _, size in objects), self.uri.shown)
        relative = [
            (key, os.path.basename(key) if key == self.uri.key else key[len(self.uri.key) :].lstrip("/")) for key, _, _ in objects
        ]
        for key, path in place_keys(dest, relative):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            budget.check_deadline()
            try:
                self._client.download_file(self.uri.bucket, key, path, Config=self._transfer)
            except Exception as exc:
                raise self._fail(exc) from exc


def _under(key: str, prefix: str) -> bool:
    if not prefix or prefix.endswith("/") or key == prefix:
        return True
    return key.startswith(prefix + "/")
