"""Talking to the Kubernetes API: the official `kubernetes` client, configured once, and one request wrapper.

The client's calls block, so they run on this module's own threads, never on the event loop.
`KubeApi.call` retries 5xx, 429 and timeouts or refused connections on a backoff schedule (a
`Retry-After` header can lengthen a wait, never shorten it), raises other 4xx at once as `KubeRequestError` naming
the object, and raises `KubeUnavailable` once the schedule is spent. It also keeps whether the API
answers (`health`), for /readyz, /admin/services and `gateway status`: a call that cannot reach it twice
in a row says it is unreachable; a 5xx or 429 is the API answering, about one object; a request that has
waited NOT_ANSWERING seconds for an answer (an API server that accepts connections and never answers)
says it is not answering, long before the request's own timeout ends it.

Every request has a connect and a read timeout, and the threads are daemons: a stop never waits for a
request stuck on a hung API server.

A write passes a `guard` (the lease's fence and the leadership it was decided under): it is asked right
before every attempt, the first and each retry, so a leader that lost its lease while waiting out a
backoff or a long Retry-After sends nothing more (`KubeFenced`). What remains: an attempt already on
the wire when the lease ends is not called back; it lands at the latest when its request timeout
(spec.kubernetes.requestTimeout) ends it, and the new leader, which reads every Deployment again before
its first write, undoes it on its next look (the Deployment watch sees the change).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from functools import partial
from typing import Any, ParamSpec, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from gateway import __version__
from gateway.backends.errors import BackendConfigError

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger(__name__)

SCHEDULE = (0.5, 1.0, 2.0, 3.0, 5.0)  # seconds between attempts of one call (kopf's shape, shorter)
MAX_RETRY_AFTER = 60.0
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read (spec.kubernetes.connectTimeout, requestTimeout)
NOT_ANSWERING = 10.0  # seconds a request may wait for the API's answer before the API counts as not answering
POOL_SIZE = 64  # connections kept to the API server


class KubeRequestError(Exception):
    """The API refused a request for good (a 4xx other than 429): retrying would not help."""

    def __init__(self, status: int, what: str, message: str) -> None:
        super().__init__(f"{what}: {status} {message}")
        self.status = status
        self.what = what


class KubeUnavailable(Exception):
    """The API did not answer usefully (refused, timed out, 5xx, 429) through the whole backoff schedule."""


class KubeFenced(KubeUnavailable):
    """A write's guard said no right before an attempt (the lease ended, or leadership changed): that attempt
    was not sent. Not a failure of the object: whoever decided the write decides again later."""


def load_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """The client's configuration: `kubeconfig`, else $KUBECONFIG, else the in-cluster service account,
    else ~/.kube/config. BackendConfigError when none of them can be read."""
    config = kubernetes.client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        else:
            path = path or os.path.expanduser("~/.kube/config")
            kubernetes.config.load_kube_config(config_file=path, client_configuration=config)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = f"kubeconfig {path}" if path else "the in-cluster service account"
        raise BackendConfigError(
            f"kubernetes backend: cannot read the API configuration from {where}: {exc}"
            " (set KUBECONFIG, or run the gateway in a pod with a service account)"
        ) from exc
    config.retries = False  # our own schedule decides; urllib3's would retry silently
    config.connection_pool_maxsize = POOL_SIZE  # the request threads plus one watch per namespace keep theirs
    return config


def user_agent() -> str:
    """This gateway process, as the API server sees it: its pod (the hostname) and process."""
    return f"serving-gateway/{__version__} ({socket.gethostname()}; pid {os.getpid()})"


def retry_after(exc: ApiException) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), capped; None without one."""
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def api_message(exc: ApiException) -> str:
    """The `message` of the API's Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "error")


class DaemonPool(Executor):
    """A fixed pool of daemon threads: ThreadPoolExecutor's threads are joined at exit, so a request stuck on a
    hung API server (until its read timeout) would hold the process's exit."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, partial(fn, *args, **kwargs)))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        while cancel_futures:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class KubeApi:
    """The API client, its threads, and whether the API answers."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        *,
        schedule: Sequence[float] = SCHEDULE,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
        threads: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = kubernetes.client.ApiClient(configuration)
        self.client.user_agent = user_agent()  # the API server's audit log tells the gateways apart
        self.apps: Any = kubernetes.client.AppsV1Api(self.client)
        self.core: Any = kubernetes.client.CoreV1Api(self.client)
        self.host = str(configuration.host)
        self.schedule = tuple(schedule)
        self.timeout = timeout
        self._sleep = sleep
        self._executor = DaemonPool(threads, "kube-api")
        self._unanswered_since: float | None = None  # monotonic: the first request unanswered since the last answer
        self._in_flight = 0  # requests waiting for an answer
        self._waiting_lock = threading.Lock()
        self.not_answering_after = min(NOT_ANSWERING, timeout[1])
        self.failing_since: float | None = None  # wall clock of the first failure of the current outage
        self.last_error: str | None = None
        self.recoveries = 0  # outages ended so far; a change tells the backend to resync

    # -- health --------------------------------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        return self.failing_since is None

    def health(self) -> str | None:
        """None while the API answers; else what is wrong, since when, and what the gateway does meanwhile."""
        if self.failing_since is None:
            waited = self.waited()
            if waited < self.not_answering_after:
                return None
            since = time.strftime("%H:%M:%S", time.gmtime(time.time() - waited))
            return (
                f"kubernetes API {self.host} not answering since {since} UTC (a request has waited {waited:.0f} s); "
                "serving the last known endpoints, scaling paused"
            )
        since = time.strftime("%H:%M:%S", time.gmtime(self.failing_since))
        return (
            f"kubernetes API {self.host} unreachable since {since} UTC ({self.last_error}); "
            "serving the last known endpoints, scaling paused"
        )

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a request (on any thread): from its start until the API answers anything (to it or to another
        request), `waited` counts. A request that times out keeps it counting (its retry follows); a refused or
        cut connection is not a hang, and stops it once no other request waits."""
        with self._waiting_lock:
            self._in_flight += 1
            if self._unanswered_since is None:
                self._unanswered_since = time.monotonic()
        try:
            yield
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._ended(answered=False, timed_out=_timed_out(exc))  # a refused or cut connection is no hang
            raise
        except BaseException:
            self._ended(answered=True)  # an error the API sent is an answer
            raise
        self._ended(answered=True)

    def _ended(self, *, answered: bool, timed_out: bool = False) -> None:
        with self._waiting_lock:
            self._in_flight -= 1
            if answered or (not timed_out and not self._in_flight):
                self._unanswered_since = None

    def waited(self) -> float:
        """Seconds since the first request the API has not answered since (0 when it answers)."""
        since = self._unanswered_since
        return 0.0 if since is None else time.monotonic() - since

    def set_timeout(self, timeout: tuple[float, float]) -> None:
        """Connect and read timeouts of every request from now on (spec.kubernetes on a reload)."""
        self.timeout = timeout
        self.not_answering_after = min(NOT_ANSWERING, timeout[1])

    def succeeded(self) -> None:
        if self.failing_since is not None:
            log.warning("kubernetes API %s answers again; resyncing", self.host)
            self.failing_since = None
            self.last_error = None
            self.recoveries += 1

    def failed(self, error: str) -> None:
        if self.failing_since is None:
            log.warning("kubernetes API %s unreachable: %s", self.host, error)
            self.failing_since = time.time()
        self.last_error = error

    # -- requests ------------------------------------------------------------------------------------
    async def call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        schedule: Sequence[float] | None = None,
        guard: Callable[[], bool] | None = None,
        **kwargs: Any,
    ) -> T:
        """`fn(*args, **kwargs)` on the API's threads, retried on the backoff schedule (`schedule`, else the API's).

        `what` names the object for errors ("Deployment default/iris-default"). A write's `guard` is asked
        right before every attempt; KubeFenced (nothing more sent) when it says no.
        """
        loop = asyncio.get_running_loop()
        call = partial(self._waited_on, partial(fn, *args, _request_timeout=self.timeout, **kwargs))
        steps = self.schedule if schedule is None else tuple(schedule)
        for attempt in range(len(steps) + 1):
            if guard is not None and not guard():
                raise KubeFenced(f"{what}: not sent (no longer leading, or the lease ended)")
            try:
                result = await loop.run_in_executor(self._executor, call)
            except ApiException as exc:
                status = int(exc.status or 0)
                if 400 <= status < 500 and status != 429:
                    self.succeeded()  # the API answered: it is reachable, the request is wrong
                    raise KubeRequestError(status, what, api_message(exc)) from exc
                # the API answered (5xx, 429): a failure of this object, not an outage; an API that
                # fails everything fails the pod watches' lists too, and those say so
                error, delay, answered = f"{status} {api_message(exc)}", retry_after(exc), True
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error, delay, answered = _connection_error(exc), None, False
            else:
                self.succeeded()
                return result
            if attempt >= 1 and not answered:
                self.failed(error)  # one retry is a hiccup; a second is an outage worth saying so
            if attempt == len(steps):
                raise KubeUnavailable(f"{what}: {error}")
            log.info("%s: %s; retrying", what, error)
            await self._sleep(steps[attempt] if delay is None else max(steps[attempt], delay))
        raise AssertionError("unreachable")  # pragma: no cover

    def _waited_on(self, fn: Callable[[], T]) -> T:
        with self.waiting():
            return fn()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()  # type: ignore[no-untyped-call]


def _timed_out(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", None)
    return isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError) or isinstance(reason, urllib3.exceptions.TimeoutError)


def _connection_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and reason is not None:
        exc = reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
