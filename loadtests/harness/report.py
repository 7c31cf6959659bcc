"""What a scenario hands back (figures, tables, checks, plots) and how the run's report is written:
results.json with every figure, summary.md with a table per scenario."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SIZES = ("smoke", "quick", "full")


@dataclass
class Context:
    size: str  # one of SIZES
    work: Path  # the scenario's scratch folder (configs, logs)
    out: Path  # the run's results folder (plots go here)

    def pick(self, smoke: T, quick: T, full: T) -> T:
        return {"smoke": smoke, "quick": quick, "full": full}[self.size]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Result:
    figures: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 10000:
            return f"{value:,.0f}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def summary(run: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    m = run["machine"]
    out = [
        f"# Load tests: {run['size']} run, {run['started']}",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"{m['nginx']}, {m['haproxy']}, {m['wrk']}; gateway {m['gateway_commit']}; load average at start "
        f"{m['loadavg_at_start']}. Wall time {run['wall_s']:.0f} s. Every figure: `results.json`.",
        "",
    ]
    for name, res in results.items():
        out += [f"## {name}: {res['title']} ({res['wall_s']:.0f} s)", ""]
        if res.get("error"):
            out += [f"**Failed to run**: {res['error']}", ""]
        for table in res.get("tables", []):
            out += [markdown_table(Table(**table))]
        checks = res.get("checks", [])
        if checks:
            out += [
                "Checks: "
                + "; ".join(
                    f"{'✅' if c['ok'] else '❌'} {c['name']}" + (f" ({c['detail']})" if c["detail"] else "") for c in checks
                ),
                "",
            ]
        out += [f"- {note}" for note in res.get("notes", [])]
        out += [f"![{p}]({p})" for p in res.get("plots", [])]
        out.append("")
    return "\n".join(out)


def write(out: Path, run: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**run, "scenarios": results}, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(summary(run, results))


def as_dict(result: Result) -> dict[str, Any]:
    return asdict(result)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib (the `bench` extra) is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
