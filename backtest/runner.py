"""The backtest runner: a named pipeline over a time range of the store, then risk checks and the fill model.

Two passes, both day by day so memory stays bounded by one day of data for months of history:

1. **Detection**: the pipeline steps over each UTC day's batch with its state carried from the previous day
   (the same carried state as the live engine, so a backtest and a live session agree).  Only opportunities are
   kept.
2. **Execution**: opportunities become signals (:mod:`backtest._signals`), grouped by the day of their
   ``ts_start``.  For each day the store's quotes (option quotes mapped onto the quote columns) and funding rows
   are loaded for the day plus the tail that holding-type signals need to close, the signals are screened by the
   pre-trade risk checks (rejections by code 4001/4002/4003) and the rest go through
   :func:`arbkit.execution.simulate_fills`, with the balances carried from day to day.  Rebalancing transfers
   still in flight at the end of a day are credited at the start of the next one.

A day that fails (unreadable partition, a detector error) is recorded in ``days`` with its error and the run
continues, unless ``fail_fast`` is set.  Days inside the requested range that hold no data are recorded as
``missing``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from arbkit import schema
from arbkit.config import Settings, build_registry
from arbkit.data.store import Store
from arbkit.execution import (
    FILL_SCHEMA,
    TRADE_SCHEMA,
    TRANSFER_SCHEMA,
    ExecutionResult,
    FillParams,
    LatencyModel,
    simulate_fills,
)
from arbkit.instruments import Registry, default_registry
from arbkit.pipeline import Batch
from arbkit.risk import RiskLimits
from backtest._market import DayMarket, day_bounds, day_of, load_day_market, market_symbols
from backtest._signals import HOLDING_KINDS, REJECTION_SCHEMA, cash_currency, check_signals, reprice_legs, to_signals
from backtest.metrics import compute_metrics

__all__ = [
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "Progress",
    "code_version",
    "detect_days",
    "execute_signals",
    "run_backtest",
]

#: ``progress(stage, done, total)``: called after each day of each stage.
Progress = Callable[[str, int, int], None]

DAY_SCHEMA = pl.Schema(
    {
        "day": pl.Date,
        "stage": pl.String,
        "status": pl.String,
        "error": pl.String,
        "rows": pl.Int64,
        "seconds": pl.Float64,
    }
)

#: The fill model's fills plus their USD notional and fee (valued at the USD marks at the fill time).
FILL_COLUMNS = pl.Schema([*FILL_SCHEMA.items(), ("notional_usd", pl.Float64), ("fee_usd", pl.Float64)])


class BacktestError(ValueError):
    """Bad backtest input (unknown pipeline, empty range, no data, inconsistent parameters); names the problem."""


def _default_limits() -> RiskLimits:
    return RiskLimits(
        max_var=50_000.0,
        max_leverage=3.0,
        max_concentration=0.4,
        max_drawdown=0.2,
        stop_loss=25_000.0,
        default_max_instrument_notional=250_000.0,
        default_max_venue_notional=1_000_000.0,
    )


def _default_balances() -> dict[str, float]:
    return {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0}


@dataclass(frozen=True)
class BacktestConfig:
    """Everything a run depends on besides the data; frozen so a run is reproducible from its record.

    Parameters
    ----------
    fill
        Fill-model parameters (latency, sizes, clock, balances checks, rebalancing, seed).
    limits
        Pre-trade risk limits; ``None`` skips the risk screen.
    initial_balances
        Starting amount of each asset **on every venue** that appears in the data.
    pipeline_params
        Overrides of the pipeline's parameter fields (e.g. ``{"min_profit": 1.0}``).
    registry
        Instruments, fees, latencies and transfer routes.
    metrics_period_s
        Sampling period of the equity curve for Sharpe and volatility.
    fail_fast
        Stop at the first failed day instead of recording it and continuing.
    latency_scales
        Latency multipliers the report's latency-sensitivity analysis replays.
    lookback_s
        How far back an order may see a book: a quote received more than this before a signal (or its exit) is
        treated as absent, so a venue silent for minutes does not fill at a minutes-old price.  It also bounds
        the work per day (only the minutes around signals are indexed); ``None`` indexes the whole day.
    """

    fill: FillParams = field(default_factory=FillParams)
    limits: RiskLimits | None = field(default_factory=_default_limits)
    initial_balances: Mapping[str, float] = field(default_factory=_default_balances)
    pipeline_params: Mapping[str, Any] = field(default_factory=dict)
    registry: Registry = field(default_factory=default_registry)
    metrics_period_s: float = 3600.0
    fail_fast: bool = False
    latency_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    lookback_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.lookback_s is not None and not (math.isfinite(self.lookback_s) and self.lookback_s > 0):
            raise BacktestError(f"lookback_s must be positive (or None for no limit), got {self.lookback_s}")
        if not (math.isfinite(self.metrics_period_s) and self.metrics_period_s > 0):
            raise BacktestError(f"metrics_period_s must be positive, got {self.metrics_period_s}")
        bad = {k: v for k, v in self.initial_balances.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise BacktestError(f"initial_balances: amounts must be finite and >= 0, got {bad}")
        if any(not (math.isfinite(s) and s >= 0) for s in self.latency_scales):
            raise BacktestError(f"latency_scales must be finite and >= 0, got {self.latency_scales}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BacktestConfig:
        """Map the engine settings onto a backtest: registry overrides, risk limits, balances and detection.

        ``risk_management.stop_loss`` (a fraction) becomes money on the configured USDT balance; it only matters
        to the kill switch, not to per-order checks.
        """
        risk = settings.risk_management
        usdt = settings.execution.initial_balances.get("USDT", 100_000.0)
        limits = RiskLimits(
            max_var=risk.max_var,
            var_confidence=risk.var_confidence,
            max_leverage=risk.max_leverage,
            max_concentration=min(risk.max_concentration, risk.max_leverage),
            max_drawdown=min(risk.max_drawdown, 0.999),
            stop_loss=max(risk.stop_loss * usdt, 1e-9),
            default_max_instrument_notional=risk.max_position_notional,
            default_max_venue_notional=risk.max_venue_notional,
        )
        detection = settings.detection
        fields: dict[str, Any] = {
            "limits": limits,
            "initial_balances": dict(settings.execution.initial_balances),
            "registry": build_registry(settings),
            "pipeline_params": {
                "min_profit": detection.min_profit,
                "max_notional": detection.max_notional,
                "clock": detection.clock,
            },
        }
        fields.update(overrides)
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the configuration (the registry by its fee table and latencies)."""
        fill = dataclasses.asdict(self.fill)
        fill["latency"]["mean_ms"] = dict(self.fill.latency.mean_ms)
        return {
            "fill": fill,
            "limits": self.limits.model_dump() if self.limits is not None else None,
            "initial_balances": dict(self.initial_balances),
            "pipeline_params": {k: _jsonable(v) for k, v in self.pipeline_params.items()},
            "registry": {
                "taker_fees": {f"{v}:{k.value}": fees[1] for (v, k), fees in sorted(self.registry.fees.items())},
                "latency_ms": {v: self.registry.profile(v).latency_ms for v in self.registry.venues},
            },
            "metrics_period_s": self.metrics_period_s,
            "fail_fast": self.fail_fast,
            "latency_scales": list(self.latency_scales),
            "lookback_s": self.lookback_s,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def fill_params_from_dict(data: Mapping[str, Any]) -> FillParams:
    """Rebuild :class:`FillParams` from :meth:`BacktestConfig.to_dict`'s ``fill`` entry."""
    values = dict(data)
    latency = LatencyModel(**values.pop("latency"))
    return FillParams(latency=latency, **values)


@dataclass(frozen=True)
class BacktestResult:
    """One run: its inputs' record, every output table and the metrics (see :mod:`backtest.metrics`)."""

    run_id: str
    pipeline: str
    store: str
    start: int
    end: int
    config: dict[str, Any]
    code_version: str
    opportunities: pl.DataFrame
    signals: pl.DataFrame
    trades: pl.DataFrame
    fills: pl.DataFrame
    transfers: pl.DataFrame
    equity: pl.DataFrame
    positions: pl.DataFrame
    rejections: pl.DataFrame
    days: pl.DataFrame
    metrics: dict[str, Any]
    timings: dict[str, float]
    run_dir: Path | None = None

    def rejected_by_code(self) -> dict[int, int]:
        """Risk rejections per application code (4001/4002/4003)."""
        counts = self.rejections.group_by("code").len().sort("code")
        return {int(c): int(n) for c, n in counts.iter_rows()}

    @property
    def failed_days(self) -> pl.DataFrame:
        """Days that failed in either stage, with their error."""
        return self.days.filter(pl.col("status") == "failed")


def code_version() -> str:
    """The git commit of the checkout (``git:<sha>``, ``+dirty`` when modified), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"arbkit {version('arbkit')}"
    except PackageNotFoundError:
        return "unknown"


def _strategy(name: str) -> Any:
    import pipelines

    try:
        return pipelines.get(name)
    except pipelines.UnknownPipelineError as exc:
        raise BacktestError(str(exc)) from None
    except ImportError as exc:
        raise BacktestError(f"pipeline {name!r} is registered but cannot be imported: {exc}") from None


def _pipeline_params(strategy: Any, config: BacktestConfig) -> Any:
    params_type = strategy.params_type
    names = {f.name for f in dataclasses.fields(params_type)} if dataclasses.is_dataclass(params_type) else set()
    values = dict(config.pipeline_params)
    unknown = sorted(set(values) - names) if names else []
    if unknown:
        raise BacktestError(
            f"pipeline_params: unknown field(s) {unknown} for pipeline {strategy.name!r}; known: {sorted(names)}"
        )
    if names:
        _check_param_types(strategy.name, params_type, values)
    if "registry" in names:
        values.setdefault("registry", config.registry)
    try:
        return params_type(**values)
    except (TypeError, ValueError) as exc:
        raise BacktestError(f"pipeline_params for {strategy.name!r}: {exc}") from None


def _check_param_types(pipeline: str, params_type: Any, values: Mapping[str, Any]) -> None:
    """Overrides of numeric fields must be finite numbers, of text and flag fields text and flags: the pipelines'
    parameter classes do not check, and ``min_profit="abc"`` or ``nan`` would silently detect nothing."""
    defaults = {f.name: f.default for f in dataclasses.fields(params_type) if f.default is not dataclasses.MISSING}
    for name, value in values.items():
        default = defaults.get(name)
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int | float):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            ok, want = number and math.isfinite(value), "a finite number"
        elif isinstance(default, str):
            ok, want = isinstance(value, str), "text"
        else:
            continue
        if not ok:
            raise BacktestError(f"pipeline_params: {name} for pipeline {pipeline!r} must be {want}, got {value!r}")


def _clock(params: Any) -> str:
    return str(getattr(params, "clock", "ts_recv"))


def _data_days(store: Store, tables: tuple[str, ...], start: int | None, end: int | None) -> list[dt.date]:
    present = set(store.tables())
    days = sorted({d for t in tables if t in present for d in store.days(t)})
    if start is not None:
        days = [d for d in days if day_bounds(d)[1] > start]
    if end is not None:
        days = [d for d in days if day_bounds(d)[0] < end]
    return days


def open_days(root: Path, strategy: Any, start: int | None, end: int | None) -> tuple[Store, list[dt.date]]:
    """The store at ``root`` and the days in ``[start, end)`` holding the strategy's tables; a
    :class:`BacktestError` for an empty range, a missing store or no data."""
    if start is not None and end is not None and start >= end:
        raise BacktestError(f"empty time range: start {start} >= end {end}")
    if not root.is_dir():
        raise BacktestError(f"store {root} is not a directory")
    store = Store(root)
    days = _data_days(store, strategy.tables, start, end)
    if not days:
        where = "" if start is None and end is None else f" in [{start}, {end})"
        tables = "/".join(strategy.tables)
        raise BacktestError(f"no {tables} data for pipeline {strategy.name!r} in store {root}{where}")
    return store, days


def _calendar(start: int, end: int) -> list[dt.date]:
    first, last = day_of(start), day_of(end - 1)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _day_row(day: dt.date, stage: str, status: str, error: str | None, rows: int, seconds: float) -> dict[str, Any]:
    return {"day": day, "stage": stage, "status": status, "error": error, "rows": rows, "seconds": seconds}


def detect_days(
    store: Store,
    strategy: Any,
    params: Any,
    days: list[dt.date],
    start: int | None,
    end: int | None,
    *,
    fail_fast: bool = False,
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Step ``strategy`` over ``days`` of the store with carried state; returns opportunities and day records."""
    clock = str(getattr(params, "clock", "ts_recv"))
    state = strategy.init(params)
    outputs: list[pl.DataFrame] = []
    records: list[dict[str, Any]] = []
    present = set(store.tables())
    for n, day in enumerate(days, 1):
        t0 = time.perf_counter()
        lo, hi = day_bounds(day)
        lo = lo if start is None else max(lo, start)
        hi = hi if end is None else min(hi, end)
        try:
            frames = {}
            for table in strategy.tables:
                if table not in present:
                    continue
                table_clock = clock if table != "funding" or clock in schema.FUNDING.names else "ts_recv"
                frame = store.scan(table, start=lo, end=hi, clock=table_clock).collect()
                frames[table] = frame.sort(table_clock, maintain_order=True)
            batch = Batch(**frames)
            out, state = strategy.step(batch, state, params)
            outputs.append(out)
            records.append(_day_row(day, "detect", "ok", None, batch.height, time.perf_counter() - t0))
        except Exception as exc:  # a failed day is reported, the run goes on (see module docstring)
            if fail_fast:
                raise BacktestError(f"detection failed on {day}: {type(exc).__name__}: {exc}") from exc
            records.append(
                _day_row(day, "detect", "failed", f"{type(exc).__name__}: {exc}", 0, time.perf_counter() - t0)
            )
        if progress is not None:
            progress("detect", n, len(days))
    outputs.append(strategy.finish(state, params))
    found = pl.concat(outputs, how="vertical")
    found = found.sort("ts_start", "id") if found.height else schema.empty(schema.OPPORTUNITIES)
    return found, records


@dataclass
class _Execution:
    trades: list[pl.DataFrame] = field(default_factory=list)
    fills: list[pl.DataFrame] = field(default_factory=list)
    transfers: list[pl.DataFrame] = field(default_factory=list)
    equity: list[pl.DataFrame] = field(default_factory=list)
    rejections: list[pl.DataFrame] = field(default_factory=list)
    signals: list[pl.DataFrame] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    initial_equity: float | None = None


def _usd_fills(fills: pl.DataFrame, market: DayMarket) -> pl.DataFrame:
    rates = [market.mark(c, int(t)) for c, t in zip(fills["fee_currency"], fills["ts"], strict=True)]
    rate = pl.Series(rates, dtype=pl.Float64)
    return fills.with_columns(
        notional_usd=(pl.col("quantity") * pl.col("price")).abs() * rate,
        fee_usd=pl.col("fee") * rate,
    )


def _account_value(balances: Mapping[tuple[str, str], float], market: DayMarket, t: int) -> float:
    total = 0.0
    for (_venue, asset), amount in balances.items():
        if "@" in asset and not asset.endswith("@margin"):
            continue
        value = amount * market.mark(asset.split("@", 1)[0], t)
        total += value if math.isfinite(value) else 0.0
    return total


def _day_symbols(
    opportunities: pl.DataFrame, config: BacktestConfig, balances: Mapping[tuple[str, str], float]
) -> list[str]:
    """Instruments a day's fills read: every leg's, plus the USD books that value the assets involved."""
    legs = opportunities.select(pl.col("legs").explode().struct.field("exchange", "symbol")).unique().rows()
    symbols = {s for _e, s in legs}
    assets = {a.split("@", 1)[0] for _v, a in balances} | set(config.initial_balances)
    for exchange, symbol in legs:
        inst = config.registry.get(exchange, symbol)
        assets |= {inst.base, inst.quote, cash_currency(config.registry, exchange, symbol)}
    assets = {a for a in assets if "/" not in a}
    return market_symbols(symbols, assets)


def signal_windows(
    opportunities: pl.DataFrame, lookback_s: float | None, slack: int, day_start: int
) -> list[tuple[int, int]] | None:
    """``ts_recv`` windows a day's fills can look at: ``lookback_s`` before to ``slack`` after each entry and exit.

    ``None`` (no lookback limit) keeps the whole day.  The day's start is included so the account can be valued.
    """
    if lookback_s is None:
        return None
    back = int(lookback_s * 1e9)
    times = opportunities.get_column("ts_start").to_list()
    holding = opportunities.filter(pl.col("kind").is_in(list(HOLDING_KINDS)))
    times += holding.get_column("ts_end").to_list()
    return [(day_start - back, day_start + 1)] + [(int(t) - back, int(t) + slack) for t in times]


def _repriced(opps: pl.DataFrame, market: DayMarket, clock: str | None) -> pl.DataFrame:
    """Opportunities with legs priced at ``ts_start`` on the detector's clock (``None``: keep the legs)."""
    return opps if clock is None else reprice_legs(opps, market.view_for(clock))


def execute_signals(
    store: Store,
    signal_days: Mapping[dt.date, pl.DataFrame],
    config: BacktestConfig,
    fill: FillParams,
    balances: Mapping[tuple[str, str], float],
    *,
    risk: bool = True,
    clock: str | None = "ts_recv",
    progress: Progress | None = None,
) -> tuple[_Execution, dict[tuple[str, str], float]]:
    """Run the fill model day by day over opportunities grouped by day, carrying balances and transfers.

    ``signal_days`` maps each day to that day's *opportunities*; they are turned into signals with the day's
    market (USD marks) here, their legs re-priced at ``ts_start`` on the detector's ``clock`` (``None`` keeps
    the legs as given).  Returns the collected outputs and the final balances.
    """
    acc = _Execution()
    current = dict(balances)
    extra = (clock,) if clock is not None else ()
    slack = int(60e9 + 20 * max(fill.latency.scale, 1.0) * 1e9 + fill.unwind_delay_ms * 1e6)
    ordered = sorted(signal_days)
    for n, day in enumerate(ordered, 1):
        t0 = time.perf_counter()
        opps = signal_days[day]
        lo, hi = day_bounds(day)
        try:
            hold = opps.filter(pl.col("kind").is_in(["basis", "parity"])).get_column("ts_end").max()
            hi_ext = max(hi, int(hold) if hold is not None else hi) + slack  # type: ignore[arg-type]
            symbols = _day_symbols(opps, config, current)
            windows = signal_windows(opps, config.lookback_s, slack, lo)
            note = None
            lo_read = lo - slack
            try:
                market = load_day_market(store, lo_read, hi_ext, fill.match_clock, symbols, extra, windows)
            except Exception as exc:  # a neighbouring day is unreadable: trade on this day's data alone
                note = f"neighbouring data unreadable, day read alone: {type(exc).__name__}: {exc}"
                lo_read, hi_ext = lo, hi
                market = load_day_market(store, lo_read, hi_ext, fill.match_clock, symbols, extra, windows)
            if acc.initial_equity is None:
                acc.initial_equity = _account_value(current, market, lo)
            signals = to_signals(_repriced(opps, market, clock), config.registry, market)
            acc.signals.append(signals)
            if risk and config.limits is not None and signals.height:
                accepted, rejected = check_signals(signals, market, config.registry, config.limits, current)
                acc.rejections.append(rejected)
                signals = signals.filter(pl.Series(accepted))
            result: ExecutionResult = simulate_fills(
                signals, market.view, config.registry, fill, current, funding=market.funding
            )
            current = dict(result.balances)
            if result.transfers.height and signals.height:
                last = int(signals.get_column("ts").max())  # type: ignore[arg-type]
                for row in result.transfers.filter(pl.col("arrival") > last).iter_rows(named=True):
                    key = (row["to_exchange"], row["asset"])
                    current[key] = current.get(key, 0.0) + row["amount"] - row["fee"]
            acc.trades.append(result.trades)
            acc.fills.append(_usd_fills(result.fills, market))
            acc.transfers.append(result.transfers)
            acc.equity.append(result.equity.select("ts", "pnl"))
            status = "ok" if note is None else "partial"
            acc.records.append(_day_row(day, "execute", status, note, signals.height, time.perf_counter() - t0))
        except Exception as exc:  # reported per day; see the module docstring
            if config.fail_fast:
                raise BacktestError(f"execution failed on {day}: {type(exc).__name__}: {exc}") from exc
            acc.records.append(
                _day_row(day, "execute", "failed", f"{type(exc).__name__}: {exc}", 0, time.perf_counter() - t0)
            )
        if progress is not None:
            progress("execute", n, len(ordered))
    return acc, current


def _concat(frames: list[pl.DataFrame], empty: pl.DataFrame) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty


def _empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADE_SCHEMA)


