"""`gateway simulate` as a user runs it: the shipped example as a subprocess, and every bad input named, exit 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = ROOT / "config" / "demo.yaml"
BURST = ROOT / "config" / "traces" / "burst.csv"
SUMMARY_KEYS = {"requests", "replica_seconds", "waited_share", "wait_p50_s", "wait_p95_s", "wait_p99_s", "settings"}


def simulate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "simulate", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )


@pytest.mark.e2e
def test_the_shipped_example_writes_series_summary_and_plot_and_a_comparison(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    r = simulate("-f", str(DEMO), "--trace", str(BURST), "--out", str(out), "--compare", "autoscaler.stableWindow=20s")
    assert r.returncode == 0, r.stderr
    assert "compare: autoscaler.stableWindow=20s" in r.stdout
    assert "requests" in r.stdout and "6,000" in r.stdout and "replica-seconds" in r.stdout
    with (out / "series.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["time", "desired", "ready", "stable", "panic", "panicking", "queued"]
    assert [int(row["time"]) for row in rows] == list(range(300))
    assert rows[0]["desired"] == "0" and max(int(row["ready"]) for row in rows) > 1  # from zero, out under the burst
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["requests"] == 6000
    assert summary["settings"]["service"] == "default/iris" and summary["settings"]["startup_s"] == 0.4
    compared = json.loads((out / "compare" / "summary.json").read_text())
    assert compared["settings"]["overrides"] == ["autoscaler.stableWindow=20s"]
    assert compared["replica_seconds"] != summary["replica_seconds"]
    assert len((out / "compare" / "series.csv").read_text().splitlines()) == 301
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.e2e
def test_without_matplotlib_the_plot_is_skipped_with_a_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(ROOT)])}
    trace = tmp_path / "t.csv"
    trace.write_text("time,duration\n0,0.1\n3,0.1\n")
    r = simulate("-f", str(DEMO), "--trace", str(trace), "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 0, r.stderr
    assert "plot.png skipped: matplotlib is not installed (pip install 'serving-gateway[simulate]')" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["series.csv", "summary.json"]


@pytest.mark.e2e
def test_a_bad_trace_exits_2_naming_line_and_column(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time,duration\n0,0.1\n1,slow\n")
    r = simulate("-f", str(DEMO), "--trace", str(trace), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"gateway simulate: {trace}: line 3: duration must be a number, got 'slow'"
    assert not (tmp_path / "out").exists()


def write_two_services(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    service = "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {{name: {name}}}\nspec:\n  default: {{command: 'true'}}\n"
    path.write_text(service.format(name="a") + "---\n" + service.format(name="b"))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--startup", "soon"], "--startup must be durations >= 0 such as 0.4s or 0.4s,1.2s, got 'soon'"),
        (["--startup=-1s"], "--startup must be durations >= 0"),
        (["--startup", "0.4s,"], "--startup must be durations >= 0 such as 0.4s or 0.4s,1.2s, got '0.4s,'"),
        (["--set", "autoscaler.window=30s"], "--set autoscaler.window=30s: unknown key 'autoscaler.window'"),
        (
            ["--set", "autoscaler.stableWindow=2s"],
            "--set autoscaler.stableWindow=2s: autoscaler.stableWindow: must be 6s..1h, got 2s",
        ),
        (["--compare", "scaling.maxScale=x"], "--compare scaling.maxScale=x: scaling.maxScale: must be an integer >= 0, got 'x'"),
        (["--compare", "stableWindow"], "--compare 'stableWindow': expected KEY=VALUE"),
        (["--service", "nope"], "no service 'nope' in the config; services: default/iris"),
    ],
)
def test_bad_options_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time,duration\n0,0.1\n")
    status = main(["simulate", "-f", str(DEMO), "--trace", str(trace), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("gateway simulate: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_bad_config_and_service_choice_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("second,rps,duration\n0,1,0.1\n")
    assert main(["simulate", "-f", str(write_two_services(tmp_path)), "--trace", str(trace), "--out", str(tmp_path / "o")]) == 2
    assert "the config has 2 services: choose one with --service (default/a, default/b)" in capsys.readouterr().err
    assert main(["simulate", "-f", str(tmp_path / "none.yaml"), "--trace", str(trace)]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert main(["simulate", "-f", str(DEMO), "--trace", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: cannot read the trace" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["simulate", "-f", str(DEMO), "--trace", str(trace), "--out", str(blocked)]) == 2
    assert f"--out {blocked}: cannot write there" in capsys.readouterr().err


@pytest.mark.e2e  # simulates the example trace four times
def test_poisson_arrivals_and_the_service_choice_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("second,rps,duration\n" + "".join(f"{s},20,0.1\n" for s in range(30)))
    out = tmp_path / "out"
    argv = ["simulate", "-f", str(write_two_services(tmp_path)), "--service", "b", "--trace", str(trace), "--out", str(out)]
    assert main([*argv, "--arrivals", "poisson", "--seed", "3"]) == 0
    capsys.readouterr()
    first = json.loads((out / "summary.json").read_text())
    assert main([*argv, "--arrivals", "poisson", "--seed", "3"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert first == again and first["settings"]["trace"] == {
        "form": "rates",
        "requests": first["requests"],
        "seconds": 30,
        "arrivals": "poisson",
        "seed": 3,
    }
    assert first["requests"] != 600 and 450 < first["requests"] < 750  # drawn, not spread evenly
    assert first["settings"]["service"] == "default/b"


def test_series_numbers_keep_their_six_decimals_and_no_data_is_0(tmp_path: Path) -> None:
    from gateway.simulate.engine import Row
    from gateway.simulate.output import write_series

    write_series(tmp_path / "s.csv", [Row(0, 1, 0, None, None, False, 0), Row(1, 15, 14, 101.283333, 30.0, True, 7)])
    assert (
        tmp_path / "s.csv"
    ).read_text() == "time,desired,ready,stable,panic,panicking,queued\n0,1,0,0,0,0,0\n1,15,14,101.283333,30,1,7\n"


def test_the_canary_is_simulated_with_its_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = ROOT / "config" / "examples" / "paddleservice-sample.yaml"  # a 50 % canary
    out = tmp_path / "out"
    assert main(["simulate", "-f", str(sample), "--trace", str(BURST), "--out", str(out), "--revision", "canary"]) == 0
    printed = capsys.readouterr().out
    assert "note: revision canary takes 50 % of the trace, split as the router splits it" in printed
    assert "paddleservice-sample-canary (50 %)" in printed
    assert json.loads((out / "summary.json").read_text())["requests"] == 3000
    assert main(["simulate", "-f", str(DEMO), "--trace", str(BURST), "--out", str(out), "--revision", "canary"]) == 2
    assert "service iris has no revision 'canary'; its revisions: default" in capsys.readouterr().err


@pytest.mark.e2e  # simulates the example trace four times
def test_a_reused_out_loses_an_earlier_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out reused without --compare: the earlier run's compare/ files go (only those the simulator writes)."""
    trace = tmp_path / "t.csv"
    trace.write_text("second,rps,duration\n" + "".join(f"{s},5,0.1\n" for s in range(20)))
    out = tmp_path / "out"
    argv = ["simulate", "-f", str(DEMO), "--trace", str(trace), "--out", str(out)]
    assert main([*argv, "--compare", "autoscaler.stableWindow=20s"]) == 0
    assert (out / "compare" / "summary.json").exists() and (out / "compare" / "series.csv").exists()
    assert main(argv) == 0
    assert not (out / "compare").exists()
    assert (out / "summary.json").exists()
    # a file of the user's own in compare/ stays, and so does the folder holding it
    assert main([*argv, "--compare", "autoscaler.stableWindow=20s"]) == 0
    (out / "compare" / "notes.txt").write_text("mine")
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "compare").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("args", "given"),
    [
        (["--arrivals", "poisson"], "--arrivals poisson"),
        (["--seed", "3"], "--seed"),
        (["--arrivals", "poisson", "--seed", "0"], "--arrivals poisson and --seed"),
    ],
)
def test_poisson_or_a_seed_with_a_per_request_trace_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], given: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time,duration\n0,0.1\n0.5,0.1\n")
    status = main(["simulate", "-f", str(DEMO), "--trace", str(trace), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip() == (
        f"gateway simulate: {given}: {trace} is a time,duration trace (one row per request, each at its own time); "
        "arrivals are drawn only for second,rps,duration traces"
    )
    assert not (tmp_path / "out").exists()
