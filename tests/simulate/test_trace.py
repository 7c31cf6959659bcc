"""Reading traces: both CSV forms, how rates become arrivals, and every bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.simulate import Trace, TraceError, load_trace
from gateway.simulate.trace import MAX_ROWS, MAX_TRACE_BYTES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def test_requests_form_is_sorted_by_time_and_spans_past_the_last_arrival(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "Time, Duration\n# a comment\n2.5,0.1\n\n0,1\n2.5,0.2\n"))
    assert list(trace.arrivals) == [0.0, 2.5, 2.5]
    assert list(trace.durations) == [1.0, 0.1, 0.2]  # equal times keep their order
    assert (trace.seconds, trace.form, len(trace)) == (3, "requests", 3)


def test_rates_form_spreads_arrivals_evenly_holds_each_row_and_carries_fractions(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "second,rps,duration\n0,4,0.5\n2,0.5,1\n3,0.5,2\n5,0,1\n"))
    # 4 rps in seconds 0 and 1 (the row holds until second 2): 0, 0.25, ... 1.75. Then 0.5 rps in seconds
    # 2, 3 and 4: request 8 when the count reaches 8 (at 2.0), request 9 when it reaches 9 (at 4.0).
    assert list(trace.arrivals) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 4.0]
    assert list(trace.durations) == [0.5] * 8 + [1.0, 2.0]
    assert trace.seconds == 6  # through the last row's second


def test_a_step_trace_needs_only_its_steps_and_columns_may_come_in_any_order(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "rps,second,duration\n50,60,0.2\n10,0,0.1\n0,120,0.1\n"))
    assert len(trace) == 60 * 10 + 60 * 50 and trace.seconds == 121
    assert (trace.arrivals[600], trace.durations[599], trace.durations[600]) == (60.0, 0.1, 0.2)
    trace = load_trace(write(tmp_path, "Duration,Time\n0.1,2\n"))
    assert (list(trace.arrivals), list(trace.durations)) == ([2.0], [0.1])


def test_even_arrivals_of_a_whole_hour_count_exactly() -> None:
    trace = Trace.from_rates([(s, 100, 0.1) for s in range(3600)])
    assert len(trace) == 360_000 and trace.seconds == 3600
    assert trace.arrivals[100] == 1.0 and trace.arrivals[-1] == pytest.approx(3599.99)


def test_poisson_arrivals_are_fixed_by_the_seed() -> None:
    rows = [(s, 50, 0.1) for s in range(100)]
    first = Trace.from_rates(rows, arrivals="poisson", seed=7)
    again = Trace.from_rates(rows, arrivals="poisson", seed=7)
    other = Trace.from_rates(rows, arrivals="poisson", seed=8)
    assert first.arrivals == again.arrivals and first.arrivals != other.arrivals
    assert 4500 < len(first) < 5500  # 5000 expected, sd ~71
    assert list(first.arrivals) == sorted(first.arrivals) and all(0 <= t < 100 for t in first.arrivals)
    assert (first.arrival_model, first.seed) == ("poisson", 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "trace.csv: empty: expected a header, time,duration or second,rps,duration"),
        ("# only a comment\n\n", "empty: expected a header"),
        ("time,duration\n", "no requests: the trace needs at least one row"),
        ("second,rps,duration\n", "no seconds: the trace needs at least one row"),
        ("arrival,duration\n1,1\n", "line 1: unknown header 'arrival,duration': expected time,duration"),
        ("time,duration,extra\n1,1,1\n", "unknown header 'time,duration,extra'"),
        ("time,duration\n1,0.5\n2,fast\n", "line 3: duration must be a number, got 'fast'"),
        ("time,duration\n\n-1,0.5\n", "line 3: time must be >= 0, got -1"),
        ("time,duration\n1,-0.5\n", "line 2: duration must be >= 0, got -0.5"),
        ("time,duration\nnan,1\n", "line 2: time must be >= 0, got nan"),
        ("time,duration\n1\n", "line 2: 1 cells, expected 2 (time,duration)"),
        ("second,rps,duration\n0,10,0.1\n1.5,10,0.1\n", "line 3: second must be a whole number, got 1.5"),
        ("second,rps,duration\n0,ten,0.1\n", "line 2: rps must be a number, got 'ten'"),
        ("second,rps,duration\n0,-3,0.1\n", "line 2: rps must be >= 0, got -3"),
        ("second,rps,duration\n4,1,1\n5,1,1\n4,2,1\n", "second 4 is given twice (lines 2 and 4)"),
        ("second,rps,duration\n0,30000000,1\n", "30,000,000 requests: at most 20,000,000 are simulated"),
        ("second,rps,duration\n0,100,1\n500000,0,1\n", "50,000,000 requests: at most 20,000,000 are simulated"),
        ("second,rps,duration\n900000,0,1\n", "second 900000: at most 604800 s (7 days) are simulated"),
        ("time,duration\n900000,1\n", "the last arrival is at 900000 s: at most 604800 s"),
    ],
)
def test_bad_traces_are_named_with_their_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(write(tmp_path, text))
    assert message in str(caught.value)
    assert str(tmp_path / "trace.csv") in str(caught.value)


def test_a_missing_or_binary_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"nope\.csv: cannot read the trace: No such file"):
        load_trace(tmp_path / "nope.csv")
    binary = tmp_path / "trace.csv"
    binary.write_bytes(b"\xff\xfe\x00time")
    with pytest.raises(TraceError, match="not a text file"):
        load_trace(binary)


def test_rows_given_in_python_are_checked_too() -> None:
    with pytest.raises(TraceError, match=r"time must be a number >= 0, got -1\.0"):
        Trace.from_requests([(-1, 1)])
    with pytest.raises(TraceError, match="second must be a whole number >= 0, got 0.5"):
        Trace.from_rates([(0.5, 1, 1)])  # type: ignore[list-item]
    with pytest.raises(TraceError, match="arrivals must be one of even, poisson"):
        Trace.from_rates([(0, 1, 1)], arrivals="bursty")  # type: ignore[arg-type]


def test_traces_that_would_take_the_machine_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """Outside attack: 10 million request rows took 6 GB and /dev/zero never ended; a field past csv's
    limit was a traceback."""
    with pytest.raises(TraceError, match="/dev/zero: not a regular file"):
        load_trace("/dev/zero")
    big = tmp_path / "big.csv"
    with big.open("w") as out:
        out.write("time,duration\n")
        out.truncate(MAX_TRACE_BYTES + 1)
    with pytest.raises(TraceError, match=f"at most {MAX_TRACE_BYTES:,} are read"):
        load_trace(big)
    wide = tmp_path / "wide.csv"
    wide.write_text('time,duration\n"' + "1" * 200_000 + '",0.1\n')
    with pytest.raises(TraceError, match="line 2: not CSV: field larger than field limit"):
        load_trace(wide)


@pytest.mark.e2e  # reads two million rows: 5 s
def test_a_trace_of_more_rows_than_the_limit_is_refused(tmp_path: Path) -> None:
    """Outside attack: 10 million request rows took 6 GB."""
    many = tmp_path / "many.csv"
    many.write_text("time,duration\n" + "1,0.1\n" * (MAX_ROWS + 1))
    with pytest.raises(TraceError, match=f"more than {MAX_ROWS:,} rows"):
        load_trace(many)
