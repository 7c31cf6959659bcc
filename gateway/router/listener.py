"""Listening sockets whose accepting stops at a connection limit (HAProxy's ``maxconn``).

asyncio's servers accept whenever a connection is pending; this one leaves the listening socket
unread while ``open() >= limit``, so further clients wait in the kernel's listen backlog and are
taken as soon as a connection closes. A descriptor shortage on accept (EMFILE and friends) pauses
accepting briefly instead of spinning or dropping what is pending.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import select
import socket
import time
from collections.abc import Callable

from gateway.errors import GatewayError
from gateway.resources import LOCAL_ERRNOS

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64
WAIT_CHECK = 0.1  # seconds between two looks for a waiting client while at the connection limit
SHORTAGE_PAUSE = 0.1
LOG_EVERY = 10.0  # seconds between two warnings of the same kind


def bind(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Non-blocking listening sockets for every address `host` resolves to (all interfaces when empty);
    `reuse_port`: SO_REUSEPORT, so several worker processes accept on the same address."""
    where = f"{host or '*'}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise GatewayError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    socks: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
            except OSError as exc:
                raise GatewayError(f"cannot listen on {where}: {exc.strerror}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listener:
    """Accepts on `socks` while `open_count() < limit`; each accepted socket goes to `factory`."""

    def __init__(
        self,
        socks: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        open_count: Callable[[], int],
        limit: int,
        reclaim: Callable[[], object] = lambda: None,
    ) -> None:
        self.socks = socks
        self.reclaim = reclaim  # closes idle keep-alive connections to make room
        self.full = False  # stopped at the limit with a client waiting: connections going idle should close
        self.on_full: Callable[[bool], object] = lambda full: None
        self.factory = factory
        self.open_count = open_count
        self.limit = limit
        self.pending = 0  # accepted, transport not made yet
        self._attaching: set[asyncio.Task[None]] = set()
        self.limited = 0  # times accepting stopped at the limit
        self.shortages = 0  # accepts that failed for lack of descriptors or buffers
        self._accepting = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._watching = False
        self._logged = {"limit": 0.0, "shortage": 0.0}

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._logged[kind] >= LOG_EVERY:
            self._logged[kind] = now
            log.warning(message, *args)

    def start(self) -> None:
        if self._accepting or self._closed:
            return
        self._accepting = True
        if self.full:
            self.full = False
            self.on_full(False)
        for sock in self.socks:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def pause(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self.socks:
                self._loop.remove_reader(sock.fileno())

    def below_limit(self) -> None:
        """A connection closed: accept again if this was what held accepting."""
        if not self._accepting and not self._closed and self._retry is None and self.open_count() + self.pending < self.limit:
            self.start()

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.open_count() + self.pending >= self.limit:
                self.pause()
                self._start_watching()
                return
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in LOCAL_ERRNOS:
                    self.shortages += 1
                    self._warn(
                        "shortage", "cannot accept a connection: %s; pausing accepts for %gs", exc.strerror, SHORTAGE_PAUSE
                    )
                    self.pause()
                    self._retry = self._loop.call_later(SHORTAGE_PAUSE, self._resume_after_shortage)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that client gave up before we took it
                raise
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pending += 1
            task = self._loop.create_task(self._attach(sock))
            self._attaching.add(task)  # kept until done: the loop holds tasks only weakly
            task.add_done_callback(self._attaching.discard)

    def _watch_waiting(self) -> None:
        """At the limit: is a client waiting in the backlog? Only then do idle connections yield.

        Checked with a zero-timeout select (the listening socket is not read while paused), now and
        every WAIT_CHECK seconds until accepting resumes.
        """
        if self._accepting or self._closed:
            self._watching = False
            return
        if any(select.select([sock], [], [], 0)[0] for sock in self.socks):
            if not self.full:
                self.full = True
                self.on_full(True)
                self.limited += 1
                self._warn(
                    "limit", "%d client connections open (spec.proxy.maxConnections): not accepting until one closes", self.limit
                )
            self.reclaim()  # idle keep-alive connections make room as they close
        self._loop.call_later(WAIT_CHECK, self._watch_waiting)

    def _start_watching(self) -> None:
        if not self._watching:
            self._watching = True
            self._watch_waiting()

    def _resume_after_shortage(self) -> None:
        self._retry = None
        if self.open_count() + self.pending < self.limit:
            self.start()

    async def _attach(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self.factory, sock)
        except OSError as exc:
            log.debug("accepted connection lost before it was set up: %s", exc)
            sock.close()
        finally:
            self.pending -= 1
        self.below_limit()

    def close(self) -> None:
        self.pause()
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.socks:
            sock.close()
