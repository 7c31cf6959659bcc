"""`http(s)://HOST/PATH`: one file, through httpx; its ETag (or Last-Modified and Content-Length) versions the cache.

A HEAD first learns the version without downloading. A server that refuses HEAD (405, 501, or 403: an S3
presigned GET URL's signature covers the method) is asked with a GET instead, whose headers give the same
version, and whose body is not read. Redirects are followed. The file keeps the URL's base name, so an
archive is recognised by its suffix. Errors show the URL without its userinfo or query string.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping

import httpx

from .errors import StorageError
from .uris import StorageUri

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
HEAD_REFUSED = (403, 405, 501)


class HttpStore:
    def __init__(self, uri: StorageUri, env: Mapping[str, str]) -> None:
        self.uri = uri
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def _refused(self, response: httpx.Response) -> StorageError:
        return StorageError(f"{self.uri.shown}: HTTP {response.status_code} {response.reason_phrase}")

    def _failed(self, exc: httpx.HTTPError) -> StorageError:
        return StorageError(f"{self.uri.shown}: {str(exc).replace(self.uri.raw, self.uri.shown)}")

    def version(self) -> str:
        try:
            response = self._client.head(self.uri.raw)
            if response.status_code in HEAD_REFUSED:
                with self._client.stream("GET", self.uri.raw) as response:
                    pass  # the headers only: the body is downloaded once the cache entry is known
        except httpx.HTTPError as exc:
            raise self._failed(exc) from exc
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
                    raise StorageError(f"{self.uri.shown}: {declared} bytes, more than the limit of {limit}")
                written = 0
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes():
                        written += len(chunk)
                        if written > limit:
                            raise StorageError(f"{self.uri.shown}: more than the limit of {limit} bytes")
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        self._client.close()
