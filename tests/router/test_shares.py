"""plane_capacity: each data plane's part of a replica's containerConcurrency (gateway/router/shares.py)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import zlib

import pytest

from gateway.router.shares import check_share, plane_capacity
from gateway.types import Endpoint

A = Endpoint("10.0.0.1", 8080)  # crc32("10.0.0.1:8080") = 701687790: offset 0 for 2 and 3 planes, 2 for 4
B = Endpoint("10.0.0.2", 8080)  # crc32 = 2940638528: offset 2 for 3 planes, 0 for 4
C = Endpoint("127.0.0.1", 9000)  # crc32 = 2029196613: offset 1 for 2 and 4 planes, 0 for 3
D = Endpoint("model-a-7f9c.default.svc", 80)  # crc32 = 1589818876: offset 1 for 3 planes, 0 for 2 and 4


@pytest.mark.parametrize(
    ("endpoint", "cc", "count", "capacities"),
    [
        (A, 0, 1, [0]),  # unlimited stays unlimited (0)
        (A, 0, 3, [0, 0, 0]),
        (A, 1, 1, [1]),  # one data plane: the whole replica
        (C, 8, 1, [8]),
        (A, 2, 2, [1, 1]),
        (C, 2, 2, [1, 1]),
        (A, 3, 2, [2, 1]),  # offset 0: slots 0 and 2 are plane 0's
        (C, 3, 2, [1, 2]),  # offset 1: slots 0 and 2 are plane 1's
        (D, 3, 2, [2, 1]),
        (A, 1, 2, [1, 0]),  # fewer slots than planes: the replica serves only some planes
        (C, 1, 2, [0, 1]),
        (A, 2, 3, [1, 1, 0]),
        (B, 2, 3, [1, 0, 1]),  # offset 2: slot 0 is plane 2's, slot 1 wraps to plane 0
        (D, 2, 3, [0, 1, 1]),
        (B, 5, 3, [2, 1, 2]),
        (D, 5, 3, [1, 2, 2]),
        (A, 7, 4, [2, 1, 2, 2]),  # offset 2: planes 2, 3, 0 take the three extra slots
        (C, 7, 4, [1, 2, 2, 2]),
        (B, 12, 4, [3, 3, 3, 3]),
        (A, 1000, 3, [334, 333, 333]),
    ],
)
def test_plane_capacity_table(endpoint: Endpoint, cc: int, count: int, capacities: list[int]) -> None:
    assert [plane_capacity(endpoint, cc, index, count) for index in range(count)] == capacities


def _random_endpoint(rng: random.Random) -> Endpoint:
    if rng.random() < 0.5:
        host = ".".join(str(rng.randrange(256)) for _ in range(4))
    else:
        host = f"rev-{rng.randrange(10**6):06d}.ns.svc.cluster.local"
    return Endpoint(host, rng.randrange(1, 65536))


def test_every_replica_is_divided_exactly_and_evenly() -> None:
    """For every endpoint, cc in 0..10 and count in 1..6, with q, r = divmod(cc, count):

    - the capacities of the count planes sum to exactly cc (never more: the limit holds; never
      less: no slot is wasted);
    - r planes get q + 1 and the others q, so every plane gets floor(cc/count) or ceil(cc/count);
    - the planes with q + 1 are the r consecutive planes (mod count) from crc32("host:port") % count;
    - each equals the number of slots j in 0..cc-1 with (offset + j) % count == plane.
    """
    rng = random.Random(11)
    for _ in range(300):
        endpoint = _random_endpoint(rng)
        for cc in range(11):
            for count in range(1, 7):
                got = [plane_capacity(endpoint, cc, index, count) for index in range(count)]
                q, r = divmod(cc, count)
                offset = zlib.crc32(f"{endpoint.host}:{endpoint.port}".encode()) % count
                assert sum(got) == cc, (endpoint, cc, count, got)
                assert sorted(got) == [q] * (count - r) + [q + 1] * r, (endpoint, cc, count, got)
                assert [p for p in range(count) if got[p] == q + 1] == sorted((offset + k) % count for k in range(r))
                owners = [(offset + j) % count for j in range(cc)]
                assert got == [owners.count(p) for p in range(count)]


def test_replicas_with_fewer_slots_than_planes_are_spread_over_all_planes() -> None:
    # cc=1 with 3 planes: each replica serves one plane; over many replicas every plane gets about a third.
    rng = random.Random(3)
    endpoints = {_random_endpoint(rng) for _ in range(600)}
    owned = [sum(plane_capacity(e, 1, index, 3) for e in endpoints) for index in range(3)]
    assert sum(owned) == len(endpoints)
    assert all(150 <= n <= 250 for n in owned), owned


def test_two_slots_two_planes_give_every_plane_one_slot_on_every_replica() -> None:
    rng = random.Random(5)
    for endpoint in [A, B, C, D, *(_random_endpoint(rng) for _ in range(200))]:
        assert plane_capacity(endpoint, 2, 0, 2) == 1
        assert plane_capacity(endpoint, 2, 1, 2) == 1


@pytest.mark.e2e
def test_the_division_does_not_depend_on_the_process() -> None:
    # Python's str hash is salted per process; the division must not be (planes are separate processes).
    code = (
        "from gateway.router.shares import plane_capacity; from gateway.types import Endpoint; "
        "print([plane_capacity(Endpoint('10.1.2.%d' % i, 8000 + i), 1, p, 4) for i in range(40) for p in range(4)])"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    here = str([plane_capacity(Endpoint(f"10.1.2.{i}", 8000 + i), 1, p, 4) for i in range(40) for p in range(4)])
    assert outputs == {here + "\n"}


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [
        (0, 0, "the number of data planes must be at least 1, not 0"),
        (0, -2, "the number of data planes must be at least 1, not -2"),
        (-1, 2, r"data plane index -1 is outside 0\.\.1 \(the number of data planes is 2\)"),
        (2, 2, r"data plane index 2 is outside 0\.\.1 \(the number of data planes is 2\)"),
        (1, 1, r"data plane index 1 is outside 0\.\.0 \(the number of data planes is 1\)"),
    ],
)
def test_a_share_that_is_not_a_plane_of_the_deployment_is_refused(index: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_share(index, count)
    with pytest.raises(ValueError, match=message):
        plane_capacity(A, 4, index, count)


def test_negative_container_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="containerConcurrency must be 0 \\(unlimited\\) or more, not -1"):
        plane_capacity(A, -1, 0, 2)


def _capacity(endpoint: Endpoint, cc: int, shares: list[tuple[int, int]]) -> int:
    return min(plane_capacity(endpoint, cc, index, count) for index, count in shares)


def _renumberings() -> list[tuple[list[str], list[str]]]:
    """(members before, members after), sorted as the membership sorts them: one instance left or joined."""
    out = []
    for size in (1, 2, 3, 4, 5):
        members = [f"gw-{i}" for i in range(size)]
        for gone in members if size > 1 else []:
            out.append((members, [m for m in members if m != gone]))
        for position in range(size + 1):
            joined = sorted([*members[:position], f"gw-{position - 1}x", *members[position:]])
            out.append((members, joined))
    return out


def _total(endpoint: Endpoint, cc: int, before: list[str], after: list[str], moved: set[str], phase: int, safe: bool) -> int:
    """The replica's capacity over all instances at a moment of the change: `moved` have seen it."""
    total = 0
    for member in set(before) | set(after):
        old = [(before.index(member), len(before))] if member in before else []
        new = [(after.index(member), len(after))] if member in after else []
        if not new:
            continue  # it left: once gone from the membership it holds nothing
        if not old:
            total += _capacity(endpoint, cc, new) if phase == 2 else 0  # joined: admits once all have seen it
        elif member not in moved:
            total += _capacity(endpoint, cc, old if phase == 1 else old + new)
        else:
            total += _capacity(endpoint, cc, (old + new if phase == 1 else new) if safe else new)
    return total


def test_planes_renumbering_at_different_moments_never_overlap() -> None:
    """Instances renumber when one joins or leaves (the membership is sorted), each at its own next beat. Each
    holds the least of its old and new share until every one has switched (Throttler.set_share's `also`), then
    its new share alone: in either half of the change, whoever has moved, no replica gets more than its
    concurrency. Switching straight to the new share would (the second assertion: the test can fail)."""
    rng = random.Random(7)
    overlapped = 0
    for before, after in _renumberings():
        everyone = sorted(set(before) & set(after))
        for _ in range(40):
            endpoint = Endpoint(f"10.0.{rng.randrange(256)}.{rng.randrange(256)}", rng.randrange(1, 65536))
            cc = rng.randrange(1, 9)
            for mask in range(2 ** len(everyone)):
                moved = {m for i, m in enumerate(everyone) if mask >> i & 1}
                for phase in (1, 2):
                    assert _total(endpoint, cc, before, after, moved, phase, safe=True) <= cc, (before, after, moved)
                overlapped += _total(endpoint, cc, before, after, moved, 1, safe=False) > cc
    assert overlapped > 0
