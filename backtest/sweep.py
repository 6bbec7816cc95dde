"""Parameter sweeps: detection once, then a grid of screening and execution parameters over every day.

A grid file (JSON or TOML) gives lists of values for any of

* ``min_profit``: USD; opportunities whose (re-sized, re-feed) profit is below it are not traded;
* ``max_notional``: USD; every leg is scaled by ``min(1, max_notional / largest leg notional)``;
* ``fee_scale``: multiplies every venue's maker and taker fee (a fee tier);
* ``latency_scale``: multiplies every venue's latency in the fill model;

and the sweep evaluates their Cartesian product (``{"min_profit": [0, 1], "fee_scale": [1, 0.5]}``: 4 points).

How it is computed, and why it is cheap:

1. The pipeline runs once (with ``max_notional`` raised to the grid's largest value so scaling down is exact).
2. The screening step is numeric: from each signal's gross edge, fees and notional in USD, one ``jax.vmap``-ed
   kernel computes for all grid points at once the size scale, the profit and the keep mask
   (``profit = k * (gross - fee_scale * fees)``, exact for fees proportional to notional).
3. Execution is path dependent (balances, transfers), so it runs the fill model per (day, grid point).  Each day
   of a sweep starts from the configured initial balances, which makes days x grid points independent tasks:
   run in-process by default, or on Ray when an address is given (``"local"`` starts a local cluster,
   ``"auto"`` joins a running one).  Tasks are pure functions of their inputs and every random draw is seeded,
   so both give the same numbers.

Sweeps skip the pre-trade risk screen: it depends on the book, which differs per grid point.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from arbkit.data.store import Store
from arbkit.execution import simulate_fills
from arbkit.instruments import Registry
from backtest._market import day_bounds, load_day_market
from backtest._signals import cash_currency, to_signals
from backtest.runner import (
    BacktestConfig,
    BacktestError,
    Progress,
    _clock,
    _day_symbols,
    _pipeline_params,
    _repriced,
    _strategy,
    _venues,
    detect_days,
    group_by_day,
    initial_ledger,
    open_days,
    signal_windows,
)

jax.config.update("jax_enable_x64", True)

__all__ = ["GRID_KEYS", "SweepGrid", "SweepResult", "load_grid", "run_sweep", "screen"]

#: Parameters a grid may vary, with their neutral value.
GRID_KEYS: dict[str, float] = {
    "min_profit": -math.inf,
    "max_notional": math.inf,
    "fee_scale": 1.0,
    "latency_scale": 1.0,
}

_POINT_COLUMNS = ("min_profit", "max_notional", "fee_scale", "latency_scale")


@dataclass(frozen=True)
class SweepGrid:
    """Grid points as a ``(G, 4)`` array of (min_profit, max_notional, fee_scale, latency_scale).

    Examples
    --------
    >>> grid = SweepGrid.product({"min_profit": [0.0, 1.0], "fee_scale": [1.0, 0.5]})
    >>> len(grid), grid.frame().row(3)
    (4, (1.0, inf, 0.5, 1.0))
    """

    points: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def product(cls, values: Mapping[str, Sequence[float] | float]) -> SweepGrid:
        """The Cartesian product of per-parameter value lists (scalars count as one-value lists)."""
        unknown = sorted(set(values) - set(GRID_KEYS))
        if unknown:
            raise BacktestError(f"grid: unknown parameter(s) {unknown}; known: {list(GRID_KEYS)}")
        axes: list[list[float]] = []
        for key in _POINT_COLUMNS:
            raw = values.get(key, [GRID_KEYS[key]])
            items = [raw] if isinstance(raw, int | float) else list(raw)
            if not items:
                raise BacktestError(f"grid: {key} has no values")
            try:
                floats = [float(v) for v in items]
            except (TypeError, ValueError):
                raise BacktestError(f"grid: {key} values must be numbers, got {items}") from None
            if key != "min_profit" and any(not (v > 0 or (key == "latency_scale" and v == 0)) for v in floats):
                raise BacktestError(f"grid: {key} values must be positive, got {floats}")
            if key == "latency_scale" and any(not math.isfinite(v) for v in floats):
                raise BacktestError(f"grid: latency_scale values must be finite, got {floats}")
            axes.append(floats)
        return cls(np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, 4))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def frame(self) -> pl.DataFrame:
        """The points as a frame with one column per parameter."""
        return pl.DataFrame({k: self.points[:, i] for i, k in enumerate(_POINT_COLUMNS)})


def load_grid(path: str | Path) -> SweepGrid:
    """Read a grid file (``.json`` or ``.toml``; a ``[grid]`` table or the top level)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BacktestError(f"--grid: cannot read {file}: {exc.strerror}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BacktestError(f"--grid: {file} is not valid {file.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise BacktestError(f"--grid: {file}: the top level must be a table/object")
    table = data.get("grid", data)
    if not isinstance(table, dict):
        raise BacktestError(f"--grid: {file}: 'grid' must be a table/object")
    return SweepGrid.product(table)


def _screen_one(
    gross: jax.Array, fees: jax.Array, notional: jax.Array, point: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    min_profit, max_notional, fee_scale = point[0], point[1], point[2]
    k = jnp.minimum(1.0, max_notional / jnp.maximum(notional, 1e-300))
    profit = k * (gross - fee_scale * fees)
    return profit >= min_profit, k, profit


_screen_all = jax.jit(jax.vmap(_screen_one, in_axes=(None, None, None, 0)))


def _bucket(n: int) -> int:
    return max(16, 1 << max(n - 1, 0).bit_length())


def screen(
    gross: np.ndarray[Any, np.dtype[np.float64]],
    fees: np.ndarray[Any, np.dtype[np.float64]],
    notional: np.ndarray[Any, np.dtype[np.float64]],
    points: np.ndarray[Any, np.dtype[np.float64]],
) -> tuple[
    np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]
]:
    """Keep mask, size scale and profit, shape ``(G, N)``, of N signals under G grid points (one vmapped call).

    Inputs are padded to power-of-two lengths so a long sweep compiles once per bucket, not once per day.

    Examples
    --------
    >>> keep, k, profit = screen(np.array([10.0, 4.0]), np.array([2.0, 2.0]), np.array([1e4, 1e3]),
    ...                          np.array([[3.0, 5e3, 1.0, 1.0], [3.0, 1e9, 0.5, 1.0]]))
    >>> keep.tolist(), profit.tolist()
    ([[True, False], [True, True]], [[4.0, 2.0], [9.0, 3.0]])
    """
    n = gross.shape[0]
    size = _bucket(n)
    pad = (0, size - n)
    keep, k, profit = _screen_all(
        jnp.asarray(np.pad(gross, pad)),
        jnp.asarray(np.pad(fees, pad)),
        jnp.asarray(np.pad(notional, pad, constant_values=1.0)),
        jnp.asarray(points),
    )
    return (
        np.asarray(keep)[:, :n],
        np.asarray(k, dtype=np.float64)[:, :n],
        np.asarray(profit, dtype=np.float64)[:, :n],
    )


def _scaled_registry(registry: Registry, fee_scale: float) -> Registry:
    if fee_scale == 1.0:
        return registry
    out = registry
    for (venue, kind), (maker, taker) in registry.fees.items():
        out = out.with_fees(venue, kind, maker=maker * fee_scale, taker=taker * fee_scale)
    return out


def _leg_arrays(
    signals: pl.DataFrame, registry: Registry, mark: Callable[[str, int], float]
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    n = signals.height
    gross, fees, notional = np.zeros(n), np.zeros(n), np.zeros(n)
    for i, (legs, t) in enumerate(zip(signals["legs"].to_list(), signals["ts"].to_list(), strict=True)):
        for leg in legs:
            rate = mark(cash_currency(registry, leg["exchange"], leg["symbol"]), int(t))
            value = float(leg["price"]) * float(leg["size"]) * rate
            sign = 1.0 if leg["side"] == "sell" else -1.0
            gross[i] += sign * value
            fees[i] += abs(value) * registry.get(leg["exchange"], leg["symbol"]).taker_fee
            notional[i] = max(notional[i], abs(value))
    # the kernel's linear fee is exact for proportional fees; capped option fees are re-derived from theory
    theo = signals.get_column("theoretical_profit").to_numpy().astype(np.float64)
    fees = np.where(np.isfinite(theo), gross - theo, fees)
    return gross, fees, notional


def _scale_legs(signals: pl.DataFrame, k: np.ndarray[Any, np.dtype[np.float64]]) -> pl.DataFrame:
    if signals.height == 0 or np.all(k == 1.0):
        return signals
    exploded = signals.with_columns(_k=pl.Series(k)).with_row_index("_r").explode("legs")
    exploded = exploded.with_columns(pl.col("legs").struct.with_fields(pl.field("size") * pl.col("_k")))
    grouped = exploded.group_by("_r", maintain_order=True).agg(pl.col("legs"))
    return signals.with_columns(legs=grouped.get_column("legs"))


def sweep_day(
    store_root: str,
    day: dt.date,
    opportunities: pl.DataFrame,
    points: np.ndarray[Any, np.dtype[np.float64]],
    point_ids: Sequence[int],
    config: BacktestConfig,
    venues: Sequence[str],
    clock: str = "ts_recv",
) -> pl.DataFrame:
    """Evaluate grid points ``point_ids`` on one day: a pure task (in-process or on a Ray worker)."""
    fill = config.fill
    lo, hi = day_bounds(day)
    slack = int(60e9 + 20 * max(float(points[:, 3].max()), 1.0) * 1e9 + fill.unwind_delay_ms * 1e6)
    hold = opportunities.filter(pl.col("kind").is_in(["basis", "parity"])).get_column("ts_end").max()
    hi_ext = max(hi, int(hold) if hold is not None else hi) + slack  # type: ignore[arg-type]
    symbols = _day_symbols(opportunities, config, {})
    store = Store(store_root)
    windows = signal_windows(opportunities, config.lookback_s, slack, lo)
    market = load_day_market(store, lo - slack, hi_ext, fill.match_clock, symbols, (clock,), windows)
    signals = to_signals(_repriced(opportunities, market, clock), config.registry, market)
    gross, fees, notional = _leg_arrays(signals, config.registry, market.mark)
    selected = points[list(point_ids)]
    keep, k, profit = screen(gross, fees, notional, selected)
    balances = initial_ledger(config, list(venues))
    rows = []
    for j, point_id in enumerate(point_ids):
        mask = keep[j]
        chosen = _scale_legs(signals.filter(pl.Series(mask)), k[j][mask])
        chosen = chosen.with_columns(theoretical_profit=pl.Series(profit[j][mask], dtype=pl.Float64))
        params = dataclasses.replace(
            fill, latency=dataclasses.replace(fill.latency, scale=fill.latency.scale * float(selected[j, 3]))
        )
        registry = _scaled_registry(config.registry, float(selected[j, 2]))
        result = simulate_fills(chosen, market.view, registry, params, balances, funding=market.funding)
        trades = result.trades
        attempted = trades.filter(pl.col("status") != "rejected")
        executed = trades.filter(pl.col("status").is_in(["filled", "partial"]))
        rows.append(
            {
                "point": int(point_id),
                "day": day,
                "signals": chosen.height,
                "trades": executed.height,
                "realized_pnl": float(trades["realized_pnl"].sum()),
                "transfer_costs": float(result.transfers["cost_usd"].sum()),
                "theoretical_profit": float(chosen["theoretical_profit"].sum()),
                "fees_paid": float(trades["fees"].sum()),
                "leg_failures": int(attempted["leg_failed"].sum()),
                "attempted": attempted.height,
            }
        )
    return pl.DataFrame(rows, schema=_DAY_RESULT, orient="row") if rows else pl.DataFrame(schema=_DAY_RESULT)


_DAY_RESULT = pl.Schema(
    {
        "point": pl.Int64,
        "day": pl.Date,
        "signals": pl.Int64,
        "trades": pl.Int64,
        "realized_pnl": pl.Float64,
        "transfer_costs": pl.Float64,
        "theoretical_profit": pl.Float64,
        "fees_paid": pl.Float64,
        "leg_failures": pl.Int64,
        "attempted": pl.Int64,
    }
)


@dataclass(frozen=True)
class SweepResult:
    """Per grid point totals (``points``), per (point, day) rows (``days``) and timings."""

    points: pl.DataFrame
    days: pl.DataFrame
    opportunities: int
    timings: dict[str, float]
    backend: str
    run_dir: Path | None = None

    def best(self, metric: str = "total_pnl") -> dict[str, Any]:
        """The grid point with the highest ``metric``."""
        return self.points.sort(metric, descending=True, nulls_last=True).row(0, named=True)


def _summarise(grid: SweepGrid, per_day: pl.DataFrame) -> pl.DataFrame:
    totals = per_day.group_by("point").agg(
        pl.col("signals", "trades", "realized_pnl", "transfer_costs", "theoretical_profit", "fees_paid").sum(),
        pl.col("leg_failures").sum(),
        pl.col("attempted").sum(),
    )
    frame = grid.frame().with_row_index("point").with_columns(pl.col("point").cast(pl.Int64))
    return (
        frame.join(totals, on="point", how="left")
        .with_columns(
            total_pnl=pl.col("realized_pnl") - pl.col("transfer_costs"),
            capture_ratio=pl.when(pl.col("theoretical_profit") > 0).then(
                pl.col("realized_pnl") / pl.col("theoretical_profit")
            ),
            leg_failure_rate=pl.when(pl.col("attempted") > 0).then(pl.col("leg_failures") / pl.col("attempted")),
        )
        .sort("point")
    )


def _ray_init(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise BacktestError("--ray-address: Ray is not installed (install the 'ray' extra)") from None
    if not ray.is_initialized():
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


def run_sweep(
    store_root: str | Path,
    pipeline: str,
    grid: SweepGrid | Mapping[str, Sequence[float]],
    out_dir: str | Path | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    config: BacktestConfig | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Evaluate a parameter grid over ``[start, end)`` of the store (see the module docstring).

    Parameters
    ----------
    grid
        A :class:`SweepGrid` or a mapping of parameter -> values (Cartesian product).
    ray_address
        ``None`` runs in-process; ``"local"`` starts a local Ray cluster, ``"auto"`` or ``host:port`` joins one.
        A Ray session already initialised by the caller is reused as is.
    out_dir
        When given: ``sweep.parquet``, ``sweep_days.parquet``, ``sweep.json`` and a ``sweep`` table in
        ``results.duckdb``.
    """
    config = config if config is not None else BacktestConfig()
    grid = grid if isinstance(grid, SweepGrid) else SweepGrid.product(grid)
    if len(grid) == 0:
        raise BacktestError("grid: no points")
    strategy = _strategy(pipeline)
    overrides = dict(config.pipeline_params)
    names = {f.name for f in dataclasses.fields(strategy.params_type)}
    widest = float(grid.points[:, 1].max())
    if "max_notional" in names and math.isfinite(widest):
        overrides["max_notional"] = max(widest, float(overrides.get("max_notional", 0.0)))
    params = _pipeline_params(strategy, dataclasses.replace(config, pipeline_params=overrides))
    root = Path(store_root)
    store, days = open_days(root, strategy, start, end)
    t0 = time.perf_counter()
    opportunities, _records = detect_days(
        store, strategy, params, days, start, end, fail_fast=config.fail_fast, progress=progress
    )
    t1 = time.perf_counter()
    by_day = group_by_day(opportunities)
    venues = _venues(store, days)
    ids = list(range(len(grid)))
    parts: list[pl.DataFrame] = []
    if ray_address is None:
        backend = "in-process"
        for n, day in enumerate(sorted(by_day), 1):
            parts.append(sweep_day(str(root), day, by_day[day], grid.points, ids, config, venues, _clock(params)))
            if progress is not None:
                progress("sweep", n, len(by_day))
    else:
        ray = _ray_init(ray_address)
        backend = f"ray ({ray_address})"
        cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        chunks = max(1, min(len(ids), math.ceil(2 * cpus / max(len(by_day), 1))))
        task = ray.remote(sweep_day)
        shared = (ray.put(grid.points), ray.put(config), ray.put(venues))
        refs = [
            task.remote(str(root), day, by_day[day], shared[0], list(chunk), shared[1], shared[2], _clock(params))
            for day in sorted(by_day)
            for chunk in np.array_split(np.array(ids), chunks)
            if len(chunk)
        ]
        parts = list(ray.get(refs))
        if progress is not None:
            progress("sweep", len(by_day), len(by_day))
    per_day = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=_DAY_RESULT)
    per_day = per_day.sort("point", "day")
    t2 = time.perf_counter()
    result = SweepResult(
        points=_summarise(grid, per_day),
        days=per_day,
        opportunities=opportunities.height,
        timings={"detect_s": t1 - t0, "sweep_s": t2 - t1, "total_s": t2 - t0},
        backend=backend,
    )
    if out_dir is not None:
        result = dataclasses.replace(result, run_dir=_save_sweep(result, out_dir, pipeline, str(root), config))
    return result


def _save_sweep(result: SweepResult, out_dir: str | Path, pipeline: str, store: str, config: BacktestConfig) -> Path:
    from backtest.results import save_table
    from backtest.runner import code_version

    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    save_table(path, "sweep", result.points)
    save_table(path, "sweep_days", result.days)
    record = {
        "pipeline": pipeline,
        "store": store,
        "backend": result.backend,
        "opportunities": result.opportunities,
        "timings": result.timings,
        "code_version": code_version(),
        "config": config.to_dict(),
        "points": result.points.to_dicts(),
    }
    (path / "sweep.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return path
