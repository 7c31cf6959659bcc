"""``gateway simulate``: run a trace through the autoscaler, write series.csv, summary.json and plot.png.

Bad input (config, trace, option values) is one line on stderr naming it, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.simulate import Result

COMPARE_DIR = "compare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--file", dest="files", action="append", required=True, metavar="PATH", help="gateway config (YAML file or folder)"
    )
    parser.add_argument(
        "--trace", required=True, metavar="CSV", help="time,duration (one row per request) or second,rps,duration"
    )
    parser.add_argument("--out", default="simulation", metavar="DIR", help="where the files go (default %(default)s)")
    parser.add_argument("--service", metavar="NAME", help="the service to simulate, NAME or NAMESPACE/NAME (needed if several)")
    parser.add_argument(
        "--revision", metavar="NAME", help="default (the default) or canary: the revision simulated, with its share of the trace"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. autoscaler.stableWindow=30s",
    )
    parser.add_argument(
        "--compare", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="a second run with these settings on top"
    )
    parser.add_argument(
        "--startup",
        default="0.4s",
        metavar="DURATION[,DURATION...]",
        help="replica start-up time (default %(default)s); several, e.g. measured ones, are taken in turn",
    )
    parser.add_argument(
        "--arrivals",
        choices=("even", "poisson"),
        default="even",
        help="second,rps traces: spread evenly or Poisson (default even)",
    )
    parser.add_argument("--seed", type=int, default=None, help="second,rps traces: seed of the Poisson arrivals (default 0)")


def main_from_args(args: argparse.Namespace) -> int:
    from gateway.simulate.errors import SimulateError

    try:
        return _simulate(args)
    except SimulateError as exc:
        print(f"gateway simulate: {exc}", file=sys.stderr)
        return 2


def _simulate(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load
    from gateway.simulate import SimulateError, load_trace, run, select_revision, select_service
    from gateway.simulate.overrides import apply_overrides, parse_overrides

    startup = _startup(args.startup)
    try:
        config = load(args.files)
    except ConfigError as exc:
        raise SimulateError(" / ".join(exc.problems or [str(exc)])) from exc
    base = parse_overrides(args.overrides, "--set")
    compare = parse_overrides(args.compare, "--compare")
    spec = select_service(config, args.service)
    select_revision(spec, args.revision)
    settings, scaling = apply_overrides(config.gateway, spec.scaling, base, "--set")
    apply_overrides(settings, scaling, compare, "--compare")  # each bad value named by its own option, before any run
    trace = load_trace(args.trace, arrivals=args.arrivals, seed=0 if args.seed is None else args.seed)
    if trace.form == "requests" and (args.arrivals != "even" or args.seed is not None):
        given = " and ".join(
            o for o, on in (("--arrivals poisson", args.arrivals != "even"), ("--seed", args.seed is not None)) if on
        )
        raise SimulateError(
            f"{given}: {args.trace} is a time,duration trace (one row per request, each at its own time); "
            "arrivals are drawn only for second,rps,duration traces"
        )
    runs = [("run", run(config, args.service, trace, startup=startup, overrides=base, revision=args.revision))]
    if compare:
        runs.append(
            ("compare", run(config, args.service, trace, startup=startup, overrides=[*base, *compare], revision=args.revision))
        )
    _report(args, runs, base, compare, trace.seconds)
    return 0


def _startup(text: str) -> list[float]:
    from gateway.config import parse_duration
    from gateway.simulate import SimulateError

    found: list[float] = []
    for part in text.split(","):
        value = parse_duration(part.strip())
        if value is None or value < 0:
            raise SimulateError(f"--startup must be durations >= 0 such as 0.4s or 0.4s,1.2s, got {text!r}")
        found.append(value)
    return found


def _report(
    args: argparse.Namespace, runs: list[tuple[str, Result]], base: Sequence[object], compare: Sequence[object], seconds: int
) -> None:
    """Write the files of every run, draw them, and print the table."""
    from gateway.simulate import SimulateError
    from gateway.simulate.output import table, write_run
    from gateway.simulate.plot import draw

    out = Path(args.out)
    try:
        for (_, result), where in zip(runs, (out, out / COMPARE_DIR), strict=False):
            write_run(where, result.series, result.summary)
        if not compare:
            _remove_stale_compare(out / COMPARE_DIR)
    except OSError as exc:
        raise SimulateError(f"--out {out}: cannot write there: {exc.strerror or exc}") from exc
    settings = runs[0][1].summary["settings"]
    title = f"{settings['service']}: {Path(args.trace).name}"
    if settings["traffic_percent"] < 100 or args.revision:
        title = f"{settings['service']}, {settings['revision']} ({settings['traffic_percent']} %): {Path(args.trace).name}"
    skipped = draw(out / "plot.png", [(name, result.series) for name, result in runs], title)
    print(f"simulated {title}, {seconds} s, startup {args.startup}{_with(base)}")
    if compare:
        print(f"compare: {' '.join(str(item) for item in compare)}")
    for note in settings["notes"]:
        print(f"note: {note}")
    print(table([(name, result.summary) for name, result in runs]))
    written = ["series.csv", "summary.json"] + ([] if skipped else ["plot.png"])
    print(f"wrote {', '.join(str(out / name) for name in written)}{f' and {out / COMPARE_DIR}/' if compare else ''}")
    if skipped:
        print(skipped, file=sys.stderr)


def _remove_stale_compare(where: Path) -> None:
    """An earlier --compare run's files in the reused --out: removed (only the files this writes there), so the
    folder does not pass for this run's comparison."""
    from gateway.simulate.output import RUN_FILES

    if not where.is_dir():
        return
    for name in RUN_FILES:
        (where / name).unlink(missing_ok=True)
    if not any(where.iterdir()):
        where.rmdir()


def _with(overrides: Sequence[object]) -> str:
    return f", with {' '.join(str(item) for item in overrides)}" if overrides else ""
