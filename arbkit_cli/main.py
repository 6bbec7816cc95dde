"""The ``arbkit`` command line: the composition root that reads files and the environment.

Every command that prints a summary also takes ``--json`` (one JSON document on stdout, nothing else).
Errors are one line on stderr (``error: ...``) and exit code 2; library code raises typed errors
(``ValueError`` subclasses such as ``SchemaError``, ``ConfigError``, ``StoreError``) that carry the precise message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    name="arbkit",
    help="Synthetic arbitrage detection engine: research, backtest and live on one pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate, import and inspect market data in a Parquet store.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOpt = Annotated[Path, typer.Option("--store", help="Parquet store directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise CliError("empty list")
    return items


def parse_time(value: str | None, name: str) -> int | None:
    """ISO date/datetime (UTC when naive) or integer nanoseconds since the epoch."""
    if value is None:
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--{name}: {value!r} is neither an ISO date/time nor integer nanoseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


@contextmanager
def _progress(label: str, enabled: bool, total: float | None = 1.0) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr (hidden with --json or when stderr is not a terminal)."""
    if not enabled or not err.is_terminal:
        yield lambda _fraction: None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda fraction: bar.update(task, completed=fraction)


def _fmt_ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    store: StoreOpt,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same market.")] = 7,
    days: Annotated[float | None, typer.Option(help="Length of the market in days (fractions allowed).")] = None,
    venues: Annotated[str | None, typer.Option(help="Comma-separated CCXT exchange ids.")] = None,
    assets: Annotated[str | None, typer.Option(help="Comma-separated base assets, e.g. BTC,ETH,SOL.")] = None,
    rate: Annotated[float | None, typer.Option(help="Quote updates per second per venue-instrument.")] = None,
    start: Annotated[str | None, typer.Option(help="First day (ISO date).")] = None,
    options: Annotated[bool, typer.Option(help="Include the Deribit option chain.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Generate a seeded synthetic market with injected arbitrage and ground-truth labels."""
    summary = _generate(
        store,
        seed=seed,
        days=days,
        venues=venues,
        assets=assets,
        rate=rate,
        start=start,
        options=options,
        quiet=as_json,
    )
    if as_json:
        _emit_json(summary)
    else:
        out.print(f"generated {summary['rows_total']:,} rows into {store} in {summary['seconds']:.1f}s")
        _print_info(store)


def _generate(
    store: Path,
    *,
    seed: int,
    days: float | None = None,
    venues: str | None = None,
    assets: str | None = None,
    rate: float | None = None,
    start: str | None = None,
    options: bool = True,
    quiet: bool = False,
) -> dict[str, Any]:
    import dataclasses
    import time

    from arbkit.data.generate import MarketSpec, generate_to_store

    fields: dict[str, Any] = {"seed": seed, "options": options}
    if days is not None:
        fields["days"] = days
    if (v := _csv(venues)) is not None:
        fields["venues"] = v
    if (a := _csv(assets)) is not None:
        fields["assets"] = a
    if rate is not None:
        fields["rate"] = rate
    if start is not None:
        try:
            fields["start"] = dt.date.fromisoformat(start)
        except ValueError:
            raise CliError(f"--start: {start!r} is not an ISO date") from None
    spec = MarketSpec(**fields)
    t0 = time.perf_counter()
    with _progress("generating", not quiet) as progress:
        summary = generate_to_store(store, spec, progress=progress)
    payload = dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else dict(summary)  # type: ignore[arg-type]
    payload["seconds"] = time.perf_counter() - t0
    payload.setdefault("rows_total", sum(int(v) for v in payload.get("rows", {}).values()))
    return payload


def _print_info(store: Path) -> None:
    from arbkit.data.store import Store

    info = Store(store).info()
    table = Table(title=f"store {store}")
    for col in ("table", "rows", "venues", "symbols", "from (UTC)", "to (UTC)", "files", "MiB"):
        table.add_column(col, justify="right" if col in ("rows", "files", "MiB", "symbols", "venues") else "left")
    for name, t in info.tables.items():
        table.add_row(
            name,
            f"{t.rows:,}",
            str(len(t.exchanges)) if t.exchanges else "-",
            str(len(t.symbols)),
            _fmt_ts(t.ts_min),
            _fmt_ts(t.ts_max),
            str(t.files),
            f"{t.bytes / 2**20:.1f}",
        )
    out.print(table)
    venues = sorted({v for t in info.tables.values() for v in t.exchanges})
    if venues:
        out.print("venues: " + ", ".join(venues))


@data_app.command("info")
def data_info(store: StoreOpt, as_json: JsonOpt = False) -> None:
    """What the store holds: venues, symbols, rows and time span per table."""
    from arbkit.data.store import Store

    if not store.is_dir():
        raise CliError(f"--store: {store} is not a directory")
    if as_json:
        _emit_json(Store(store).info().to_dict())
    else:
        _print_info(store)


@data_app.command("import")
def data_import(
    source: Annotated[str, typer.Argument(help="tardis or binance")],
    files: Annotated[list[Path], typer.Argument(help="CSV files (plain, .gz or .zip).")],
    store: StoreOpt,
    exchange: Annotated[str | None, typer.Option(help="Override the exchange id from the file name.")] = None,
    market: Annotated[str | None, typer.Option(help="Override the market (spot, swap, future, option).")] = None,
    symbol: Annotated[str | None, typer.Option(help="Override the unified symbol.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and count bad rows instead of failing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import Tardis.dev CSV exports or Binance public-data files into the store."""
    from arbkit.data import importers
    from arbkit.data.store import Store

    if source not in ("tardis", "binance"):
        raise CliError(f"unknown source {source!r}: use 'tardis' or 'binance'")
    for f in files:
        if not f.is_file():
            raise CliError(f"{f}: no such file")
    fn = importers.import_tardis if source == "tardis" else importers.import_binance
    target = Store(store)
    report = fn(files, target, exchange=exchange, market=market, symbol=symbol, skip_bad=skip_bad)
    payload = report.to_dict() if hasattr(report, "to_dict") else vars(report)
    if as_json:
        _emit_json(payload)
        return
    written = payload.get("rows_written", {})
    out.print(f"imported {sum(written.values()):,} rows from {len(files)} file(s): {written}")
    rejected = payload.get("rows_rejected", 0)
    if rejected:
        out.print(f"skipped {rejected:,} bad rows; first ones:")
        for rej in payload.get("rejects", [])[:10]:
            out.print(f"  {rej}")


# ------------------------------------------------------------------------------------------------ detect


def _detect(store: Path, pipeline: str, start: int | None, end: int | None) -> dict[str, Any]:
    import pipelines

    names = list(pipelines.names()) if pipeline == "all" else [pipeline]
    frames = {}
    for name in names:
        frames[name] = pipelines.detect_store(store, name, start=start, end=end)
    return frames


@app.command("detect")
def detect(
    store: StoreOpt,
    pipeline: Annotated[str, typer.Option(help="Pipeline name, or 'all'.")] = "all",
    start: Annotated[str | None, typer.Option(help="Start time (ISO or ns), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(help="End time (ISO or ns), exclusive.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write opportunities to this Parquet file.")] = None,
    score: Annotated[bool, typer.Option("--score", help="Score against the store's ground-truth labels.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run detection pipelines over the store and summarize the opportunities found."""
    payload = _detect_command(store, pipeline, parse_time(start, "start"), parse_time(end, "end"), out_file, score)
    if as_json:
        _emit_json(payload)
    else:
        _print_detect(payload)


def _detect_command(
    store: Path, pipeline: str, start: int | None, end: int | None, out_file: Path | None, score: bool
) -> dict[str, Any]:
    import polars as pl

    if not store.is_dir():
        raise CliError(f"--store: {store} is not a directory")
    frames = _detect(store, pipeline, start, end)
    allopps = pl.concat(list(frames.values()), how="vertical") if frames else pl.DataFrame()
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        allopps.write_parquet(out_file)
    summary: dict[str, Any] = {"store": str(store), "pipelines": {}}
    for name, frame in frames.items():
        summary["pipelines"][name] = {
            "opportunities": frame.height,
            "active": int((frame["status"] == "active").sum()) if frame.height else 0,
            "total_peak_profit": float(frame["peak_profit"].sum()) if frame.height else 0.0,
            "best_profit": float(frame["peak_profit"].max()) if frame.height else 0.0,  # type: ignore[arg-type]
        }
    if out_file is not None:
        summary["out"] = str(out_file)
    if score:
        from arbkit.data.store import Store
        from arbkit.detect import score as score_fn

        labels = Store(store).scan("labels").collect()
        if labels.height == 0:
            raise CliError(f"--score: the store {store} has no ground-truth labels")
        summary["score"] = score_fn(allopps, labels)
    return summary


def _print_detect(payload: dict[str, Any]) -> None:
    table = Table(title=f"opportunities in {payload['store']}")
    for col in ("pipeline", "episodes", "active", "sum of peak profit", "best"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, s in payload["pipelines"].items():
        table.add_row(
            name,
            f"{s['opportunities']:,}",
            str(s["active"]),
            f"{s['total_peak_profit']:,.2f}",
            f"{s['best_profit']:,.2f}",
        )
    out.print(table)
    if "score" in payload:
        st = Table(title="score against ground truth")
        for col in ("kind", "precision", "recall", "detected", "labels"):
            st.add_column(col, justify="left" if col == "kind" else "right")
        for kind, s in payload["score"].items():
            if not isinstance(s, dict):
                continue
            st.add_row(
                kind,
                f"{s.get('precision', float('nan')):.4f}",
                f"{s.get('recall', float('nan')):.4f}",
                str(s.get("detections", "")),
                str(s.get("labels", "")),
            )
        out.print(st)
    if "out" in payload:
        out.print(f"opportunities written to {payload['out']}")


# -------------------------------------------------------------------------------------------------- demo


@app.command("demo")
def demo(
    store: Annotated[Path, typer.Option("--store", help="Where to put the sample market.")] = Path("demo-store"),
    runs: Annotated[Path, typer.Option("--runs", help="Where to put the backtest runs.")] = Path("demo-run"),
    seed: Annotated[int, typer.Option(help="Seed of the sample market.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """The main job: sample market -> detection (scored against ground truth) -> backtest -> HTML report -> the
    same market live: simulator -> connectors -> micro-batches -> recorded store -> detection again."""
    import shutil

    from arbkit_cli._live import record_from_simulator
    from backtest import run_backtest, write_report

    for path in (store, runs):
        if path.exists():
            shutil.rmtree(path)
    report: dict[str, Any] = {"store": str(store), "runs": str(runs)}
    if not as_json:
        out.rule("1. sample market")
    report["generate"] = _generate(store, seed=seed, quiet=as_json)
    if not as_json:
        out.print(f"generated {report['generate']['rows_total']:,} rows in {report['generate']['seconds']:.1f}s")
        _print_info(store)
        out.rule("2. detection (all pipelines), scored against the injected ground truth")
    report["detect"] = _detect_command(store, "all", None, None, store / "opportunities.parquet", True)
    if not as_json:
        _print_detect(report["detect"])
        out.rule("3. backtest (shared fill model, risk checks) and reports")
    report["backtest"] = {}
    for name in report["detect"]["pipelines"]:
        run_dir = runs / name
        result = run_backtest(store, name, run_dir)
        html = write_report(run_dir)
        report["backtest"][name] = {**result.metrics, "run_dir": str(run_dir), "report": str(html)}
    # the same market as a live feed: every venue's WebSocket protocol on loopback, parsed, batched and recorded
    live_store = runs / "live-store"
    if not as_json:
        _print_backtests(report["backtest"])
        out.rule("4. live feed: simulator (loopback WebSockets) -> connectors -> micro-batcher -> store")
    # 80 % of what the recording could hold: the replay starts once every feed has subscribed, and must end inside
    window, t0, labelled = _live_window(store, 0.8 * _DEMO_LIVE_S * _DEMO_LIVE_SPEED)
    summary = record_from_simulator(window, live_store, duration_s=_DEMO_LIVE_S, speed=_DEMO_LIVE_SPEED, loop=False)
    report["live"] = {
        **summary.to_dict(),
        "store": str(live_store),
        "market_from_ns": t0,
        "injected": {"above_fees": labelled[0], "lasting_1s": labelled[1]},
    }
    report["live"]["detect"] = _detect_command(live_store, "cross_exchange", None, None, None, False)
    if as_json:
        _emit_json(report)
        return
    _print_live(report["live"])


_DEMO_LIVE_S = 4.0  # seconds of live feed the demo records
_DEMO_LIVE_SPEED = 50.0  # the simulator replays the sample market this many times faster than it happened


def _live_window(store: Path, seconds: float) -> tuple[dict[str, Any], int, tuple[int, int]]:
    """``seconds`` of the market's tables, from 20 s before its first cross-exchange opportunity above fees (so the
    short live replay has one to find); where the window starts; how many such opportunities start in it, and how
    many of those last a second or more."""
    import polars as pl

    from arbkit.data.store import Store

    st = Store(store)
    labels = st.scan("labels").filter((pl.col("kind") == "cross_exchange") & pl.col("above_fees")).collect()
    first = st.scan("quotes").select(pl.col("ts_event").min()).collect().item()
    starts = labels.get_column("ts_start").to_numpy()
    t0 = max(int(first), int(starts.min()) - 20_000_000_000) if len(starts) else int(first)
    t1 = t0 + int(seconds * 1e9)
    tables: dict[str, Any] = {}
    for name in ("quotes", "book", "funding", "option_quotes"):
        if name in st.tables():
            part = st.scan(name).filter(pl.col("ts_event").is_between(t0, t1, closed="left")).collect()
            if part.height:
                tables[name] = part
    inside = (starts >= t0) & (starts < t1)
    lasting = labels.get_column("ts_end").to_numpy() - starts >= 1_000_000_000
    return tables, t0, (int(inside.sum()), int((inside & lasting).sum()))


def _print_live(live: dict[str, Any]) -> None:
    table = Table(title=f"live feed recorded for {live['duration_s']:.1f} s into {live['store']}")
    cols = ("feed", "messages", "quote rows", "parse errors", "sequence gaps", "disconnects")
    for col in cols:
        table.add_column(col, justify="left" if col == "feed" else "right")
    for name, c in live["connectors"].items():
        table.add_row(
            name,
            f"{c['messages']:,}",
            f"{c['rows'].get('quotes', 0):,}",
            str(c["parse_errors"]),
            str(c["sequence_gaps"]),
            str(c["disconnects"]),
        )
    out.print(table)
    out.print(f"rows written: { {k: v for k, v in live['rows'].items() if v} } in {live['writes']} appends")
    _print_detect(live["detect"])
    injected = live["injected"]
    out.print(
        f"cross-exchange opportunities above fees injected in the window replayed: {injected['above_fees']}, "
        f"{injected['lasting_1s']} lasting a second or more of market time (20 ms live at {_DEMO_LIVE_SPEED:g}x; "
        "the shortest last under a millisecond live, below the venues' clocks)"
    )


def _print_backtests(backtests: dict[str, dict[str, Any]]) -> None:
    table = Table(title="backtests")
    cols = ("pipeline", "trades", "total_pnl", "capture", "fees", "leg fails")
    for col in cols:
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, m in backtests.items():
        table.add_row(
            name,
            str(m.get("trades", "-")),
            f"{m.get('total_pnl', 0.0):,.2f}",
            f"{m.get('capture_ratio') or 0.0:.2f}",
            f"{m.get('fees_paid', 0.0):,.2f}",
            f"{m.get('leg_failure_rate') or 0.0:.2f}",
        )
    out.print(table)
    for m in backtests.values():
        out.print(f"report: {m['report']}")


# -------------------------------------------------------------------------------------------------- main


def main() -> None:
    """Entry point: run the app, turning library errors into one line and exit code 2."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}")
        raise SystemExit(2) from None
    except (ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err.print(f"error: {type(exc).__name__}: {message}")
        raise SystemExit(2) from None


def _register_commands() -> None:
    """Commands defined in sibling modules (they import the helpers above, so register them last)."""
    from arbkit_cli import _backtest, _live

    _backtest.register(app)
    _live.register(app)


_register_commands()

if __name__ == "__main__":
    main()
