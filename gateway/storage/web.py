"""`http(s)://HOST/PATH`: one file, through httpx; its ETag (or Last-Modified) versions the cache.

A HEAD first learns the version without downloading; a server that refuses HEAD gets a GET. Redirects
are followed. The file keeps the URL's base name, so an archive is recognised by its suffix.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping

import httpx

from .errors import StorageError
from .uris import StorageUri

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class HttpStore:
    def __init__(self, uri: StorageUri, env: Mapping[str, str]) -> None:
        self.uri = uri
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def _refused(self, response: httpx.Response) -> StorageError:
        return StorageError(f"{self.uri.raw}: HTTP {response.status_code} {response.reason_phrase}")

    def version(self) -> str:
        try:
            response = self._client.head(self.uri.raw)
        except httpx.HTTPError as exc:
            raise StorageError(f"{self.uri.raw}: {exc}") from exc
        if response.status_code in (405, 501):
            return ""
        if response.status_code >= 400:
            raise self._refused(response)
        headers = response.headers
        return headers.get("etag") or " ".join(filter(None, (headers.get("last-modified"), headers.get("content-length"))))

    def download(self, dest: str, limit: int) -> None:
        name = posixpath.basename(self.uri.key.rstrip("/")) or "model"
        path = os.path.join(dest, name)
        try:
            with self._client.stream("GET", self.uri.raw) as response:
                if response.status_code >= 400:
                    raise self._refused(response)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise StorageError(f"{self.uri.raw}: {declared} bytes, more than the limit of {limit}")
                written = 0
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes():
                        written += len(chunk)
                        if written > limit:
                            raise StorageError(f"{self.uri.raw}: more than the limit of {limit} bytes")
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise StorageError(f"{self.uri.raw}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
