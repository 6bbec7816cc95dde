"""The fill model shared by the backtester and paper trading.

A **signal** (one detected opportunity) becomes one IOC limit order per leg.  Each order reaches its venue after
that venue's latency (:class:`LatencyModel`), and fills against the top of book prevailing at arrival
(:class:`~arbkit.execution.MarketView`), at the book's price when it is within the limit, limited by the
displayed size.  Taker fees come from the instrument registry.

Leg risk is real money: the legs of a signal fill by different fractions, so the matched part is the smallest
filled fraction and every leg's excess is unwound ``unwind_delay_ms`` later with a market order at the then
prevailing price (taker fee again).  Holding-type signals (basis, parity: a ``hold_until`` time, the last time
the episode was seen) are closed ``exit_delay_ms`` later, once the dislocation has converged, the same way, and
perpetual legs held across a funding time pay or receive funding.  The exit pays the spread and fees at the then
prevailing quotes, so a detector's convergence-profit estimate is an upper bound of what a basis trade realizes.

Balances are per venue and asset and constrain what can trade: a spot buy needs the quote currency on that
venue, a spot sell needs the base asset (derivative legs are margined: they move a per-venue margin account and
a position, without a balance check beyond fees).  When a venue's balance of an asset falls below
``rebalance_low`` of its initial amount, it is topped up from the venue holding the most, paying the network's
withdrawal fee and arriving after the network's delay (both from :meth:`Registry.transfer`), so inventory drift
and its cost are part of the result.

The path-dependent part (balances, transfers) is a plain loop over *signals*, never over ticks: every market
lookup (arrival, unwind and exit quotes, marks) is precomputed with vectorized as-of searches.

PnL convention: each event's PnL is the change of the account's value, in USD, with every asset valued at its
USD mark at the event time (USDT/USDC/USD pegged at 1; other assets at the mid of ``ASSET/USDT`` on any venue;
derivative positions at the mark of their base asset, so hedged legs net out).  ``realized_pnl`` of a signal
includes its fees, unwinds, exit and funding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.execution._market import MarketView, Prevailing
from arbkit.instruments import Instrument, InstrumentKind, Registry, UnknownInstrumentError

__all__ = [
    "FILL_SCHEMA",
    "SIGNAL_SCHEMA",
    "TRADE_SCHEMA",
    "TRANSFER_SCHEMA",
    "ExecutionResult",
    "FillParams",
    "LatencyModel",
    "simulate_fills",
    "theoretical_profit",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_NS_PER_MS = 1_000_000
_PEGGED = {"USDT": 1.0, "USD": 1.0, "USDC": 1.0}
_LEG = pl.Struct(
    {"exchange": pl.String, "symbol": pl.String, "side": pl.String, "price": pl.Float64, "size": pl.Float64}
)

#: Columns of a signal frame (see :func:`simulate_fills`).
SIGNAL_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]
        "id": pl.String,
        "kind": pl.String,
        "ts": pl.Int64,  # decision time, in the detector's clock
        "legs": pl.List(_LEG),
        "hold_until": pl.Int64,  # null for instantaneous round trips
        "theoretical_profit": pl.Float64,  # USD, what the detector saw
    }
)

#: One row per fill (entry, unwind or exit of a leg).
FILL_SCHEMA = pl.Schema(
    {
        "signal_id": pl.String,
        "leg": pl.Int64,
        "purpose": pl.String,
        "exchange": pl.String,
        "symbol": pl.String,
        "side": pl.String,
        "quantity": pl.Float64,
        "price": pl.Float64,
        "fee": pl.Float64,
        "fee_currency": pl.String,
        "liquidity": pl.String,
        "ts": pl.Int64,
    }  # type: ignore[arg-type]
)

#: One row per signal: what it realized and why.
TRADE_SCHEMA = pl.Schema(
    {
        "id": pl.String,
        "kind": pl.String,
        "ts": pl.Int64,
        "theoretical_profit": pl.Float64,
        "realized_pnl": pl.Float64,
        "fees": pl.Float64,
        "funding": pl.Float64,
        "filled_fraction": pl.Float64,
        "leg_failed": pl.Boolean,
        "status": pl.String,
        "reason": pl.String,
    }  # type: ignore[arg-type]
)

#: Rebalancing transfers between venues.
TRANSFER_SCHEMA = pl.Schema(
    {
        "ts": pl.Int64,
        "asset": pl.String,
        "from_exchange": pl.String,
        "to_exchange": pl.String,
        "amount": pl.Float64,
        "fee": pl.Float64,
        "arrival": pl.Int64,
        "cost_usd": pl.Float64,
    }  # type: ignore[arg-type]
)


@dataclass(frozen=True)
class LatencyModel:
    """Order latency per venue: the registry's typical latency, times ``scale``, with random jitter.

    ``distribution``: ``"fixed"`` (exactly the mean), ``"lognormal"`` (median = mean, log-sd ``jitter``) or
    ``"exponential"`` (mean = mean).  ``scale = 0`` gives zero latency.
    """

    scale: float = 1.0
    distribution: Literal["fixed", "lognormal", "exponential"] = "lognormal"
    jitter: float = 0.3
    mean_ms: Mapping[str, float] = field(default_factory=dict)  # per-venue overrides

    def __post_init__(self) -> None:
        if not (self.scale >= 0 and math.isfinite(self.scale)):
            raise ValueError(f"latency scale must be >= 0, got {self.scale}")
        if self.jitter < 0:
            raise ValueError(f"latency jitter must be >= 0, got {self.jitter}")

    def sample(self, venues: Sequence[str], registry: Registry, rng: np.random.Generator) -> I64:
        means = (
            np.array([self.mean_ms.get(v, registry.profile(v).latency_ms) for v in venues], dtype=np.float64)
            * self.scale
        )
        if self.distribution == "fixed":
            draw = means
        elif self.distribution == "exponential":
            draw = rng.exponential(1.0, size=len(venues)) * means
        else:
            draw = means * np.exp(self.jitter * rng.standard_normal(len(venues)))
        return np.round(draw * _NS_PER_MS).astype(np.int64)


@dataclass(frozen=True)
class FillParams:
    """Parameters of the fill model; see the module docstring for the semantics."""

    latency: LatencyModel = field(default_factory=LatencyModel)
    infinite_size: bool = False  # ignore displayed sizes (the identity check of the backtest)
    unwind_delay_ms: float = 500.0
    exit_delay_ms: float = 2_000.0  # holding-type signals exit this long after the episode was last seen
    match_clock: Literal["ts_event", "ts_recv"] = "ts_event"
    check_balances: bool = True
    rebalance: bool = True
    rebalance_low: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.unwind_delay_ms < 0:
            raise ValueError(f"unwind_delay_ms must be >= 0, got {self.unwind_delay_ms}")
        if self.exit_delay_ms < 0:
            raise ValueError(f"exit_delay_ms must be >= 0, got {self.exit_delay_ms}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0 <= self.rebalance_low < 1:
            raise ValueError(f"rebalance_low must be in [0, 1), got {self.rebalance_low}")


@dataclass(frozen=True)
class ExecutionResult:
    """Everything the fill model did: fills, per-signal trades, transfers, the equity curve and final balances."""

    fills: pl.DataFrame
    trades: pl.DataFrame
    transfers: pl.DataFrame
    equity: pl.DataFrame  # ts, pnl (event), cum_pnl
    balances: dict[tuple[str, str], float]

    @property
    def total_pnl(self) -> float:
        return float(self.trades["realized_pnl"].sum()) - float(self.transfers["cost_usd"].sum())


def _is_derivative(inst: Instrument) -> bool:
    return inst.kind is not InstrumentKind.SPOT


def _fee(inst: Instrument, price: float, qty: float, usd_per_premium: float) -> float:
    """Taker fee in the instrument's cash currency (options: Deribit-style capped fee on the underlying)."""
    if inst.kind is InstrumentKind.OPTION and inst.fee_cap is not None:
        # price is in the premium currency; the fee is a fraction of the underlying, capped at a share of premium
        underlying_in_premium = 1.0 if inst.premium_currency == inst.base else usd_per_premium
        return qty * min(inst.taker_fee * underlying_in_premium, inst.fee_cap * price)
    return qty * price * inst.taker_fee


