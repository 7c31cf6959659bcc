"""`http(s)://HOST/PATH`: one file, through httpx; its ETag (or Last-Modified and Content-Length) versions the cache.

A HEAD first learns the version without downloading. A server that refuses HEAD (405, 501, or 403: an S3
presigned GET URL's signature covers the method) is asked with a GET instead, whose headers give the same
version, and whose body is not read. Redirects are followed, at most `MAX_REDIRECTS`, to http(s) only. The file
keeps the URL's base name, so an archive is recognised by its suffix. A server that lies is refused: a body
shorter or longer than its Content-Length, or an HTML page (a login or error page answered with 200) where the
URI names no .html file. Errors show the URL without its userinfo or query string.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import StorageError
from .limits import Budget
from .uris import StorageUri

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_REDIRECTS = 5
HEAD_REFUSED = (403, 405, 501)


class HttpStore:
    def __init__(self, uri: StorageUri, env: Mapping[str, str]) -> None:
        self.uri = uri
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=True, max_redirects=MAX_REDIRECTS)

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
        except httpx.TooManyRedirects as exc:
            raise StorageError(f"{self.uri.shown}: more than {MAX_REDIRECTS} redirects") from exc
        except httpx.HTTPError as exc:
            raise self._failed(exc) from exc
        if response.status_code >= 400:
            raise self._refused(response)
        headers = response.headers
        return headers.get("etag") or " ".join(filter(None, (headers.get("last-modified"), headers.get("content-length"))))

    def download(self, dest: str, budget: Budget) -> None:
        name = posixpath.basename(self.uri.key.rstrip("/")) or "model"
        path = os.path.join(dest, name)
        left = budget.remaining()  # no single wait may outlast the deadline
        timeout = TIMEOUT if left is None else httpx.Timeout(min(30.0, left + 0.1), connect=min(10.0, left + 0.1))
        try:
            with self._client.stream("GET", self.uri.raw, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise self._refused(response)
                self._check_type(response)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit():
                    budget.reserve(int(declared), self.uri.shown)
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes():
                        budget.take(len(chunk))
                        out.write(chunk)
                if declared is not None and declared.isdigit():
                    self._check_length(response, int(declared))
        except httpx.TooManyRedirects as exc:
            raise StorageError(f"{self.uri.shown}: more than {MAX_REDIRECTS} redirects") from exc
        except httpx.HTTPError as exc:
            raise self._failed(exc) from exc

    def _check_type(self, response: httpx.Response) -> None:
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind in ("text/html", "application/xhtml+xml") and not self.uri.key.lower().endswith((".html", ".htm")):
            raise StorageError(f"{self.uri.shown}: the server answered with an HTML page ({kind}), not a model")

    def _check_length(self, response: httpx.Response, declared: int) -> None:
        """A body shorter than Content-Length is caught by httpx; a longer one leaves bytes after it, which h11
        holds (found through httpx's and httpcore's streams: when their layout changes, that check is skipped)."""
        received = response.num_bytes_downloaded
        if received != declared:
            raise StorageError(f"{self.uri.shown}: the server sent {received} bytes where its Content-Length said {declared}")
        stream: Any = response.stream
        for attribute in ("_stream", "_httpcore_stream", "_stream", "_connection", "_h11_state"):
            stream = getattr(stream, attribute, None)
        extra = getattr(stream, "trailing_data", (b"", False))[0]
        if extra:
            raise StorageError(
                f"{self.uri.shown}: the server sent more than its Content-Length of {declared} bytes: a corrupt response"
            )

    def close(self) -> None:
        self._client.close()
