"""The harness's parts on their own: the open-loop generator's clock, wrk's report, percentiles, tables."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.harness import openloop, procs, report, stats, wrk
from loadtests.harness.procs import HarnessError
from loadtests.scenarios import predict

HOST = "x.default.example.com"


@pytest.fixture
def stalling_backend() -> Iterator[int]:
    """HTTP/1.1 on loopback that holds its first answer for 1 s and answers the rest at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    seen = [0]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while not stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                _head, buf = buf.split(b"\r\n\r\n", 1)
                seen[0] += 1
                if seen[0] == 1:
                    time.sleep(1.0)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Gateway-Revision: x-default\r\n\r\nok")

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()


@pytest.mark.e2e
def test_latency_counts_from_the_scheduled_send_time(stalling_backend: int, tmp_path: Path) -> None:
    # one connection, 10 req/s: the first answer takes 1 s, so the requests scheduled at 0.1 .. 0.9 s
    # cannot leave before ~1 s. Measured from when they left they would look instant (coordinated
    # omission); from their schedule, the one due at 0.1 s waited about 0.9 s.
    plan = openloop.Plan(
        stalling_backend, openloop.steps([10.0], 2.0, HOST, "/"), connections=1, keep_header="X-Gateway-Revision"
    )
    outcome = openloop.run(plan, tmp_path, "stall", cpu=None)
    assert outcome.sent == 20 and outcome.ok == 20 and outcome.errors == 0
    by_offset = {round(r[0], 2): r for r in outcome.rows}
    assert by_offset[0.0][2] >= 0.95
    assert by_offset[0.1][2] >= 0.85  # queued behind the stall: counted from 0.1 s
    assert by_offset[0.5][2] >= 0.45
    assert by_offset[1.9][2] < 0.5  # long after the stall: fast again
    assert all(r[5] == "x-default" for r in outcome.rows)
    assert outcome.t0_wall > 0