def theoretical_profit(legs: Sequence[Mapping[str, object]], registry: Registry, usd: Mapping[str, float]) -> float:
    """Net value in USD of filling every leg at its stated price and size with taker fees.

    Every asset a leg pays or receives is valued at its USD mark from ``usd`` (pegged stablecoins need no entry):
    the cash currency of the price, and the base asset bought or sold (derivative legs as their base asset, as the
    fill model values them; option positions at the leg's own premium, so only their fee remains).  A consistent
    cross-exchange round trip nets the base asset to zero; a triangular cycle leaves its edge in the start currency.
    This is the fill model's unit, so a zero-latency, infinite-size fill realizes exactly this value.
    """

    flows: dict[str, float] = {}  # net amount of each asset paid (-) or received (+)
    for leg in legs:
        inst = registry.get(str(leg["exchange"]), str(leg["symbol"]))
        price, size = float(leg["price"]), float(leg["size"])  # type: ignore[arg-type]
        cash_ccy = _cash_currency(inst)
        sign = 1.0 if leg["side"] == "buy" else -1.0
        fee = _fee(inst, price, size, 1.0)
        held = sign * size * price if inst.kind is InstrumentKind.OPTION else 0.0
        flows[cash_ccy] = flows.get(cash_ccy, 0.0) - sign * price * size - fee + held
        if inst.kind is not InstrumentKind.OPTION:
            flows[inst.base] = flows.get(inst.base, 0.0) + sign * size
    # assets that net to zero need no mark (e.g. the base of a cross-exchange round trip)
    return sum(
        amount * _PEGGED.get(asset, usd.get(asset, math.nan))
        for asset, amount in flows.items()
        if abs(amount) > 1e-12 * max(1.0, *(abs(v) for v in flows.values()))
    )


