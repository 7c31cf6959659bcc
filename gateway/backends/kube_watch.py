"""A watch of one namespace's pods (or Deployments: `resource`) that carry our label: list, then watch, on a
thread of its own.

What it tells the loop (through `call_soon_threadsafe`): `reset(objects)` after every list, `event(type, object)`
for each watch event, and `failure(error, outage)` / `answered()` for the API's health. Rules it keeps:

- every watch asks `timeoutSeconds`, and a read that hears nothing for longer ends it (silence);
- it resumes from the last resourceVersion seen, and relists on 410 Gone, after any failure, and
  whenever no resourceVersion is known (an API that sets none, like the plain emulator, is relisted
  on each reconnect: its watch replays everything as ADDED anyway, but would never tell a deletion
  that happened in between);
- failures back off (`backoff`; the API's `Retry-After` can lengthen a wait, never shorten it), the
  backoff starting over after a list that succeeds, and no two watches, nor two lists, start less than
  `min_interval` apart, so an answer that is not a stream (a plain list, an empty body) or a
  `Retry-After: 0` cannot make it spin; a failure is said at warning once a streak (and at most once
  every WARN_EVERY seconds), its retries at debug;
- a dropped watch is a hiccup, not an outage: `outage` is only true when the relist after a failure
  fails too (KubeApi.call's rule: one retry is a hiccup, a second is an outage).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from gateway.backends.kube_api import KubeApi, api_message, retry_after

log = logging.getLogger(__name__)

Obj = dict[str, Any]
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
STOP_WAIT = 1.0  # seconds a stop waits for the watch's thread
WARN_EVERY = 60.0  # seconds between two warnings of a watch's failures


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class NotAStream(Exception):
    """The watch was answered with something that is not a stream of events."""


class PodWatch:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        selector: str,
        *,
        reset: Callable[[list[Obj]], None],
        event: Callable[[str, Obj], None],
        failure: Callable[[str, bool], None],
        answered: Callable[[], None],
        timeout_seconds: int = 30,
        min_interval: float = 1.0,
        backoff: Sequence[float] = BACKOFF,
        resource: str = "pods",
    ) -> None:
        self.namespace = namespace
        self.resource = resource  # "pods" or "deployments"
        self._lister = api.core.list_namespaced_pod if resource == "pods" else api.apps.list_namespaced_deployment
        self._api = api
        self._selector = selector
        self._reset, self._event, self._failure, self._answered = reset, event, failure, answered
        self._timeout_seconds = timeout_seconds
        self._min_interval = min_interval
        self._backoff = tuple(backoff)
        self._stop = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.watches = 0  # watch requests made so far
        self.lists = 0  # list requests made so far

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name=f"kube-watch-{self.namespace}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._response is not None:
                self._response.shutdown()
        if self._thread is not None:
            # a thread stuck in a request to a hung API is not waited for: it is a daemon, and ends at its timeout
            await asyncio.to_thread(self._thread.join, STOP_WAIT)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not self._stop.is_set():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                self._stop.set()  # the loop is closed: nobody listens any more

    # -- the thread ----------------------------------------------------------------------------------
    def _main(self) -> None:
        version: str | None = None
        failures = 0
        last_start = last_list = -self._min_interval
        warned_at = -WARN_EVERY
        while not self._stop.is_set():
            try:
                if version is None:
                    wait = self._min_interval - (time.monotonic() - last_list)
                    if wait > 0 and self._stop.wait(wait):
                        break
                    last_list = time.monotonic()
                    version = self._list()
                    failures = 0  # the API answers: the next failure is a hiccup again
                wait = self._min_interval - (time.monotonic() - last_start)
                if wait > 0 and self._stop.wait(wait):
                    break
                last_start = time.monotonic()
                version = self._watch(version)
                failures = 0
            except Gone:
                log.info("%s of %s: watch expired (410 Gone); relisting", self.resource, self.namespace)
                version = None
            except Exception as exc:  # the thread must go on whatever the API does
                if self._stop.is_set():
                    break
                error = _describe(exc, self.resource)
                level = logging.DEBUG
                if failures == 0 and time.monotonic() - warned_at >= WARN_EVERY:
                    level, warned_at = logging.WARNING, time.monotonic()
                log.log(level, "%s of %s: %s; retrying", self.resource, self.namespace, error)
                self._post(self._failure, error, failures >= 1)
                version = None
                self._stop.wait(self._delay(exc, failures))
                failures += 1

    def _delay(self, exc: Exception, failures: int) -> float:
        """How long to wait after a failure: the backoff, or the API's Retry-After when it asks for longer."""
        asked = retry_after(exc) if isinstance(exc, ApiException) else None
        backoff = self._backoff[min(failures, len(self._backoff) - 1)]
        return backoff if asked is None else max(backoff, asked)

    def _list(self) -> str | None:
        self.lists += 1
        with self._api.waiting():
            response = self._lister(
                self.namespace,
                label_selector=self._selector,
                _preload_content=False,
                _request_timeout=self._api.timeout,
            )
            try:
                body = json.loads(response.data or b"{}")
            finally:
                response.release_conn()
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise NotAStream(f"listing {self.resource} answered with {type(body).__name__}, not a list")
        self._post(self._answered)
        self._post(self._reset, [item for item in body["items"] if isinstance(item, dict)])
        return _version(body)

    def _watch(self, version: str | None) -> str | None:
        """One watch, to its end; the resourceVersion to resume from (None: relist first)."""
        self.watches += 1
        kwargs: dict[str, Any] = {"resource_version": version} if version else {}
        with self._api.waiting():  # until the stream's head: a healthy API sends it at once
            response = self._lister(
                self.namespace,
                label_selector=self._selector,
                watch=True,
                timeout_seconds=self._timeout_seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(self._api.timeout[0], silence(self._timeout_seconds)),
                **kwargs,
            )
        with self._lock:
            self._response = response
        try:
            for line in _lines(response):
                version = self._handle(line, version)
        except urllib3.exceptions.ReadTimeoutError:
            log.debug("%s of %s: the watch fell silent; reconnecting", self.resource, self.namespace)
            return None  # a silent stream may have missed something: relist
        except urllib3.exceptions.ProtocolError:
            if self._stop.is_set():
                return version
            raise
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        self._post(self._answered)
        return version

    def _handle(self, line: bytes, version: str | None) -> str | None:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise NotAStream(f"watch answered with a line that is not JSON: {line[:80]!r}") from exc
        if not isinstance(event, dict) or "type" not in event or not isinstance(event.get("object"), dict):
            raise NotAStream(f"watch answered with {_shape(event)}, not a stream of events")
        kind, obj = str(event["type"]), event["object"]
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiException(status=obj.get("code") or 500, reason=obj.get("message") or "watch error")
        seen = _version(obj)
        if kind != "BOOKMARK":
            self._post(self._event, kind, obj)
        return seen or version


def silence(timeout_seconds: int) -> float:
    """How long a watch may hear nothing before it counts as silent: past the server's own end of it."""
    return timeout_seconds * 1.5 + 1.0


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())
    if buffer.strip():
        yield buffer  # a body with no newline at all: a plain object, which `_handle` refuses


def _version(obj: Obj) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _shape(value: object) -> str:
    if isinstance(value, dict):
        return f"a {value.get('kind') or 'JSON object'}" + (" with items" if "items" in value else "")
    return f"a JSON {type(value).__name__}"


def _describe(exc: BaseException, resource: str = "pods") -> str:
    if isinstance(exc, ApiException):
        return f"watching {resource}: {exc.status} {api_message(exc)}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError | urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return f"watching {resource}: connection refused"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return f"watching {resource}: {type(exc).__name__}: {exc}"
    return f"watching {resource}: {exc}"