def _empty_transfers() -> pl.DataFrame:
    return pl.DataFrame(schema=TRANSFER_SCHEMA)


def initial_ledger(config: BacktestConfig, venues: list[str]) -> dict[tuple[str, str], float]:
    """``config.initial_balances`` on each of ``venues``."""
    return {(v, a): float(x) for v in venues for a, x in config.initial_balances.items()}


def group_by_day(opportunities: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
    """Opportunities keyed by the UTC day of their ``ts_start``."""
    if opportunities.height == 0:
        return {}
    keyed = opportunities.with_columns(_day=pl.from_epoch(pl.col("ts_start"), time_unit="ns").dt.date())
    return {
        key[0]: part.drop("_day")  # type: ignore[misc]
        for key, part in keyed.partition_by("_day", as_dict=True, maintain_order=True).items()
    }


def _venues(store: Store, days: list[dt.date]) -> list[str]:
    """Venues with quotes on any of ``days``, from the store's ``kind=/exchange=/date=`` partition layout.

    Read from directory names rather than the data, so one unreadable file cannot stop the run here.
    """
    wanted = {d.isoformat() for d in days}
    venues = set()
    for table in ("quotes", "option_quotes"):
        for part in (store.root / f"kind={table}").glob("exchange=*/date=*"):
            if part.name.removeprefix("date=") in wanted:
                venues.add(part.parent.name.removeprefix("exchange="))
    return sorted(venues)


def _positions(final: Mapping[tuple[str, str], float], initial: Mapping[tuple[str, str], float]) -> pl.DataFrame:
    keys = sorted(set(final) | set(initial))
    return pl.DataFrame(
        {
            "exchange": [k[0] for k in keys],
            "asset": [k[1] for k in keys],
            "initial": [float(initial.get(k, 0.0)) for k in keys],
            "final": [float(final.get(k, 0.0)) for k in keys],
        },
        schema={"exchange": pl.String, "asset": pl.String, "initial": pl.Float64, "final": pl.Float64},
    ).with_columns(change=pl.col("final") - pl.col("initial"))


def _equity_curve(parts: list[pl.DataFrame], initial_equity: float) -> pl.DataFrame:
    frame = _concat(parts, pl.DataFrame(schema={"ts": pl.Int64, "pnl": pl.Float64}))
    return frame.sort("ts", maintain_order=True).with_columns(
        cum_pnl=pl.col("pnl").cum_sum().fill_null(0.0), equity=initial_equity + pl.col("pnl").cum_sum()
    )


def run_backtest(
    store_root: str | Path,
    pipeline: str,
    out_dir: str | Path | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    config: BacktestConfig | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest pipeline ``pipeline`` over ``[start, end)`` of the store; optionally store the run in ``out_dir``.

    Parameters
    ----------
    store_root
        Root of an :class:`arbkit.data.store.Store`.
    pipeline
        A name from :func:`pipelines.names`.
    out_dir
        Run directory: ``results.duckdb`` plus Parquet tables, ``metrics.json`` and ``config.json`` (see
        :mod:`backtest.results`); ``None`` keeps the run in memory only.
    start, end
        Half-open range in ns of the pipeline's clock; ``None`` means everything stored.
    config
        :class:`BacktestConfig` (defaults throughout when ``None``).
    progress
        ``progress(stage, done, total)`` after each day.

    Raises
    ------
    BacktestError
        Unknown pipeline, unknown pipeline parameter, empty range, a store with no data in the range, or (with
        ``fail_fast``) the first failed day.
    """
    config = config if config is not None else BacktestConfig()
    strategy = _strategy(pipeline)
    params = _pipeline_params(strategy, config)
    root = Path(store_root)
    store, days = open_days(root, strategy, start, end)
    run_start = start if start is not None else day_bounds(days[0])[0]
    run_end = end if end is not None else day_bounds(days[-1])[1]
    have = set(days)
    missing = [d for d in _calendar(run_start, run_end) if d not in have]
    t0 = time.perf_counter()
    opportunities, detect_records = detect_days(
        store, strategy, params, days, start, end, fail_fast=config.fail_fast, progress=progress
    )
    t1 = time.perf_counter()
    initial = initial_ledger(config, _venues(store, days))
    acc, final = execute_signals(store, group_by_day(opportunities), config, config.fill, initial, progress=progress)
    t2 = time.perf_counter()
    initial_equity = acc.initial_equity if acc.initial_equity is not None else 0.0
    if acc.initial_equity is None:
        first = day_bounds(days[0])
        books = market_symbols([], config.initial_balances)
        market = load_day_market(store, first[0], first[1], config.fill.match_clock, books)
        initial_equity = _account_value(initial, market, first[0])
    trades = _concat(acc.trades, _empty_trades())
    fills = _concat(acc.fills, pl.DataFrame(schema=FILL_COLUMNS))
    transfers = _concat(acc.transfers, _empty_transfers())
    equity = _equity_curve(acc.equity, initial_equity)
    rejections = _concat(acc.rejections, pl.DataFrame(schema=REJECTION_SCHEMA))
    signals = _concat(acc.signals, to_signals(opportunities.head(0), config.registry, None))
    day_rows = [*detect_records, *acc.records, *(_day_row(d, "data", "missing", None, 0, 0.0) for d in missing)]
    day_frame = pl.DataFrame(day_rows, schema=DAY_SCHEMA).sort("day", "stage")
    metrics = compute_metrics(
        trades=trades,
        fills=fills,
        transfers=transfers,
        equity=equity,
        initial_equity=initial_equity,
        start=run_start,
        end=run_end,
        period_s=config.metrics_period_s,
        opportunities=opportunities.height,
        rejected=rejections.height,
    )
    metrics["rejected_by_code"] = {
        str(c): int(n) for c, n in rejections.group_by("code").len().sort("code").iter_rows()
    }
    metrics["failed_days"] = int((day_frame["status"] == "failed").sum())
    metrics["missing_days"] = len(missing)
    result = BacktestResult(
        run_id=uuid.uuid4().hex[:12],
        pipeline=pipeline,
        store=str(root.resolve()),
        start=run_start,
        end=run_end,
        config=config.to_dict(),
        code_version=code_version(),
        opportunities=opportunities,
        signals=signals,
        trades=trades,
        fills=fills,
        transfers=transfers,
        equity=equity,
        positions=_positions(final, initial),
        rejections=rejections,
        days=day_frame,
        metrics=metrics,
        timings={"detect_s": t1 - t0, "execute_s": t2 - t1, "total_s": time.perf_counter() - t0},
    )
    if out_dir is not None:
        from backtest.results import save_run

        result = dataclasses.replace(result, run_dir=save_run(result, out_dir))
    return result
