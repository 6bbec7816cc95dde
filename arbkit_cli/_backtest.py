"""``arbkit backtest | sweep | report | compare``: registered on the main app by :func:`register`.

Follows :mod:`arbkit_cli.main`: ``--json`` prints one JSON document (the metrics under the seed's field names),
progress bars go to stderr, and bad input raises :class:`~arbkit_cli.main.CliError` or a ``ValueError`` subclass
(``BacktestError``, ``ConfigError``) whose one-line message the entry point prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["register"]

# The helpers of ``arbkit_cli.main`` are imported inside the commands: main.py imports this module to register
# the commands, so a module-level import back would be circular.  The option aliases mirror main.py's.
StoreOpt = Annotated[Path, typer.Option("--store", help="Parquet store directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]

PipelineOpt = Annotated[str, typer.Option("--pipeline", help="Pipeline name, e.g. cross_exchange.")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Start (ISO date/time, UTC, or ns).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="End, exclusive (ISO date/time, UTC, or ns).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Settings file (TOML/JSON).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Run directory to write.")]


@contextmanager
def _stage_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """One bar per stage (detect, execute, sweep) on stderr; silent with --json or without a terminal."""
    from arbkit_cli.main import err

    if not enabled or not err.is_terminal:
        yield lambda _stage, _done, _total: None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _config(path: Path | None, fail_fast: bool) -> Any:
    import os

    from arbkit.config import load_settings
    from arbkit_cli.main import CliError
    from backtest import BacktestConfig

    if path is not None and not path.is_file():
        raise CliError(f"--config: {path} is not a file")
    settings = load_settings(path, env=os.environ)
    return BacktestConfig.from_settings(settings, fail_fast=fail_fast)


def _check_store(store: Path) -> None:
    from arbkit_cli.main import CliError

    if not store.is_dir():
        raise CliError(f"--store: {store} is not a directory")


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    from backtest.metrics import METRIC_NAMES

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in (*METRIC_NAMES, "rejected_by_code", "failed_days", "missing_days"):
        if name in metrics:
            value = metrics[name]
            text = f"{value:,.4f}" if isinstance(value, float) else ("-" if value is None else str(value))
            table.add_row(name, text)
    return table


def backtest(
    store: StoreOpt,
    pipeline: PipelineOpt,
    out_dir: OutOpt,
    start: StartOpt = None,
    end: EndOpt = None,
    config: ConfigOpt = None,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed day.")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Also write RUN_DIR/report.html.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Backtest a pipeline over the store: detection, risk checks, fills; results in RUN_DIR."""
    from arbkit_cli.main import _emit_json, err, out, parse_time
    from backtest import run_backtest, write_report

    _check_store(store)
    settings = _config(config, fail_fast)
    with _stage_progress(not as_json) as progress:
        result = run_backtest(
            store,
            pipeline,
            out_dir,
            start=parse_time(start, "start"),
            end=parse_time(end, "end"),
            config=settings,
            progress=progress,
        )
    html = write_report(out_dir) if report else None
    if as_json:
        _emit_json({**result.metrics, "run_dir": str(out_dir), "run_id": result.run_id})
        return
    out.print(_metrics_table(result.metrics, f"backtest {pipeline} ({result.run_id})"))
    failed = result.failed_days
    for row in failed.iter_rows(named=True):
        err.print(f"warning: {row['stage']} failed on {row['day']}: {row['error']}")
    out.print(f"results in {out_dir}" + (f"; report {html}" if html else ""))


def sweep(
    store: StoreOpt,
    pipeline: PipelineOpt,
    grid: Annotated[Path, typer.Option("--grid", help="Grid file (JSON/TOML): parameter -> list of values.")],
    out_dir: OutOpt,
    start: StartOpt = None,
    end: EndOpt = None,
    config: ConfigOpt = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster: host:port, 'auto' or 'local'.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a parameter grid (vmapped screening; days x points in-process or on Ray)."""
    from arbkit_cli.main import _emit_json, out, parse_time
    from backtest import load_grid, run_sweep

    _check_store(store)
    points = load_grid(grid)
    settings = _config(config, False)
    with _stage_progress(not as_json) as progress:
        result = run_sweep(
            store,
            pipeline,
            points,
            out_dir,
            start=parse_time(start, "start"),
            end=parse_time(end, "end"),
            config=settings,
            ray_address=ray_address,
            progress=progress,
        )
    if as_json:
        _emit_json({"backend": result.backend, "timings": result.timings, "points": result.points.to_dicts()})
        return
    table = Table(title=f"sweep {pipeline}: {len(points)} points ({result.backend})")
    columns = ("min_profit", "max_notional", "fee_scale", "latency_scale", "trades", "total_pnl", "capture_ratio")
    for c in columns:
        table.add_column(c, justify="right")
    for row in result.points.sort("total_pnl", descending=True).head(20).iter_rows(named=True):
        table.add_row(*(f"{row[c]:,.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    out.print(table)
    out.print(f"results in {out_dir}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `arbkit backtest`.")],
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Replay fills at several latencies.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write RUN_DIR/report.html (inline plots) and RUN_DIR/report.json."""
    import json

    from arbkit_cli.main import out
    from backtest import write_report

    path = write_report(run_dir, latency=latency)
    if as_json:
        sys.stdout.write((run_dir / "report.json").read_text(encoding="utf-8"))
        return
    payload = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    out.print(_metrics_table(payload["metrics"], f"run {payload['run_id']}"))
    out.print(f"report written to {path}")


def compare(
    run_a: Annotated[Path, typer.Argument(help="First run directory (A).")],
    run_b: Annotated[Path, typer.Argument(help="Second run directory (B).")],
    as_json: JsonOpt = False,
) -> None:
    """Metric differences between two runs (B - A)."""
    from arbkit_cli.main import _emit_json, out
    from backtest import compare_runs

    frame = compare_runs(run_a, run_b)
    if as_json:
        _emit_json(frame.to_dicts())
        return
    table = Table(title=f"{run_a} (A) vs {run_b} (B)")
    for c in frame.columns:
        table.add_column(c, justify="left" if c == "metric" else "right")
    for row in frame.iter_rows():
        table.add_row(row[0], *("-" if v is None else f"{v:,.4g}" for v in row[1:]))
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``backtest``, ``sweep``, ``report`` and ``compare`` commands to ``app``."""
    app.command("backtest")(backtest)
    app.command("sweep")(sweep)
    app.command("report")(report)
    app.command("compare")(compare)