def _cash_currency(inst: Instrument) -> str:
    if inst.kind is InstrumentKind.OPTION and inst.premium_currency:
        return inst.premium_currency
    return inst.quote


@dataclass
class _Ledger:
    balances: dict[tuple[str, str], float]
    initial: dict[tuple[str, str], float]

    def add(self, venue: str, asset: str, amount: float) -> None:
        key = (venue, asset)
        self.balances[key] = self.balances.get(key, 0.0) + amount

    def get(self, venue: str, asset: str) -> float:
        return self.balances.get((venue, asset), 0.0)


def _marks_frame(market: MarketView) -> dict[str, tuple[I64, F64]]:
    """USD mark series per asset: mids of ASSET/USD(T) across venues, merged in time."""
    series: dict[str, list[tuple[I64, F64]]] = {}
    for (_ex, sym), (lo, hi) in market.keys.items():
        if "/" not in sym or ":" in sym:
            continue
        base, quote = sym.split("/", 1)
        if quote not in _PEGGED:
            continue
        mid = (market.bid[lo:hi] + market.ask[lo:hi]) / 2.0
        ok = np.isfinite(mid)
        series.setdefault(base, []).append((market.ts[lo:hi][ok], mid[ok]))
    out: dict[str, tuple[I64, F64]] = {}
    for asset, parts in series.items():
        ts = np.concatenate([p[0] for p in parts])
        mid = np.concatenate([p[1] for p in parts])
        order = np.argsort(ts, kind="stable")
        out[asset] = (ts[order], mid[order])
    return out


