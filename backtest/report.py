"""Self-contained HTML reports of stored runs, and the comparison of two runs.

``write_report(run_dir)`` writes ``RUN_DIR/report.html`` (plots inline as base64 PNGs, no external assets, so
the file can be mailed or archived) and ``RUN_DIR/report.json`` (metrics plus the analytics tables).  Plots:
equity curve, drawdown, opportunity profit histogram, PnL per venue pair, latency sensitivity (the run's signals
replayed at several latency scales; cached in the run's ``latency`` table) and realized vs theoretical edge.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.axes import Axes

from backtest.analytics import edges, latency_sensitivity, lifetimes, venue_pnl
from backtest.metrics import METRIC_NAMES
from backtest.results import load_run, load_table, save_table
from backtest.runner import BacktestError, BacktestResult

__all__ = ["compare_runs", "write_report"]


def _png(draw: Callable[[Axes], None], width: float = 7.0, height: float = 3.0) -> str:
    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _hours(ts: np.ndarray[Any, np.dtype[np.int64]], start: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray((ts - start) / 3.6e12, dtype=np.float64)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return html.escape(str(value))


def _table(frame: pl.DataFrame, limit: int = 50) -> str:
    if frame.height == 0:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in frame.head(limit).iter_rows()
    )
    more = f"<p><em>{frame.height - limit} more rows in the run's tables</em></p>" if frame.height > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _plots(result: BacktestResult, latency: pl.DataFrame, pairs: pl.DataFrame, edge: pl.DataFrame) -> dict[str, str]:
    eq = result.equity
    start = result.start
    initial = float(result.metrics.get("initial_equity") or 0.0)
    ts = np.concatenate([[start], eq["ts"].to_numpy()]).astype(np.int64)
    values = np.concatenate([[initial], eq["equity"].to_numpy()]) if eq.height else np.array([initial])
    ts, values = np.append(ts, max(result.end, int(ts[-1]))), np.append(values, values[-1])  # flat to the end
    peak = np.maximum.accumulate(values)

    def equity(ax: Axes) -> None:
        ax.step(_hours(ts, start), values - initial, where="post")
        ax.set(title="Cumulative PnL (USD)", xlabel="hours from start", ylabel="USD")

    def drawdown(ax: Axes) -> None:
        ax.fill_between(_hours(ts, start), -(peak - values), step="post", color="tab:red", alpha=0.5)
        ax.set(title="Drawdown (USD)", xlabel="hours from start", ylabel="USD")

    def histogram(ax: Axes) -> None:
        profits = result.signals["theoretical_profit"].drop_nans().drop_nulls().to_numpy()
        if profits.size:
            ax.hist(profits, bins=min(50, max(5, profits.size // 5)))
        ax.set(title="Opportunity profit at detection (USD)", xlabel="USD", ylabel="count")

    def per_venue(ax: Axes) -> None:
        if pairs.height:
            ax.barh(pairs["venue_pair"].to_list(), pairs["realized_pnl"].to_numpy())
        ax.set(title="Realized PnL per venue pair (USD)", xlabel="USD")

    def sensitivity(ax: Axes) -> None:
        if latency.height:
            ax.plot(latency["latency_scale"].to_numpy(), latency["total_pnl"].to_numpy(), marker="o")
        ax.set(title="Latency sensitivity", xlabel="latency scale (x venue latency)", ylabel="total PnL (USD)")

    def scatter(ax: Axes) -> None:
        if edge.height:
            theo = edge["theoretical_profit"].to_numpy()
            ax.scatter(theo, edge["realized_pnl"].to_numpy(), s=8, alpha=0.6)
            lo, hi = float(np.nanmin(theo)), float(np.nanmax(theo))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax.set(title="Realized vs theoretical edge per trade (USD)", xlabel="theoretical", ylabel="realized")

    return {
        "Equity curve": _png(equity),
        "Drawdown": _png(drawdown),
        "Opportunity profit": _png(histogram),
        "PnL per venue pair": _png(per_venue, height=max(2.5, 0.3 * pairs.height + 1)),
        "Latency sensitivity": _png(sensitivity),
        "Realized vs theoretical edge": _png(scatter, width=5, height=4),
    }


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
    "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
    "img{display:block;margin:.5em 0}"
)


def write_report(run_dir: str | Path, *, latency: bool = True) -> Path:
    """Write ``report.html`` and ``report.json`` for the run stored in ``run_dir``; returns the HTML path.

    ``latency=False`` skips the latency replay (which needs the run's store) unless it is already cached.
    """
    path = Path(run_dir)
    result = load_run(path)
    cached = load_table(path, "latency")
    if cached is None and latency:
        cached = latency_sensitivity(result)
        save_table(path, "latency", cached)
    latency_frame = cached if cached is not None else pl.DataFrame(schema={"latency_scale": pl.Float64})
    life = lifetimes(result.opportunities)
    pairs = venue_pnl(result)
    edge = edges(result)
    rejected = result.rejections.group_by("code", "reason").len().sort("code")
    plots = _plots(result, latency_frame if latency_frame.width > 1 else pl.DataFrame(), pairs, edge)
    metrics = result.metrics
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(metrics.get(k))}</td></tr>" for k in METRIC_NAMES)
    problems = result.days.filter(pl.col("status") != "ok")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>arbkit backtest {result.run_id}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Backtest {html.escape(result.pipeline)} <small>{result.run_id}</small></h1>",
        f"<p>store {html.escape(result.store)}; range {result.start} .. {result.end} ns; code "
        f"{html.escape(result.code_version)}</p>",
        f"<h2>Metrics</h2><table>{rows}</table>",
        "<h2>Rejected by pre-trade risk checks</h2>",
        _table(rejected),
        "<h2>Days that failed or had no data</h2>",
        _table(problems),
        *(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
            for title, data in plots.items()
        ),
        "<h2>Latency sensitivity</h2>",
        _table(latency_frame),
        "<h2>Opportunity lifetimes per kind and venue pair</h2>",
        "<p>half-life: exponential fit, ln 2 x mean lifetime.</p>",
        _table(life),
        "<h2>PnL per venue pair</h2>",
        _table(pairs),
        "</body></html>",
    ]
    out = path / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    payload = {
        "run_id": result.run_id,
        "pipeline": result.pipeline,
        "metrics": metrics,
        "latency_sensitivity": latency_frame.to_dicts(),
        "lifetimes": life.to_dicts(),
        "venue_pnl": pairs.to_dicts(),
    }
    (path / "report.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def compare_runs(run_a: str | Path, run_b: str | Path) -> pl.DataFrame:
    """Metric by metric: value in A, in B, ``B - A`` and the relative change ``(B - A) / |A|``.

    Non-numeric or missing metrics are listed with null differences.
    """
    a, b = load_run(run_a).metrics, load_run(run_b).metrics
    names = [n for n in METRIC_NAMES if n in a or n in b]
    if not names:
        raise BacktestError(f"{run_a} and {run_b} have no metrics in common")

    def num(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    rows = []
    for name in names:
        x, y = num(a.get(name)), num(b.get(name))
        diff = y - x if x is not None and y is not None else None
        rel = diff / abs(x) if diff is not None and x not in (None, 0.0) else None
        rows.append({"metric": name, "a": x, "b": y, "difference": diff, "relative": rel})
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "a": pl.Float64,
            "b": pl.Float64,
            "difference": pl.Float64,
            "relative": pl.Float64,
        },
        orient="row",
    )
