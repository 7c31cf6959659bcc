"""Several data-plane processes on one port (``gateway serve --workers N``).

The process started is the *supervisor* (supervisor.py): the control plane with the backends, the
autoscaler, reloads and the one admin listener. It starts N *workers* (worker.py), each accepting on
the data-plane address with SO_REUSEPORT and running only the data plane, its endpoints fed by the
supervisor (feed.py). They talk through the hub (hub.py, protocol.py), a Unix socket in the state dir.
"""