def _mark(marks: Mapping[str, tuple[I64, F64]], asset: str, t: int) -> float:
    if asset in _PEGGED:
        return _PEGGED[asset]
    hit = marks.get(asset)
    if hit is None:
        return math.nan
    ts, mid = hit
    i = int(np.searchsorted(ts, t, side="right")) - 1
    if i < 0:
        return float(mid[0]) if mid.shape[0] else math.nan
    return float(mid[i])


def _fill_top(side: str, limit: float, qty: float, quote: Prevailing, i: int, infinite: bool) -> tuple[float, float]:
    """(filled quantity, price) of an IOC limit order against the top of book at row ``i``."""
    if side == "buy":
        price, avail = float(quote.ask[i]), float(quote.ask_size[i])
        ok = math.isfinite(price) and price <= limit
    else:
        price, avail = float(quote.bid[i]), float(quote.bid_size[i])
        ok = math.isfinite(price) and price >= limit
    if not ok or qty <= 0:
        return 0.0, math.nan
    filled = qty if infinite else min(qty, avail if math.isfinite(avail) else 0.0)
    return max(filled, 0.0), price


def _floor_lot(qty: float, lot: float) -> float:
    if lot <= 0:
        return qty
    return math.floor(qty / lot + 1e-9) * lot


def simulate_fills(
    signals: pl.DataFrame,
    market: MarketView,
    registry: Registry,
    params: FillParams,
    initial_balances: Mapping[tuple[str, str], float],
    funding: pl.DataFrame | None = None,
) -> ExecutionResult:
    """Turn signals into fills, trades, transfers and an equity curve.

    Parameters
    ----------
    signals
        Frame with :data:`SIGNAL_SCHEMA` columns; processed in ``ts`` order (ties by ``id``).
    market
        As-of quotes, built with the clock given by ``params.match_clock``.
    initial_balances
        ``{(venue, asset): amount}``.  Missing entries are zero.
    funding
        Optional FUNDING table rows; perpetual positions held across a funding time (00/08/16 UTC) pay
        ``position * mark_price * funding_rate`` (a short receives a positive rate).
    """
    missing = [c for c in SIGNAL_SCHEMA if c not in signals.columns]
    if missing:
        raise ValueError(f"signals: missing column(s) {missing}")
    signals = signals.sort(["ts", "id"], maintain_order=True)
    rng = np.random.default_rng(params.seed)
    marks = _marks_frame(market)
    ledger = _Ledger(dict(initial_balances), dict(initial_balances))

    # ---- vectorized precomputation: one row per leg
    legs = signals.select("id", "ts", "hold_until", "legs").with_row_index("sig").explode("legs").unnest("legs")
    legs = legs.filter(pl.col("exchange").is_not_null())
    n_legs = legs.height
    ex = legs.get_column("exchange").to_list()
    sym = legs.get_column("symbol").to_list()
    try:
        insts = [registry.get(e, s) for e, s in zip(ex, sym, strict=True)]
    except UnknownInstrumentError as exc:
        raise ValueError(f"signals: {exc}") from None
    t_sig = legs.get_column("ts").to_numpy().astype(np.int64)
    lat_in = params.latency.sample(ex, registry, rng) if n_legs else np.zeros(0, dtype=np.int64)
    t_arr = t_sig + lat_in
    unwind_ns = int(params.unwind_delay_ms * _NS_PER_MS)
    at_arrival = market.lookup(ex, sym, t_arr)
    at_unwind = market.lookup(ex, sym, t_arr + unwind_ns)
    hold = legs.get_column("hold_until").fill_null(-1).to_numpy().astype(np.int64)
    lat_out = params.latency.sample(ex, registry, rng) if n_legs else np.zeros(0, dtype=np.int64)
    exit_ns = int(params.exit_delay_ms * _NS_PER_MS)
    t_exit = np.where(hold >= 0, np.maximum(hold + exit_ns, t_arr) + lat_out, -1)
    at_exit = market.lookup(ex, sym, np.where(t_exit >= 0, t_exit, 0))
    sig_index = legs.get_column("sig").to_numpy()
    starts = np.searchsorted(sig_index, np.arange(signals.height), side="left")
    ends = np.searchsorted(sig_index, np.arange(signals.height), side="right")
    funding_view = MarketView.from_quotes(_funding_as_quotes(funding)) if funding is not None else None

    fills: list[tuple[object, ...]] = []
    trades: list[tuple[object, ...]] = []
    transfers: list[tuple[object, ...]] = []
    equity: list[tuple[int, float]] = []
    pending: list[tuple[int, str, str, float]] = []  # arrival time, venue, asset, amount

    def apply_transfers(now: int) -> None:
        nonlocal pending
        due = [p for p in pending if p[0] <= now]
        pending = [p for p in pending if p[0] > now]
        for _t, venue, asset, amount in sorted(due):
            ledger.add(venue, asset, amount)

    def value(deltas: Mapping[str, float], t: int) -> float:
        total = 0.0
        for asset, amount in deltas.items():
            if abs(amount) < 1e-9:  # float residue of a position opened and closed again
                continue
            if asset.endswith("@position"):
                venue, symbol = asset.removesuffix("@position").split("|", 1)
                inst = registry.get(venue, symbol)
                mid = float(market.lookup([venue], [symbol], [t]).mid[0])
                total += amount * mid * _mark(marks, _cash_currency(inst), t)
            else:
                total += amount * _mark(marks, asset, t)
        return total

    def book_fill(
        sig_id: str,
        leg_i: int,
        purpose: str,
        inst: Instrument,
        side: str,
        qty: float,
        price: float,
        t: int,
        deltas: dict[str, float],
    ) -> float:
        """Apply one fill to the ledger; returns the fee (cash currency)."""
        usd_premium = _mark(marks, inst.base, t)
        fee = _fee(inst, price, qty, usd_premium)
        cash = _cash_currency(inst)
        sign = 1.0 if side == "buy" else -1.0
        if _is_derivative(inst):
            cash_asset, position_asset = f"{cash}@margin", f"{inst.symbol}@position"
        else:
            cash_asset, position_asset = cash, inst.base
        ledger.add(inst.exchange, cash_asset, -sign * qty * price - fee)
        ledger.add(inst.exchange, position_asset, sign * qty)
        deltas[cash] = deltas.get(cash, 0.0) - sign * qty * price - fee
        deltas[_valuation_asset(inst)] = deltas.get(_valuation_asset(inst), 0.0) + sign * qty * _unit_value(inst)
        fills.append((sig_id, leg_i, purpose, inst.exchange, inst.symbol, side, qty, price, fee, cash, "taker", t))
        return fee

    for s in range(signals.height):
        lo, hi = int(starts[s]), int(ends[s])
        sig_id = str(signals["id"][s])
        kind = str(signals["kind"][s])
        ts = int(signals["ts"][s])
        theo = signals["theoretical_profit"][s]
        apply_transfers(ts)
        if hi == lo:
            trades.append((sig_id, kind, ts, theo, 0.0, 0.0, 0.0, 0.0, False, "rejected", "signal has no legs"))
            continue
        leg_rows = range(lo, hi)
        req = np.array([float(legs["size"][i]) for i in leg_rows])
        limits = np.array([float(legs["price"][i]) for i in leg_rows])
        sides = [str(legs["side"][i]) for i in leg_rows]
        leg_insts = [insts[i] for i in leg_rows]

        # balance constraint: the largest common scale every spot leg can afford
        scale = 1.0
        if params.check_balances:
            for inst, side, q, px in zip(leg_insts, sides, req, limits, strict=True):
                if _is_derivative(inst) or q <= 0:
                    continue
                if side == "buy":
                    need = q * px * (1 + inst.taker_fee)
                    have = ledger.get(inst.exchange, inst.quote)
                else:
                    need, have = q, ledger.get(inst.exchange, inst.base)
                scale = min(scale, max(have, 0.0) / need if need > 0 else 1.0)
        sized = np.array([_floor_lot(q * scale, inst.lot_size) for q, inst in zip(req, leg_insts, strict=True)])
        if np.any(sized <= 0) or any(
            not _is_derivative(inst) and q * px < inst.min_notional
            for inst, q, px in zip(leg_insts, sized, limits, strict=True)
        ):
            trades.append((sig_id, kind, ts, theo, 0.0, 0.0, 0.0, 0.0, False, "rejected", "insufficient balance"))
            continue

        deltas: dict[str, float] = {}
        fees_usd = 0.0
        filled = np.zeros(hi - lo)
        prices = np.full(hi - lo, math.nan)
        for j, i in enumerate(leg_rows):
            q, px = _fill_top(sides[j], limits[j], sized[j], at_arrival, i, params.infinite_size)
            q = _floor_lot(q, leg_insts[j].lot_size) if not params.infinite_size else q
            if q > 0:
                fee = book_fill(sig_id, j, "entry", leg_insts[j], sides[j], q, px, int(t_arr[i]), deltas)
                fees_usd += fee * _mark(marks, _cash_currency(leg_insts[j]), int(t_arr[i]))
                filled[j], prices[j] = q, px
        fractions = filled / sized
        matched = float(fractions.min())
        leg_failed = bool(np.any(fractions > matched + 1e-12))
        # unwind every leg's excess over the matched fraction
        for j, i in enumerate(leg_rows):
            excess = filled[j] - matched * sized[j]
            if excess <= 1e-12:
                continue
            back = "sell" if sides[j] == "buy" else "buy"
            px = float(at_unwind.bid[i] if back == "sell" else at_unwind.ask[i])
            if not math.isfinite(px):
                px = float(prices[j])  # no later quote: flatten at the entry price (documented worst case)
            fee = book_fill(sig_id, j, "unwind", leg_insts[j], back, excess, px, int(t_arr[i]) + unwind_ns, deltas)
            fees_usd += fee * _mark(marks, _cash_currency(leg_insts[j]), int(t_arr[i]) + unwind_ns)
        # holding-type signals: close the matched part at hold_until (+ latency), with funding on perps
        funding_usd = 0.0
        if matched > 0 and int(hold[lo]) >= 0:
            for j, i in enumerate(leg_rows):
                q = matched * sized[j]
                back = "sell" if sides[j] == "buy" else "buy"
                px = float(at_exit.bid[i] if back == "sell" else at_exit.ask[i])
                if not math.isfinite(px):
                    px = float(prices[j])
                fee = book_fill(sig_id, j, "exit", leg_insts[j], back, q, px, int(t_exit[i]), deltas)
                fees_usd += fee * _mark(marks, _cash_currency(leg_insts[j]), int(t_exit[i]))
                if funding_view is not None and leg_insts[j].kind is InstrumentKind.SWAP:
                    signed = q if sides[j] == "buy" else -q
                    funding_usd += _funding_payment(funding_view, leg_insts[j], signed, int(t_arr[i]), int(t_exit[i]))
            if funding_usd:
                deltas["USD"] = deltas.get("USD", 0.0) + funding_usd
                ledger.add(leg_insts[0].exchange, "USD@funding", funding_usd)
        t_done = int(max(t_arr[lo:hi].max() + (unwind_ns if leg_failed else 0), t_exit[lo:hi].max()))
        pnl = value(deltas, t_done)
        status = "filled" if matched >= 1 - 1e-12 else ("partial" if matched > 0 else "missed")
        trades.append((sig_id, kind, ts, theo, pnl, fees_usd, funding_usd, matched, leg_failed, status, ""))
        equity.append((t_done, pnl))

        if params.rebalance:
            _rebalance(ledger, registry, t_done, pending, transfers, marks, params.rebalance_low, equity)

    return ExecutionResult(
        fills=pl.DataFrame(fills, schema=FILL_SCHEMA, orient="row"),
        trades=pl.DataFrame(trades, schema=TRADE_SCHEMA, orient="row"),
        transfers=pl.DataFrame(transfers, schema=TRANSFER_SCHEMA, orient="row"),
        equity=_equity_frame(equity),
        balances=dict(ledger.balances),
    )


