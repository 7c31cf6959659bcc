"""Traces: the requests a simulation replays, read from CSV or built from rows.

Two CSV forms, told apart by the header (case and spaces ignored; blank lines and lines starting
with ``#`` skipped):

* ``time,duration`` — one row per request: its arrival in seconds from the start and the seconds a
  replica takes to answer it. Rows need not be sorted (they are sorted by time, stably).
* ``second,rps,duration`` — a rate per second: ``rps`` requests (a number, fractions carry over to
  the next seconds) arrive during second ``second`` (a whole number), each taking ``duration``
  seconds. A row holds until the next row's second (a row for every second lists them all; a step
  trace needs only its steps); before the first row there are no requests, and the last row holds
  for its own second only. Arrivals are spread evenly by default: the k-th
  request of the whole trace (from 0) arrives at the first instant of a second with a rate at which
  the cumulative rate has reached k, so 10 rps in second 5 arrive at 5.0, 5.1, ..., 5.9, and 0.5 rps
  in seconds 2 and 3 make one request, at 2.0. With ``arrivals="poisson"`` they form a Poisson process of that rate, drawn
  from ``random.Random(seed)``: the same seed, the same trace.

The columns may come in any order. The simulated span is one second past the last arrival's second
(``second,rps,duration``: past the last row's second, so a trailing row with rps 0 extends it).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import random
import stat
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.simulate.errors import SimulateError

Arrivals = Literal["even", "poisson"]
ARRIVALS: tuple[Arrivals, ...] = ("even", "poisson")

MAX_REQUESTS = 20_000_000
MAX_ROWS = 2_000_000  # rows of a file: one per request costs ~600 bytes each while read (10 million took 6 GB)
MAX_TRACE_BYTES = 128 * 1024 * 1024
MAX_SECONDS = 7 * 24 * 3600

REQUESTS_HEADER = ("time", "duration")
RATES_HEADER = ("second", "rps", "duration")


class TraceError(SimulateError):
    """A trace that cannot be read; the message names the file, the line and the cell."""


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival: ``arrivals[i]`` seconds from the start, taking ``durations[i]`` seconds."""

    arrivals: array[float]
    durations: array[float]
    seconds: int  # the simulated span: series rows 0 .. seconds - 1
    form: Literal["requests", "rates"]
    arrival_model: Arrivals | None = None  # rates only
    seed: int | None = None  # rates with poisson arrivals only

    def __len__(self) -> int:
        return len(self.arrivals)

    def only(self, picks: Iterable[bool]) -> Trace:
        """The requests whose pick is True (one pick per request, in arrival order), over the same span."""
        chosen = list(picks)
        return dataclasses.replace(
            self,
            arrivals=array("d", itertools.compress(self.arrivals, chosen)),
            durations=array("d", itertools.compress(self.durations, chosen)),
        )

    @classmethod
    def from_requests(cls, rows: Iterable[tuple[float, float]]) -> Trace:
        """One (arrival, duration) per request, in any order."""
        return cls._requests([(_finite(t, "time"), _finite(d, "duration")) for t, d in rows], "")

    @classmethod
    def from_rates(cls, rows: Iterable[tuple[int, float, float]], arrivals: Arrivals = "even", seed: int = 0) -> Trace:
        """(second, requests per second, duration) rows, each holding until the next row's second."""
        found = [(_whole(s), _finite(r, "rps"), _finite(d, "duration")) for s, r, d in rows]
        return cls._rates(found, arrivals, seed, "", [0] * len(found))

    @classmethod
    def _requests(cls, rows: list[tuple[float, float]], where: str) -> Trace:
        if not rows:
            raise TraceError(f"{where}no requests: the trace needs at least one row after its header")
        rows = sorted(rows, key=lambda row: row[0])  # stable: equal times keep their order
        if len(rows) > MAX_REQUESTS:
            raise TraceError(f"{where}{len(rows)} requests: at most {MAX_REQUESTS:,} are simulated")
        last = rows[-1][0]
        if last >= MAX_SECONDS:
            raise TraceError(f"{where}the last arrival is at {last:g} s: at most {MAX_SECONDS} s (7 days) are simulated")
        return cls(array("d", (t for t, _ in rows)), array("d", (d for _, d in rows)), math.floor(last) + 1, "requests")

    @classmethod
    def _rates(cls, rows: list[tuple[int, float, float]], arrivals: Arrivals, seed: int, where: str, lines: list[int]) -> Trace:
        if arrivals not in ARRIVALS:
            raise TraceError(f"arrivals must be one of {', '.join(ARRIVALS)}, got {arrivals!r}")
        if not rows:
            raise TraceError(f"{where}no seconds: the trace needs at least one row after its header")
        seen: dict[int, int] = {}
        for (second, _, _), line in zip(rows, lines, strict=True):
            if second in seen:
                at = f" (lines {seen[second]} and {line})" if line else ""
                raise TraceError(f"{where}second {second} is given twice{at}")
            seen[second] = line
        rows = sorted(rows)
        span = rows[-1][0] + 1
        if span > MAX_SECONDS:
            raise TraceError(f"{where}second {span - 1}: at most {MAX_SECONDS} s (7 days) are simulated")
        nexts = [second for second, _, _ in rows[1:]] + [span]
        total = math.fsum(rps * (end - second) for (second, rps, _), end in zip(rows, nexts, strict=True))
        if total > MAX_REQUESTS:
            raise TraceError(f"{where}{total:,.0f} requests: at most {MAX_REQUESTS:,} are simulated")
        rows = [(s, rps, d) for (second, rps, d), end in zip(rows, nexts, strict=True) for s in range(second, end)]
        times, durations = _poisson(rows, seed) if arrivals == "poisson" else _even(rows)
        return cls(times, durations, span, "rates", arrivals, seed if arrivals == "poisson" else None)


