"""Opportunities -> fill-model signals, and the pre-trade risk screen applied to them.

Signals: each opportunity becomes one signal at its ``ts_start`` with its legs.  Kinds that hold a position
(``basis``, ``parity``) close it at ``ts_end``; the others (``cross_exchange``, ``triangular``) are instantaneous
round trips.  ``theoretical_profit`` is :func:`arbkit.execution.theoretical_profit` of the legs, with every asset
valued at its USD mark at ``ts_start``: what the detector saw, in the fill model's unit.  Holding kinds earn at
convergence, which the entry legs cannot show, so theirs is the detector's own profit estimate.

Risk screen: every signal of a day is checked *in isolation* against the book as it stood at the start of that
day (the balances carried from the previous day) with one vectorized :func:`arbkit.risk.check_orders` call.
Checking each candidate against the book left by all earlier candidates would need a sequential loop over
signals; the start-of-day book keeps the screen vectorized, and because arbitrage round trips are flat by
construction the difference is small.  Positions: spot holdings of a base asset on a venue are the position of
the venue's first USD-quoted spot symbol in that asset (so a holding is counted once), derivative positions come
from the fill model's ledger.  Risk factors are the base assets; their covariance is estimated from the day's
one-minute USD mark returns, scaled to the limits' horizon in days.  A leg's exposure is its base asset only (the
quote side of a cross pair such as ``ETH/BTC`` is not a factor), an approximation stated in the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from arbkit.execution import SIGNAL_SCHEMA, MarketView, theoretical_profit
from arbkit.instruments import InstrumentKind, Registry
from arbkit.risk import CheckResult, Reason, RiskLimits, check_orders, snapshot
from backtest._market import PEGGED, DayMarket

#: Opportunity kinds whose legs are held until the episode's ``ts_end``.
HOLDING_KINDS: frozenset[str] = frozenset({"basis", "parity"})

REJECTION_SCHEMA = pl.Schema(
    {"id": pl.String, "ts": pl.Int64, "code": pl.Int32, "reason": pl.String, "value": pl.Float64, "limit": pl.Float64}
)

_NS_PER_MIN = 60 * 1_000_000_000


def cash_currency(registry: Registry, exchange: str, symbol: str) -> str:
    """The currency a leg's price is quoted in (an option's premium currency, else the quote)."""
    inst = registry.get(exchange, symbol)
    if inst.kind is InstrumentKind.OPTION and inst.premium_currency:
        return inst.premium_currency
    return inst.quote


def reprice_legs(opportunities: pl.DataFrame, view: MarketView) -> pl.DataFrame:
    """Replace each leg's price by the book it faced at ``ts_start``: the ask for a buy, the bid for a sell.

    Episodes report their *last* observed legs (``arbkit.detect._episodes``); a signal sent at ``ts_start`` can
    only know the prices of that instant, so using the last ones would put a later price into an earlier order.
    ``view`` must use the detector's clock.  Legs whose book shows nothing at ``ts_start`` keep their price.
    """
    if opportunities.height == 0:
        return opportunities
    legs = (
        opportunities.select("ts_start", "legs")
        .with_row_index("_r")
        .explode("legs")
        .with_columns(pl.col("legs").struct.field("exchange", "symbol", "side", "price"))
    )
    at = view.lookup(legs["exchange"].to_list(), legs["symbol"].to_list(), legs["ts_start"].to_numpy())
    faced = np.where(legs["side"].to_numpy() == "buy", at.ask, at.bid)
    price = np.where(np.isfinite(faced), faced, legs["price"].to_numpy())
    legs = legs.with_columns(pl.col("legs").struct.with_fields(price=pl.Series(price, dtype=pl.Float64)))
    grouped = legs.group_by("_r", maintain_order=True).agg(pl.col("legs"))
    return opportunities.with_columns(legs=grouped.get_column("legs"))


def to_signals(opportunities: pl.DataFrame, registry: Registry, market: DayMarket | None) -> pl.DataFrame:
    """Signals (:data:`arbkit.execution.SIGNAL_SCHEMA`) for ``opportunities``, priced in USD with ``market``.

    The legs are used as given; :func:`reprice_legs` first when they are an episode's last observed legs.

    Examples
    --------
    >>> import polars as pl
    >>> from arbkit.instruments import default_registry
    >>> legs = [{"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "price": 100.0, "size": 1.0},
    ...         {"exchange": "okx", "symbol": "BTC/USDT", "side": "sell", "price": 101.0, "size": 1.0}]
    >>> opp = pl.DataFrame({"id": ["a"], "kind": ["cross_exchange"], "ts_start": [5], "ts_end": [9], "legs": [legs]})
    >>> sig = to_signals(opp, default_registry(), None)
    >>> sig["hold_until"].to_list(), round(sig["theoretical_profit"][0], 3)  # 1.0 edge - 0.1 - 0.101 fees
    ([None], 0.799)
    """
    if opportunities.height == 0:
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    legs = opportunities.get_column("legs").to_list()
    starts = opportunities.get_column("ts_start").to_list()
    theo = []
    for leg_list, t in zip(legs, starts, strict=True):
        usd: dict[str, float] = {}
        for leg in leg_list:
            base = registry.get(leg["exchange"], leg["symbol"]).base
            for ccy in (cash_currency(registry, leg["exchange"], leg["symbol"]), base):
                if ccy not in PEGGED and ccy not in usd:
                    usd[ccy] = market.mark(ccy, int(t)) if market is not None else math.nan
        theo.append(theoretical_profit(leg_list, registry, usd))
    if "profit" in opportunities.columns:
        # holding trades earn at convergence, not from the entry legs' value: take the detector's estimate
        theo = [
            float(p) if k in HOLDING_KINDS else v
            for k, p, v in zip(opportunities["kind"], opportunities["profit"], theo, strict=True)
        ]
    kinds = opportunities.get_column("kind")
    return pl.DataFrame(
        {
            "id": opportunities.get_column("id"),
            "kind": kinds,
            "ts": opportunities.get_column("ts_start"),
            "legs": opportunities.get_column("legs"),
            "hold_until": pl.Series(
                [int(e) if k in HOLDING_KINDS else None for k, e in zip(kinds, opportunities["ts_end"], strict=True)],
                dtype=pl.Int64,
            ),
            "theoretical_profit": pl.Series(theo, dtype=pl.Float64),
        }
    ).cast(SIGNAL_SCHEMA)  # type: ignore[arg-type]


def _covariance(market: DayMarket, assets: Sequence[str], horizon_days: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Sample covariance of one-minute log returns of the USD marks, scaled to ``horizon_days``."""
    n = len(assets)
    if n == 0:
        return np.zeros((0, 0))
    spans = [market.marks[a][0] for a in assets if a in market.marks and market.marks[a][0].size]
    if not spans:
        return np.eye(n) * 1e-4 * horizon_days
    lo = min(int(s[0]) for s in spans)
    hi = max(int(s[-1]) for s in spans)
    grid = np.arange(lo, hi + _NS_PER_MIN, _NS_PER_MIN, dtype=np.int64)
    rets = np.zeros((grid.size - 1, n)) if grid.size > 1 else np.zeros((0, n))
    for j, asset in enumerate(assets):
        if asset in PEGGED or asset not in market.marks:
            continue
        times, mids = market.marks[asset]
        idx = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, max(times.size - 1, 0))
        if times.size:
            rets[:, j] = np.diff(np.log(mids[idx]))
    if rets.shape[0] < 2:
        return np.eye(n) * 1e-4 * horizon_days
    cov = np.atleast_2d(np.cov(rets, rowvar=False)) * (1440.0 * horizon_days)
    # a floor on the diagonal keeps the matrix usable when a factor did not move in the sample
    return np.asarray(cov + np.eye(n) * 1e-12, dtype=np.float64)