def _valuation_asset(inst: Instrument) -> str:
    """What a position is valued as: spot and linear derivatives as their base asset (hedged legs net out)."""
    if inst.kind is InstrumentKind.OPTION:
        return f"{inst.exchange}|{inst.symbol}@position"
    return inst.base


def _unit_value(inst: Instrument) -> float:
    return 1.0


def _equity_frame(events: list[tuple[int, float]]) -> pl.DataFrame:
    frame = pl.DataFrame(events, schema={"ts": pl.Int64, "pnl": pl.Float64}, orient="row")
    return frame.sort("ts", maintain_order=True).with_columns(cum_pnl=pl.col("pnl").cum_sum())


def _funding_as_quotes(funding: pl.DataFrame) -> pl.DataFrame:
    """Reuse the as-of index: funding rate in ``bid``, mark price in ``ask``."""
    return funding.select(
        "ts_event",
        "exchange",
        "symbol",
        pl.col("funding_rate").alias("bid"),
        pl.lit(1.0).alias("bid_size"),
        pl.col("mark_price").alias("ask"),
        pl.lit(1.0).alias("ask_size"),
        pl.lit(0, dtype=pl.UInt16).alias("flags"),
    )


def _funding_payment(view: MarketView, inst: Instrument, position: float, t_open: int, t_close: int) -> float:
    """USD received by a position held over the funding times in (t_open, t_close]."""
    hours = inst.funding_interval_hours or 8.0
    period = int(hours * 3600 * 1_000_000_000)
    first = (t_open // period + 1) * period
    times = np.arange(first, t_close + 1, period, dtype=np.int64)
    if times.shape[0] == 0:
        return 0.0
    got = view.lookup([inst.exchange] * times.shape[0], [inst.symbol] * times.shape[0], times)
    rate, mark = got.bid, got.ask
    ok = np.isfinite(rate) & np.isfinite(mark)
    return float(-(position * mark[ok] * rate[ok]).sum())


def _rebalance(
    ledger: _Ledger,
    registry: Registry,
    now: int,
    pending: list[tuple[int, str, str, float]],
    transfers: list[tuple[object, ...]],
    marks: Mapping[str, tuple[I64, F64]],
    low: float,
    equity: list[tuple[int, float]],
) -> None:
    in_flight = {(v, a) for _t, v, a, _x in pending}
    for (venue, asset), start in sorted(ledger.initial.items()):
        if start <= 0 or "@" in asset or (venue, asset) in in_flight:
            continue
        have = ledger.get(venue, asset)
        if have >= low * start:
            continue
        donors = sorted(
            ((ledger.get(v, a) - ledger.initial.get((v, a), 0.0), v) for (v, a) in ledger.balances if a == asset),
            reverse=True,
        )
        if not donors or donors[0][0] <= 0 or donors[0][1] == venue:
            continue
        surplus, donor = donors[0]
        try:
            route = registry.transfer(asset)
        except KeyError:
            continue
        amount = min(surplus, start - have)
        if amount <= route.fee:
            continue
        ledger.add(donor, asset, -amount)
        arrival = now + int(route.delay_s * 1e9)
        pending.append((arrival, venue, asset, amount - route.fee))
        cost = route.fee * _mark(marks, asset, now)
        transfers.append((now, asset, donor, venue, amount, route.fee, arrival, cost))
        equity.append((now, -cost))
