"""The root of the gateway's own errors: what the command line reports as one line, never a traceback."""

from __future__ import annotations


class GatewayError(Exception):
    """Something the user can act on; the message says what happened and what to do."""


class StateDirInUse(GatewayError):
    """Another gateway holds the state directory's lock."""
