"""The one error bad input to a simulation raises; the command line prints it and exits 2."""

from __future__ import annotations


class SimulateError(ValueError):
    """A simulation that cannot run as asked; the message names the input that is wrong."""
