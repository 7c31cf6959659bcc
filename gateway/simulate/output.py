"""A run's files (series.csv, summary.json) and the table printed to the terminal."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from gateway.simulate.engine import Row

RUN_FILES = ("series.csv", "summary.json")  # what write_run writes in a run's folder
SERIES_COLUMNS = ("time", "desired", "ready", "stable", "panic", "panicking", "queued")

# (summary key, label, format) of the table's rows
_TABLE: tuple[tuple[str, str, str], ...] = (
    ("requests", "requests", "{:,}"),
    ("replica_seconds", "replica-seconds", "{:,.1f}"),
    ("waited_share", "waited for capacity", "{:.2%}"),
    ("wait_p50_s", "wait p50", "{:.3f} s"),
    ("wait_p95_s", "wait p95", "{:.3f} s"),
    ("wait_p99_s", "wait p99", "{:.3f} s"),
    ("wait_max_s", "wait max", "{:.3f} s"),
    ("max_ready", "most ready replicas", "{}"),
    ("max_queued", "most queued", "{:,}"),
    ("panic_seconds", "seconds in panic", "{:,}"),
    ("scale_changes", "replica count changes", "{:,}"),
    ("rejected", "refused (queue full)", "{:,}"),
    ("timed_out", "timed out", "{:,}"),
)


def _number(value: float | None) -> str:
    """Up to the 6 decimals the window averages carry; 0 while the decider has no data (as /metrics shows it)."""
    if value is None:
        return "0"
    return f"{value:.6f}".rstrip("0").rstrip(".")


def write_series(path: Path, rows: Sequence[Row]) -> None:
    """One line per simulated second; ``panicking`` is 0 or 1."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(SERIES_COLUMNS)
        for row in rows:
            writer.writerow(
                (
                    row.time,
                    row.desired,
                    row.ready,
                    _number(row.stable),
                    _number(row.panic),
                    int(row.panicking),
                    row.queued,
                )
            )


def write_summary(path: Path, summary: dict[str, object]) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def write_run(directory: Path, rows: Sequence[Row], summary: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_series(directory / "series.csv", rows)
    write_summary(directory / "summary.json", summary)


def table(runs: Sequence[tuple[str, dict[str, object]]]) -> str:
    """The runs' figures side by side, one column per run, headed by its name."""
    labels = [label for _, label, _ in _TABLE]
    columns = [[name] + [fmt.format(summary[key]) for key, _, fmt in _TABLE] for name, summary in runs]
    width = max(len(label) for label in labels)
    widths = [max(len(cell) for cell in column) for column in columns]
    lines = []
    for i, label in enumerate(["", *labels]):
        cells = "  ".join(column[i].rjust(w) for column, w in zip(columns, widths, strict=True))
        lines.append(f"{label.ljust(width)}  {cells}".rstrip())
    return "\n".join(lines)
