"""Serving Gateway: Host routing, canary split, activator and KPA autoscaler for model servers."""

__version__ = "0.1.0"
