"""Errors raised by the backends package."""

from __future__ import annotations


class BackendConfigError(ValueError):
    """A backend cannot serve the configuration it was given (unknown kind, bad endpoint URL...)."""
