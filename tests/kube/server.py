"""The emulator served over real HTTP on a loopback port, from a thread with its own event loop.

The cluster lives on its own thread so that it is independent of the test's event loop, as a real API
server is: a sync test may call the blocking `kubernetes` client directly, an async test may run the
gateway in its loop, and neither can starve the other. Everything that touches the emulator's state runs
on the cluster's loop (`KubeApi.run`); the methods below are safe to call from the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import yaml

from tests.kube.emulator import ApiServer
from tests.kube.faults import Fault, compile_path
from tests.kube.store import Obj, Store

T = TypeVar("T")


class Seen(tuple[str, str]):
    """A request the API server received: it unpacks as `(method, path with query)`; `.data` is its JSON body."""

    data: Any

    def __new__(cls, method: str, url: str, data: Any = None) -> Seen:
        seen = super().__new__(cls, (method, url))
        seen.data = data
        return seen

    @property
    def method(self) -> str:
        return self[0]

    @property
    def url(self) -> str:
        return self[1]


class LoopThread:
    """An event loop running forever on a daemon thread until `close()`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        async def wrapper() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


class KubeApi:
    """The emulator listening on `url`; `wrapped=False` serves plain kmock."""

    def __init__(self, *, wrapped: bool = True, host: str = "127.0.0.1") -> None:
        self.wrapped = wrapped
        self.host = host
        self.port = 0
        self.thread = LoopThread("kube-api")
        self.emulator: ApiServer = self.thread.call(lambda: ApiServer(wrapped=wrapped))
        self._site: asyncio.AbstractServer | None = None
        self._http: aiohttp.web.Server | None = None
        self._publisher: asyncio.Task[None] | None = None
        try:
            self.thread.run(self._open())
        except BaseException:
            self.thread.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> Store:
        return self.emulator.store

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return self.thread.run(coro, timeout)

    def call(self, fn: Callable[[], T]) -> T:
        return self.thread.call(fn)

    async def _open(self) -> None:
        await self.emulator.__aenter__()
        self._publisher = asyncio.get_running_loop().create_task(self.store.publish_forever())
        await self._listen()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._http = aiohttp.web.Server(self.emulator, handler_cancellation=True)
        self._site = await asyncio.get_running_loop().create_server(self._http, sock=sock)

    async def _unlisten(self) -> None:
        if self._site is not None and self._http is not None:
            self._site.close()
            await self._http.shutdown(0.1)
            await self._site.wait_closed()
        self._site = self._http = None

    # -- connection refused ------------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        return self._site is not None

    def stop_listening(self) -> None:
        """Close the port and cut every open connection: clients now get 'connection refused'."""
        self.run(self._unlisten())

    def start_listening(self) -> None:
        """Listen again on the same port, with all objects as they were."""
        if not self.listening:
            self.run(self._listen())

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.stop_listening()
        try:
            yield
        finally:
            self.start_listening()

    # -- faults ------------------------------------------------------------------------------------
    def fail(self, method: str | None, path: str | re.Pattern[str], *, times: int = 1, status: int = 500) -> Fault:
        """The next `times` requests with this method (None: any) and a path matching `path` answer `status`."""
        if not 400 <= status <= 599:
            raise ValueError(f"a fault answers an error status (400..599), got {status}")
        return self.emulator.faults.add(Fault(method, compile_path(path), None, times, "status", status))

    def throttle(self, method: str | None, path: str | re.Pattern[str], *, times: int = 1, retry_after: int = 1) -> Fault:
        """The next `times` matching requests answer 429 Too Many Requests with `Retry-After: retry_after`."""
        return self.emulator.faults.add(Fault(method, compile_path(path), None, times, "status", 429, retry_after))

    def expire_watches(self, path: str | re.Pattern[str], *, times: int = 1) -> Fault:
        """The next `times` watches on a matching path get one ERROR event with 410 Gone, then the stream ends."""
        return self.emulator.faults.add(Fault("GET", compile_path(path), True, times, "gone"))

    def answer_watches_with_list(self, path: str | re.Pattern[str], *, times: int = 1) -> Fault:
        """The next `times` watches on a matching path get a plain JSON list (no stream, no newline)."""
        return self.emulator.faults.add(Fault("GET", compile_path(path), True, times, "list"))

    def stall(self, method: str | None, path: str | re.Pattern[str], *, times: int = 1, seconds: float = 5.0) -> Fault:
        """The next `times` matching requests wait `seconds` before they are served (a slow or stuck API server)."""
        return self.emulator.faults.add(Fault(method, compile_path(path), None, times, "stall", delay=seconds))

    def compact(self) -> None:
        """Forget the change history: a watch from any resourceVersion handed out so far gets 410 Gone."""
        self.call(self.store.compact)

    # -- state -------------------------------------------------------------------------------------
    def objects(self, plural: str, namespace: str | None = None) -> list[Obj]:
        """A snapshot of the live objects of a resource ('pods', 'deployments', ...)."""
        resource = next(r for r in self.emulator.resources if r.plural == plural and r.group in ("", "apps"))
        return self.call(lambda: [obj for _, obj in self.store.items(resource, namespace)])

    def requests(self) -> list[Seen]:
        """Every request received so far, in order (faulted ones included)."""
        return self.call(lambda: [Seen(r.method.value, str(r.url.relative()), r.data) for r in self.emulator._requests])

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testbed", "cluster": {"server": self.url}}],
            "users": [{"name": "testbed", "user": {"token": "testbed-token"}}],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "testbed", "namespace": namespace}}],
            "current-context": "testbed",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        async def shut() -> None:
            await self._unlisten()
            if self._publisher is not None:
                self._publisher.cancel()
            await self.emulator.__aexit__(None, None, None)

        try:
            self.run(shut())
        finally:
            self.thread.close()
