"""The phases of a request cycle, in order; the timeout sweep reads them."""

from enum import IntEnum


class Phase(IntEnum):
    QUEUED = 0  # waiting for a replica slot
    CONNECTING = 1  # a slot is held, a connection to the replica is being opened
    SENT = 2  # the request (head, maybe body) is with the replica
    STREAMING = 3  # the response head arrived; its body is being relayed
    DONE = 4  # answered or given up


QUEUED, CONNECTING, SENT, STREAMING, DONE = Phase
