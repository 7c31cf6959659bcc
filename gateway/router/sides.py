"""The two narrow faces a request cycle sees: the client connection that asked, the replica that answers.

A cycle holds no reference to the server or to the pools' owner: what it may ask of the client is
`ClientSide`, what an upstream connection reports to it is `ResponseSink` (uvicorn's pattern: a
cycle gets a transport-like object, a flow object and callbacks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.router.headers import ResponseHead


class ClientSide(Protocol):
    """What a request cycle may ask of the client connection it answers."""

    write_paused: bool  # the client is not reading: stop reading the replica
    closed: bool

    def write(self, data: bytes) -> None: ...
    def close(self) -> None:
        """Close once what was written has left (the end of a spliced stream)."""

    def abort(self) -> None:
        """Close at once, dropping what was not sent (a response cut short must not look complete)."""

    def hold_body(self) -> None:
        """Stop reading the client: the request body buffered for a replica reached the limit."""

    def release_body(self) -> None:
        """The buffered body left for the replica: reading may go on."""

    def pause_for_replica(self) -> None:
        """The replica's connection is not taking the body: stop reading the client."""

    def resume_for_replica(self) -> None: ...
    def start_splice(self) -> bytes:
        """The replica switched protocols: pass bytes through from now on; returns what the client sent early."""

    def cycle_done(self, cycle: object) -> None:
        """The response is complete (or the request given up): the connection goes on or closes."""


class ResponseSink(Protocol):
    """What an upstream connection reports to the request cycle that borrowed it."""

    def on_response_head(self, status: int, reason: bytes, head: ResponseHead, keep_alive: bool) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_complete(self) -> None: ...
    def on_upstream_raw(self, data: bytes) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_error(self, message: str) -> None: ...
    def client_write_paused(self) -> bool: ...
    def flush(self) -> None: ...
    def pause_request(self) -> None: ...
    def resume_request(self) -> None: ...
