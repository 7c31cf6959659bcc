"""plot.png: replicas, concurrency and the queue over time, panic shaded; a compared run drawn beside.

matplotlib is optional (``pip install 'serving-gateway[simulate]'``): without it ``draw`` says why it
drew nothing and the CSV and JSON are written all the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.simulate.engine import Row

# (line style, colours of desired, ready, stable, panic, queued) of the run, then of the compared run
_STYLES = (
    ("-", ("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:red")),
    ("--", ("navy", "olive", "tab:pink", "tab:brown", "black")),
)
MISSING = "plot.png skipped: matplotlib is not installed (pip install 'serving-gateway[simulate]')"


def draw(path: Path, runs: Sequence[tuple[str, Sequence[Row]]], title: str = "") -> str | None:
    """Draw the runs into ``path``; returns None when drawn, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return MISSING
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 8), constrained_layout=True)
    replicas, concurrency, queued = axes
    for (name, rows), style in zip(runs, _STYLES, strict=False):
        suffix = f" ({name})" if len(runs) > 1 else ""
        line, colors = style
        t = [row.time for row in rows]
        replicas.step(t, [row.desired for row in rows], line, where="post", color=colors[0], label=f"desired{suffix}")
        replicas.step(t, [row.ready for row in rows], line, where="post", color=colors[1], label=f"ready{suffix}")
        concurrency.plot(t, [_value(row.stable) for row in rows], line, color=colors[2], label=f"stable{suffix}")
        concurrency.plot(t, [_value(row.panic) for row in rows], line, color=colors[3], label=f"panic{suffix}")
        queued.step(t, [row.queued for row in rows], line, where="post", color=colors[4], label=f"queued{suffix}")
        _shade_panic(axes, rows, alpha=0.15 if line == "-" else 0.1, hatch=None if line == "-" else "//")
    replicas.set_ylabel("replicas")
    concurrency.set_ylabel("concurrency (window averages)")
    queued.set_ylabel("queued requests")
    queued.set_xlabel("time (s)")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _value(value: float | None) -> float:
    return math.nan if value is None else value


def _shade_panic(axes: Any, rows: Sequence[Row], *, alpha: float, hatch: str | None) -> None:
    """One shaded span per stretch of seconds in panic mode."""
    start: int | None = None
    for row in [*rows, None]:
        if row is not None and row.panicking:
            if start is None:
                start = row.time
            continue
        if start is not None:
            end = row.time if row is not None else rows[-1].time + 1
            for ax in axes:
                ax.axvspan(start, end, color="tab:orange", alpha=alpha, hatch=hatch, linewidth=0)
            start = None