def _pow2(n: int, floor: int = 8) -> int:
    return max(floor, 1 << max(n - 1, 0).bit_length())


def check_signals(
    signals: pl.DataFrame,
    market: DayMarket,
    registry: Registry,
    limits: RiskLimits,
    balances: Mapping[tuple[str, str], float],
) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], pl.DataFrame]:
    """Pre-trade check of a day's signals against the start-of-day book (see the module docstring).

    Returns the accepted mask and a frame of rejections (:data:`REJECTION_SCHEMA`) with codes 4001/4002/4003.
    """
    m = signals.height
    if m == 0:
        return np.zeros(0, dtype=np.bool_), pl.DataFrame(schema=REJECTION_SCHEMA)
    t0 = int(signals.get_column("ts").min())  # type: ignore[arg-type]
    legs = signals.get_column("legs").to_list()
    width = max(4, *(len(leg_list) for leg_list in legs))  # padded legs have zero quantity
    keys: dict[tuple[str, str], int] = {}
    assets: dict[str, int] = {}
    for leg_list in legs:
        for leg in leg_list:
            keys.setdefault((leg["exchange"], leg["symbol"]), len(keys))
            assets.setdefault(registry.get(leg["exchange"], leg["symbol"]).base, len(assets))
    for _venue, asset in balances:
        if "@" not in asset and asset not in PEGGED:
            assets.setdefault(asset, len(assets))
    if not keys:
        return np.ones(m, dtype=np.bool_), pl.DataFrame(schema=REJECTION_SCHEMA)
    key_list = list(keys)
    insts = [registry.get(v, s) for v, s in key_list]
    price = np.empty(len(key_list))
    quantity = np.zeros(len(key_list))
    holder: dict[tuple[str, str], int] = {}  # (venue, base) -> position index holding the spot inventory
    for i, (inst, (venue, symbol)) in enumerate(zip(insts, key_list, strict=True)):
        rate = market.mark(cash_currency(registry, venue, symbol), t0)
        prevailing = market.view.lookup([venue], [symbol], [t0])
        mid = float(prevailing.mid[0])
        if not math.isfinite(mid):
            mid = float(market.mark(inst.base, t0)) / (rate if rate > 0 else 1.0)
        px = mid * rate
        price[i] = px if math.isfinite(px) and px > 0 else 1.0
        if inst.kind is InstrumentKind.SPOT:
            if inst.quote in PEGGED and (venue, inst.base) not in holder:
                holder[(venue, inst.base)] = i
                quantity[i] = float(balances.get((venue, inst.base), 0.0))
        else:
            quantity[i] = float(balances.get((venue, f"{symbol}@position"), 0.0))
    asset_list = list(assets)
    exposure = np.zeros(len(asset_list))
    equity = 0.0
    for (venue, asset), amount in balances.items():
        if asset.endswith("@position"):
            symbol = asset.removesuffix("@position")
            base = registry.get(venue, symbol).base
            if base in assets:
                exposure[assets[base]] += amount * market.mark(base, t0)
            continue
        unit = asset.split("@", 1)[0]
        value = amount * market.mark(unit, t0)
        if math.isfinite(value):
            equity += value
            if unit in assets:
                exposure[assets[unit]] += value
    # Pad positions, venues and factors to power-of-two counts with inert entries (zero quantity and exposure, an
    # uncorrelated factor of negligible variance), so days with different books reuse one compiled risk kernel.
    venues = list(dict.fromkeys(k[0] for k in key_list))
    n_pos, n_fac = _pow2(len(key_list), 64), _pow2(len(asset_list), 32)
    pad_venues = [f"_pad{i}" for i in range(_pow2(len(venues), 8) - len(venues))] or [venues[0]]
    pad_keys = [(pad_venues[i % len(pad_venues)], f"_pad{i}") for i in range(n_pos - len(key_list))]
    if n_pos == len(key_list) and pad_venues[0] != venues[0]:
        n_pos *= 2  # room for the padding venues, which need a position to exist
        pad_keys = [(pad_venues[i % len(pad_venues)], f"_pad{i}") for i in range(n_pos - len(key_list))]
    covariance = np.eye(n_fac) * 1e-18
    covariance[: len(asset_list), : len(asset_list)] = _covariance(market, asset_list, limits.var_horizon)
    state = snapshot(
        venue=[k[0] for k in key_list] + [k[0] for k in pad_keys],
        symbol=[k[1] for k in key_list] + [k[1] for k in pad_keys],
        quantity=np.concatenate([quantity, np.zeros(len(pad_keys))]),
        price=np.concatenate([price, np.ones(len(pad_keys))]),
        exposure=np.concatenate([exposure, np.zeros(n_fac - len(asset_list))]),
        covariance=covariance,
        equity=max(equity, 1e-9),
        limits=limits,
    )
    pos = np.zeros((m, width), dtype=np.int64)
    fac = np.zeros((m, width), dtype=np.int64)
    qty = np.zeros((m, width))
    pxs = np.ones((m, width))
    for r, leg_list in enumerate(legs):
        for c, leg in enumerate(leg_list):
            i = keys[(leg["exchange"], leg["symbol"])]
            pos[r, c] = i
            fac[r, c] = assets[insts[i].base]
            sign = 1.0 if leg["side"] == "buy" else -1.0
            qty[r, c] = sign * float(leg["size"])
            leg_px = float(leg["price"]) * market.mark(cash_currency(registry, leg["exchange"], leg["symbol"]), t0)
            pxs[r, c] = leg_px if math.isfinite(leg_px) and leg_px > 0 else price[i]
    result: CheckResult = check_orders(state, position=pos, factor=fac, quantity=qty, price=pxs)
    accepted = result.accepted
    bad = ~accepted
    rejections = pl.DataFrame(
        {
            "id": signals.get_column("id").filter(pl.Series(bad)),
            "ts": signals.get_column("ts").filter(pl.Series(bad)),
            "code": result.code[bad].astype(np.int32),
            "reason": [Reason(int(r)).name.lower() for r in result.reason[bad]],
            "value": result.value[bad],
            "limit": result.limit[bad],
        },
        schema=REJECTION_SCHEMA,
    )
    return accepted, rejections
