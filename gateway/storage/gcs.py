"""`gs://BUCKET/PREFIX` through google-cloud-storage.

Credentials: the service-account file GOOGLE_APPLICATION_CREDENTIALS names, else Google's default
credentials, else an anonymous client (public buckets), as KServe does. STORAGE_EMULATOR_HOST sends
every request to that emulator, anonymously. A prefix names one object or a folder, as for S3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .archives import place_keys
from .errors import MissingExtraError, StorageError
from .limits import Budget
from .uris import StorageUri


def _client(uri: StorageUri, env: Mapping[str, str]) -> Any:
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage
    except ImportError as exc:
        raise MissingExtraError(uri.shown, "google-cloud-storage") from exc
    emulator = env.get("STORAGE_EMULATOR_HOST")
    if emulator:
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(
            project="serving-gateway",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            client_options={"api_endpoint": endpoint},
        )
    account_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if account_file:
        try:
            return storage.Client.from_service_account_json(account_file)
        except (OSError, ValueError) as exc:
            raise StorageError(f"{uri.shown}: cannot read GOOGLE_APPLICATION_CREDENTIALS {account_file}: {exc}") from exc
    try:
        return storage.Client()
    except DefaultCredentialsError:
        return storage.Client.create_anonymous_client()


REQUEST_TIMEOUT = 30.0  # seconds per request
RETRY_TIMEOUT = 30.0  # seconds of retries (the library's default is 120: longer than a replica's start timeout)


class GcsStore:
    def __init__(self, uri: StorageUri, env: Mapping[str, str]) -> None:
        self.uri = uri
        self._client = _client(uri, env)  # MissingExtraError first, without the library
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._retry = DEFAULT_RETRY.with_timeout(RETRY_TIMEOUT)
        self._blobs: list[Any] | None = None

    def _fail(self, exc: Exception) -> StorageError:
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", None) or str(exc)
        bare = message.strip().lower()
        if code == 404 and (not bare or bare.endswith(("unknown error", "not found"))):  # the emulator gives no reason
            message = f"bucket {self.uri.bucket} or object not found"
        return StorageError(f"{self.uri.shown}: Google Cloud Storage refused{f' ({code})' if code else ''}: {message}")

    def blobs(self) -> list[Any]:
        if self._blobs is not None:
            return self._blobs
        prefix = self.uri.key
        try:
            found = [
                blob
                for blob in self._client.list_blobs(
                    self.uri.bucket, prefix=prefix or None, timeout=REQUEST_TIMEOUT, retry=self._retry
                )
                if not blob.name.endswith("/") and _under(blob.name, prefix)
            ]
        except Exception as exc:  # google.api_core's errors: not found, forbidden, unreachable
            raise self._fail(exc) from exc
        if not found:
            raise StorageError(f"{self.uri.shown}: no such object or prefix in bucket {self.uri.bucket}")
        self._blobs = found
        return found

    def version(self) -> str:
        return "\n".join(f"{blob.name} {blob.generation} {blob.size}" for blob in self.blobs())

    def download(self, dest: str, budget: Budget) -> None:
        blobs = {blob.name: blob for blob in self.blobs()}
        budget.reserve(sum(int(blob.size or 0) for blob in blobs.values()), self.uri.shown)
        relative = [
            (name, os.path.basename(name) if name == self.uri.key else name[len(self.uri.key) :].lstrip("/")) for name in blobs
        ]
        for name, path in place_keys(dest, relative):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            budget.check_deadline()
            try:
                blobs[name].download_to_filename(path, timeout=REQUEST_TIMEOUT, retry=self._retry)
            except Exception as exc:
                raise self._fail(exc) from exc


def _under(name: str, prefix: str) -> bool:
    if not prefix or prefix.endswith("/") or name == prefix:
        return True
    return name.startswith(prefix + "/")
