"""The results store: one run directory per backtest, a DuckDB file plus Parquet and JSON copies.

Layout of ``RUN_DIR``::

    results.duckdb     tables runs, opportunities, signals, trades, fills, transfers, equity, positions,
                       rejections, days (and latency once the report has computed it)
    <table>.parquet    the same tables, for tools that read Parquet
    metrics.json       the metrics (the seed's field names first)
    run.json           run id, pipeline, store, range, code version and the full configuration

DuckDB is the store of record (SQL over runs, e.g. ``ATTACH`` several run files to compare them); the Parquet
and JSON copies are for people and other tools.  A run directory is written once: saving into a directory that
already holds a run replaces it, so a re-run with the same ``--out`` never mixes two runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from backtest.runner import BacktestError, BacktestResult

__all__ = ["TABLES", "load_run", "load_table", "save_run", "save_table"]

#: Frame-valued fields of :class:`BacktestResult` stored as tables.
TABLES: tuple[str, ...] = (
    "opportunities",
    "signals",
    "trades",
    "fills",
    "transfers",
    "equity",
    "positions",
    "rejections",
    "days",
)
DB_NAME = "results.duckdb"


def _write_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    arrow = frame.to_arrow()  # noqa: F841 - referenced by name from SQL
    con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM arrow')


def save_table(run_dir: str | Path, name: str, frame: pl.DataFrame) -> None:
    """Add or replace one table of a stored run (DuckDB and Parquet)."""
    path = Path(run_dir)
    with duckdb.connect(str(path / DB_NAME)) as con:
        _write_table(con, name, frame)
    frame.write_parquet(path / f"{name}.parquet")


def save_run(result: BacktestResult, out_dir: str | Path) -> Path:
    """Write ``result`` into ``out_dir`` (created if needed); returns the directory."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise BacktestError(f"--out: {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    for stale in [path / DB_NAME, *path.glob("*.parquet"), path / "report.html"]:
        stale.unlink(missing_ok=True)
    record = {
        "run_id": result.run_id,
        "pipeline": result.pipeline,
        "store": result.store,
        "start": result.start,
        "end": result.end,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": result.code_version,
        "config": result.config,
        "timings": result.timings,
    }
    with duckdb.connect(str(path / DB_NAME)) as con:
        runs = pl.DataFrame(
            {
                "run_id": [result.run_id],
                "pipeline": [result.pipeline],
                "store": [result.store],
                "start": [result.start],
                "end": [result.end],
                "created": [record["created"]],
                "code_version": [result.code_version],
                "config": [json.dumps(result.config)],
                "metrics": [json.dumps(result.metrics)],
                "timings": [json.dumps(result.timings)],
            }
        )
        _write_table(con, "runs", runs)
        for name in TABLES:
            _write_table(con, name, getattr(result, name))
    for name in TABLES:
        frame: pl.DataFrame = getattr(result, name)
        frame.write_parquet(path / f"{name}.parquet")
    (path / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n", encoding="utf-8")
    (path / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def _check_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not (path / DB_NAME).is_file():
        raise BacktestError(f"{path} is not a run directory (no {DB_NAME}); run `arbkit backtest --out {path}` first")
    return path


def load_table(run_dir: str | Path, name: str) -> pl.DataFrame | None:
    """One table of a stored run, or ``None`` when the run does not have it."""
    path = _check_dir(run_dir)
    with duckdb.connect(str(path / DB_NAME), read_only=True) as con:
        present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if name not in present:
            return None
        return pl.from_arrow(con.sql(f'SELECT * FROM "{name}"').to_arrow_table())  # type: ignore[return-value]


def load_run(run_dir: str | Path) -> BacktestResult:
    """Read a stored run back (from its DuckDB file)."""
    path = _check_dir(run_dir)
    frames: dict[str, Any] = {}
    with duckdb.connect(str(path / DB_NAME), read_only=True) as con:
        row = pl.from_arrow(con.sql("SELECT * FROM runs").to_arrow_table()).row(0, named=True)  # type: ignore[union-attr]
        for name in TABLES:
            frames[name] = pl.from_arrow(con.sql(f'SELECT * FROM "{name}"').to_arrow_table())
    return BacktestResult(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        store=row["store"],
        start=int(row["start"]),
        end=int(row["end"]),
        config=json.loads(row["config"]),
        code_version=row["code_version"],
        metrics=json.loads(row["metrics"]),
        timings=json.loads(row["timings"]),
        run_dir=path,
        **frames,
    )