@pytest.mark.e2e
def test_a_refused_connection_is_an_error_row_not_a_lost_request(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # bound, never listening: connections are refused
        outcome = openloop.run(openloop.Plan(port, openloop.steps([20.0], 0.2, HOST, "/")), tmp_path, "refused", cpu=None)
    assert outcome.sent == 4 and outcome.answered == 0 and outcome.errors == 4
    assert all(r[3] == -1 and "Connect" in r[4] for r in outcome.rows)


def test_steps_pace_each_rate_within_its_step() -> None:
    plan = openloop.steps([2.0, 4.0], 1.0, HOST, "/p")
    assert [round(t, 3) for t, _h, _p in plan] == [0.0, 0.5, 1.0, 1.25, 1.5, 1.75]
    assert {(h, p) for _t, h, p in plan} == {(HOST, "/p")}


WRK_OUT = """Running 2s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  400.00us  12.00ms   90.00%
  Latency Distribution
     50%    2.05ms
     75%  750.00us
     90%    2.50ms
     99%    1.20s
  41000 requests in 2.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  20500.50
Transfer/sec:      2.00MB
"""


def test_wrk_report_is_read_into_figures() -> None:
    got = wrk.parse(WRK_OUT)
    assert got == {
        "rps": 20500.5,
        "requests": 41000,
        "p50_ms": 2.05,
        "p75_ms": 0.75,
        "p90_ms": 2.5,
        "p99_ms": 1200.0,
        "non2xx": 7,
        "socket_errors": 3,
    }


def test_wrk_latency_in_an_unknown_unit_is_refused() -> None:
    with pytest.raises(HarnessError, match="12parsecs"):
        wrk.parse("  Latency Distribution\n     50%    12parsecs\n")


def test_percentiles_are_latencies_some_request_had() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.pct(values, 50) == 50.0 and stats.pct(values, 99) == 99.0 and stats.pct(values, 100) == 100.0
    assert stats.pct([3.0], 99) == 3.0 and stats.pct([], 50) is None
    assert stats.ratio(1.0, 0.0) is None and stats.ratio(1.0, 4.0) == 0.25


def test_summary_tables_and_failed_scenarios() -> None:
    run = {
        "size": "quick",
        "started": "T",
        "wall_s": 3.0,
        "machine": {
            k: "m"
            for k in ("cpu_model", "cores", "kernel", "python", "nginx", "haproxy", "wrk", "gateway_commit", "loadavg_at_start")
        },
    }
    ok = report.Result(tables=[report.Table("t", ["a", "b"], [[1234567, 0.5], [None, 101.25]])])
    ok.check("fine", True)
    ok.check("bad", False, "1 of 2")
    text = report.summary(
        run,
        {
            "one": {"title": "One", "wall_s": 1.0, **report.as_dict(ok)},
            "two": {"title": "Two", "wall_s": 0.0, "error": "HarnessError: boom"},
        },
    )
    assert "| 1,234,567 | 0.5 |" in text and "| — | 101.2 |" in text
    assert "✅ fine" in text and "❌ bad (1 of 2)" in text
    assert "**Failed to run**: HarnessError: boom" in text


def test_agreement_compares_each_simulated_second_with_the_sample_at_that_instant() -> None:
    samples = [{"t": 0.2, "ready": 0}, {"t": 1.0, "ready": 1}, {"t": 1.9, "ready": 3}, {"t": 2.8, "ready": 3}]
    predicted = [
        {"time": 0, "ready": 0},
        {"time": 1, "ready": 1},
        {"time": 2, "ready": 1},
        {"time": 3, "ready": 3},
        {"time": 5, "ready": 3},
    ]
    # second 0: no sample yet; 1: sample at 1.0 (equal); 2: sample at 1.9 (3 vs 1: off by two);
    # 3: sample at 2.8 (equal); 5: the last sample is 2.2 s old, not compared
    assert predict.agreement(samples, predicted, "ready") == {
        "seconds": 3,
        "within_one": 2,
        "exact": 2,
        "share_within_one": 0.667,
    }


def test_the_predicted_curve_is_there_exactly_when_the_simulator_is(tmp_path: Path) -> None:
    from loadtests.scenarios import burst

    config = tmp_path / "burst.yaml"
    config.write_text(burst.config())
    outcome = openloop.Outcome(0.0, [[k / 10, 0.001, 0.1, 200, "", ""] for k in range(50)])
    curve = predict.replica_curve(config, outcome, 0.1, 8, 0.4)
    if importlib.util.find_spec("gateway.simulate") is None:
        assert curve is None and "gateway.simulate is not in this tree" in predict.why_not()
    else:
        assert curve is not None and [row["time"] for row in curve] == list(range(8))
        assert curve[0]["ready"] == 0 and max(row["ready"] for row in curve) >= 1


def test_an_interrupt_while_a_process_starts_still_stops_that_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI once left a soak's gateway running after SIGTERM: the interrupt came between the fork and the Stack
    # keeping the process, so nothing stopped it. Here the signal arrives at that very moment, right after the fork.
    real_popen = subprocess.Popen

    children: list[subprocess.Popen[bytes]] = []

    def popen_then_signal(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        children.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGTERM)
        return children[-1]

    previous = signal.signal(signal.SIGTERM, procs.interrupt)
    monkeypatch.setattr(subprocess, "Popen", popen_then_signal)  # the module procs calls it through
    try:
        with pytest.raises(KeyboardInterrupt), procs.Stack(tmp_path) as stack:
            # the process under test only has to outlive the start; the Stack kills it at once, nobody waits 60 s
            stack.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
            pytest.fail("the interrupt was not raised once the process was held")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stack.procs == [] and children[0].poll() is not None  # stopped by the Stack on the way out
    with pytest.raises(KeyboardInterrupt):  # outside a start, the handler interrupts at once
        procs.interrupt(signal.SIGTERM, None)