def _even(rows: list[tuple[int, float, float]]) -> tuple[array[float], array[float]]:
    """Request k arrives when the cumulative rate reaches k (the rate is constant within each second)."""
    times: array[float] = array("d")
    durations: array[float] = array("d")
    done = 0.0  # requests due before the current second, fractions included
    for second, rps, duration in rows:
        if rps > 0:
            k = math.ceil(done - 1e-9)
            end = done + rps
            while k < end - 1e-9:
                times.append(second + (k - done) / rps)
                durations.append(duration)
                k += 1
        done += rps
    return times, durations


def _poisson(rows: list[tuple[int, float, float]], seed: int) -> tuple[array[float], array[float]]:
    """A Poisson process whose rate is constant within each second (memoryless: each second drawn afresh)."""
    rng = random.Random(seed)
    times: array[float] = array("d")
    durations: array[float] = array("d")
    for second, rps, duration in rows:
        if rps <= 0:
            continue
        t = second + rng.expovariate(rps)
        while t < second + 1:
            times.append(t)
            durations.append(duration)
            t += rng.expovariate(rps)
    return times, durations


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{what} must be a number >= 0, got {value!r}")
    return value


def _whole(value: float) -> int:
    if not float(value).is_integer() or value < 0:
        raise TraceError(f"second must be a whole number >= 0, got {value!r}")
    return int(value)


def load_trace(path: str | Path, arrivals: Arrivals = "even", seed: int = 0) -> Trace:
    """Read a trace CSV (either form, see the module docstring); TraceError names the file, line and column."""
    path = Path(path)
    rows = _rows(path, _text(path))
    if not rows:
        raise TraceError(f"{path}: empty: expected a header, {','.join(REQUESTS_HEADER)} or {','.join(RATES_HEADER)}")
    line, header = rows[0]
    columns = tuple(cell.strip().lower() for cell in header)
    if sorted(columns) == sorted(REQUESTS_HEADER):
        cells = _numbers(path, rows[1:], columns, REQUESTS_HEADER)
        return Trace._requests([(t, d) for _, (t, d) in cells], f"{path}: ")
    if sorted(columns) == sorted(RATES_HEADER):
        cells = _numbers(path, rows[1:], columns, RATES_HEADER)
        for n, (second, _, _) in cells:
            if not second.is_integer():
                raise TraceError(f"{path}: line {n}: second must be a whole number, got {second:g}")
        found = [(int(s), r, d) for _, (s, r, d) in cells]
        return Trace._rates(found, arrivals, seed, f"{path}: ", [n for n, _ in cells])
    raise TraceError(
        f"{path}: line {line}: unknown header {','.join(cell.strip() for cell in header)!r}: "
        f"expected {','.join(REQUESTS_HEADER)} (one row per request) or {','.join(RATES_HEADER)} (a rate per second)"
    )


def _text(path: Path) -> str:
    """The file's text, refusing what is not a regular file or is too large to read whole."""
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):
            raise TraceError(f"{path}: not a regular file (a trace is a CSV file)")
        if found.st_size > MAX_TRACE_BYTES:
            raise TraceError(
                f"{path}: {found.st_size:,} bytes: at most {MAX_TRACE_BYTES:,} are read "
                f"(a rate per second, {','.join(RATES_HEADER)}, describes long traces in little space)"
            )
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not a text file (UTF-8 CSV expected)") from exc


def _rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """The rows with content, numbered by line, at most MAX_ROWS past the header."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(text.splitlines())
    try:
        for n, cells in enumerate(reader, start=1):
            if _content(cells):
                rows.append((n, cells))
                if len(rows) > MAX_ROWS + 1:
                    raise TraceError(
                        f"{path}: more than {MAX_ROWS:,} rows: a trace of one row per request is read up to that "
                        f"(use {','.join(RATES_HEADER)} for more)"
                    )
    except csv.Error as exc:
        raise TraceError(f"{path}: line {reader.line_num}: not CSV: {exc}") from exc
    return rows


def _content(cells: list[str]) -> bool:
    return bool(cells) and any(cell.strip() for cell in cells) and not cells[0].lstrip().startswith("#")


def _numbers(
    path: Path, rows: list[tuple[int, list[str]]], columns: tuple[str, ...], order: tuple[str, ...]
) -> list[tuple[int, tuple[float, ...]]]:
    """Every row's cells as numbers >= 0 in ``order``, or TraceError naming the line and the column."""
    where = [columns.index(name) for name in order]
    found = []
    for n, cells in rows:
        if len(cells) != len(columns):
            raise TraceError(f"{path}: line {n}: {len(cells)} cells, expected {len(columns)} ({','.join(columns)})")
        values = []
        for column, cell in zip(columns, cells, strict=True):
            try:
                value = float(cell.strip())
            except ValueError:
                raise TraceError(f"{path}: line {n}: {column} must be a number, got {cell.strip()!r}") from None
            if not math.isfinite(value) or value < 0:
                raise TraceError(f"{path}: line {n}: {column} must be >= 0, got {cell.strip()}")
            values.append(value)
        found.append((n, tuple(values[i] for i in where)))
    return found
