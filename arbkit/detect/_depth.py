"""Book depth: as-of order-book snapshots carried in state, and the joint walk that sizes a two-leg trade.

Snapshots
---------
The ``book`` table is long: one row per ``(exchange, symbol, side, level)`` of a snapshot, all rows of a snapshot
sharing its clock.  :class:`BookState` keeps, per ``(exchange, symbol)``, the rows of the latest snapshot (rows
with the same clock accumulate, so a snapshot cut by a micro-batch boundary is whole again in the next batch).
In the canonical order of :mod:`arbkit.pipeline` quotes come before book rows of the same clock, so the snapshot
visible at a quote row of clock ``t`` is the latest one with clock ``< t`` (:func:`book_as_of`).  A snapshot
with a blocking :class:`~arbkit.schema.QuoteFlag` on any row is not usable.

Joint walk
----------
Buying ``q`` units walks the ask levels of the buy venue, selling them walks the bid levels of the sell venue.
The marginal profit of the next unit is ``sell level price * (1 - sell fee) - buy level price * (1 + buy fee)``;
with best-first ladders it only decreases, so profit is concave in ``q`` and the best size is where the marginal
profit stops being positive, capped by ``max_notional`` (buy notional, before fees) and the depth of both ladders.
On the lot grid the optimum is the floor or the ceiling of that point (whichever earns more, the smaller on a
tie), and a size whose buy notional is below ``min_notional`` is not allowed (the smallest allowed lot multiple
is then tried).  :func:`joint_walk` does this for many trades at once on ``(trades, levels)`` arrays padded with
zero sizes.

Examples
--------
>>> import numpy as np
>>> size, profit = joint_walk(
...     buy_price=np.array([[100.0, 100.5]]), buy_size=np.array([[1.0, 2.0]]),
...     sell_price=np.array([[101.0, 100.2]]), sell_size=np.array([[2.0, 5.0]]),
...     buy_fee=np.array([0.0]), sell_fee=np.array([0.0]), max_notional=np.array([1e9]),
...     lot=np.array([0.1]), min_notional=np.array([0.0]))
>>> size.tolist(), np.round(profit, 6).tolist()  # 1 @ 100 -> 101, then 1 @ 100.5 -> 101, then 100.5 > 100.2
([2.0], [1.5])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.schema import QuoteFlag

__all__ = ["BookState", "book_as_of", "cycle_walk", "joint_walk", "ladder_fill", "update_books"]

FloatArray = npt.NDArray[np.float64]

_STATE_SCHEMA = pl.Schema(
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "time": pl.Int64,
        "side": pl.String,
        "level": pl.UInt16,
        "price": pl.Float64,
        "size": pl.Float64,
        "flags": pl.UInt16,
    }
)


@dataclass(frozen=True)
class BookState:
    """Rows of the latest book snapshot per ``(exchange, symbol)``, sorted; ``time`` is the chosen clock."""

    frame: pl.DataFrame

    @classmethod
    def empty(cls) -> BookState:
        return cls(pl.DataFrame(schema=_STATE_SCHEMA))


def _rows(book: pl.DataFrame, clock: str) -> pl.DataFrame:
    if book.height == 0:
        return pl.DataFrame(schema=_STATE_SCHEMA)
    flags = pl.col("flags") if "flags" in book.columns else pl.lit(0)
    return book.select(
        pl.col("exchange").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col(clock).cast(pl.Int64).alias("time"),
        pl.col("side").cast(pl.String),
        pl.col("level").cast(pl.UInt16),
        pl.col("price").cast(pl.Float64),
        pl.col("size").cast(pl.Float64),
        flags.fill_null(0).cast(pl.UInt16).alias("flags"),
    )


def update_books(state: BookState, book: pl.DataFrame, clock: str = "ts_recv") -> BookState:
    """The state after a batch's book rows: per key, the rows with the latest clock (state rows included)."""
    if book.height == 0:
        return state
    rows = pl.concat([state.frame, _rows(book, clock)])
    latest = rows.filter(pl.col("time") == pl.col("time").max().over("exchange", "symbol"))
    return BookState(latest.sort("exchange", "symbol", "side", "level", maintain_order=True))


def book_as_of(
    state: BookState,
    book: pl.DataFrame,
    exchange: pl.Series,
    symbol: pl.Series,
    time: npt.NDArray[np.int64],
    *,
    clock: str = "ts_recv",
    levels: int | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Ladders of the snapshot of ``(exchange[i], symbol[i])`` visible at clock ``time[i]`` (clock strictly less).

    ``state`` is the book state *before* the batch and ``book`` the batch's book rows.  Returns ``bid_price,
    bid_size, ask_price, ask_size`` as ``(queries, levels)`` arrays, best level first, padded with NaN prices and
    zero sizes, and the snapshot's clock per query (``-1`` where there is none or it is flagged: then every size
    is 0).
    """
    n = len(time)
    snapshots = pl.concat([state.frame, _rows(book, clock)])
    top_level = snapshots.get_column("level").cast(pl.Int64).max() if snapshots.height else 0
    depth = int(top_level if isinstance(top_level, int) else 0) + 1
    depth = depth if levels is None else min(depth, levels)
    empty = np.zeros((n, depth))
    if n == 0 or snapshots.height == 0:
        return np.full((n, depth), np.nan), empty, np.full((n, depth), np.nan), empty.copy(), np.full(n, -1)
    queries = pl.DataFrame(
        {"query": np.arange(n), "exchange": exchange.cast(pl.String), "symbol": symbol.cast(pl.String), "t": time}
    )
    # Only the snapshots of the queried books, no later than the last query, can be visible to a query.
    wanted = queries.select("exchange", "symbol").unique()
    snapshots = snapshots.join(wanted, on=["exchange", "symbol"], how="semi").filter(pl.col("time") < int(time.max()))
    keys = (
        snapshots.select("exchange", "symbol", "time")
        .unique()
        .sort("exchange", "symbol", "time")
        .with_row_index("snapshot")
    )
    found = (
        queries.sort("t")
        .join_asof(
            keys.rename({"time": "t"}).with_columns(pl.col("t").alias("snapshot_time")),
            on="t",
            by=["exchange", "symbol"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .sort("query")
    )
    snapshot = found["snapshot"].fill_null(-1).cast(pl.Int64).to_numpy()
    snapshot_time = found["snapshot_time"].fill_null(-1).cast(pl.Int64).to_numpy()
    # Ladders are built for the snapshots some query sees, renumbered 0..k-1.
    seen = np.unique(snapshot[snapshot >= 0])
    local = np.full(keys.height + 1, -1, dtype=np.int64)
    local[seen] = np.arange(seen.size)
    used = keys.filter(pl.col("snapshot").is_in(pl.Series(seen, dtype=pl.UInt32)))
    rows = snapshots.join(used, on=["exchange", "symbol", "time"]).filter(pl.col("level") < depth)
    bad = rows.group_by("snapshot").agg(((pl.col("flags").cast(pl.Int64) & QuoteFlag.blocking()) != 0).any())
    flagged = np.zeros(seen.size + 1, dtype=np.bool_)
    flagged[local[bad.filter(pl.col("flags"))["snapshot"].cast(pl.Int64).to_numpy()]] = True
    out = []
    for side in ("bid", "ask"):
        price = np.full((seen.size + 1, depth), np.nan)
        size = np.zeros((seen.size + 1, depth))
        part = rows.filter(pl.col("side") == side)
        idx = local[part["snapshot"].cast(pl.Int64).to_numpy()]
        lvl = part["level"].cast(pl.Int64).to_numpy()
        price[idx, lvl] = part["price"].to_numpy()
        size[idx, lvl] = part["size"].to_numpy()
        out.append((price, size))
    pick = local[np.maximum(snapshot, 0)]
    usable = (snapshot >= 0) & ~flagged[pick]
    (bp, bs), (ap, az) = out
    bid_price = np.where(usable[:, None], bp[pick], np.nan)
    bid_size = np.where(usable[:, None], bs[pick], 0.0)
    ask_price = np.where(usable[:, None], ap[pick], np.nan)
    ask_size = np.where(usable[:, None], az[pick], 0.0)
    return bid_price, bid_size, ask_price, ask_size, np.where(usable, snapshot_time, -1)


def ladder_fill(price: FloatArray, size: FloatArray, quantity: FloatArray) -> FloatArray:
    """Notional of taking ``quantity`` units from best-first ladders ``(trades, levels)`` (NaN past the depth).

    Examples
    --------
    >>> ladder_fill(np.array([[10.0, 11.0]]), np.array([[1.0, 1.0]]), np.array([1.5])).tolist()
    [15.5]
    """
    size = np.where(np.isfinite(price), size, 0.0)
    before = np.cumsum(size, axis=1) - size
    take = np.clip(quantity[:, None] - before, 0.0, size)
    notional = np.where(take > 0, take * np.nan_to_num(price), 0.0).sum(axis=1)
    depth = size.sum(axis=1)
    return np.where(quantity <= depth * (1 + 1e-12), notional, np.nan)


def _quantity_for_notional(price: FloatArray, size: FloatArray, notional: FloatArray) -> FloatArray:
    """Largest quantity whose fill notional stays within ``notional`` (the whole ladder if it does)."""
    size = np.where(np.isfinite(price), size, 0.0)
    level_notional = size * np.nan_to_num(price)
    before = np.cumsum(level_notional, axis=1) - level_notional
    room = np.clip(notional[:, None] - before, 0.0, level_notional)
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(level_notional > 0, room / np.where(price > 0, price, 1.0), 0.0)
    return np.asarray(units.sum(axis=1), dtype=np.float64)


def _floor_lot(size: FloatArray, lot: FloatArray) -> FloatArray:
    return np.where(lot > 0, np.floor(size / np.where(lot > 0, lot, 1.0) * (1.0 + 1e-12)) * lot, size)


def joint_walk(
    *,
    buy_price: FloatArray,
    buy_size: FloatArray,
    sell_price: FloatArray,
    sell_size: FloatArray,
    buy_fee: FloatArray,
    sell_fee: FloatArray,
    max_notional: FloatArray,
    lot: FloatArray,
    min_notional: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Profit-maximizing size (and its net profit) of buying on one ladder and selling on another.

    Parameters
    ----------
    buy_price, buy_size
        ``(trades, levels)`` ask ladder of the buy venue, best (lowest) first; NaN price / 0 size pads.
    sell_price, sell_size
        ``(trades, levels)`` bid ladder of the sell venue, best (highest) first.
    buy_fee, sell_fee, max_notional, lot, min_notional
        Per trade: taker fees (fraction), cap on the buy notional, lot size (0: none), least buy notional.

    Returns
    -------
    tuple of ``(trades,)`` arrays
        ``size`` (0 where no allowed size earns money) and ``profit`` (net of fees, 0 where size is 0).
    """
    n, levels_buy = buy_price.shape
    buy_size = np.where(np.isfinite(buy_price), buy_size, 0.0)
    sell_size = np.where(np.isfinite(sell_price), sell_size, 0.0)
    # Breakpoints of the two step functions; the marginal profit is constant between consecutive breakpoints.
    cum_buy, cum_sell = np.cumsum(buy_size, axis=1), np.cumsum(sell_size, axis=1)
    depth = np.minimum(cum_buy[:, -1], cum_sell[:, -1])
    points = np.sort(np.concatenate([np.zeros((n, 1)), cum_buy, cum_sell], axis=1), axis=1)
    lo, hi = points[:, :-1], points[:, 1:]
    mid = 0.5 * (lo + hi)
    level_buy = np.minimum((cum_buy[:, None, :] <= mid[:, :, None]).sum(axis=2), levels_buy - 1)
    level_sell = np.minimum((cum_sell[:, None, :] <= mid[:, :, None]).sum(axis=2), sell_price.shape[1] - 1)
    rows = np.arange(n)[:, None]
    with np.errstate(invalid="ignore"):
        marginal = sell_price[rows, level_sell] * (1.0 - sell_fee[:, None]) - buy_price[rows, level_buy] * (
            1.0 + buy_fee[:, None]
        )
        segment = (hi > lo) & (mid < depth[:, None])
        good = np.where(segment, marginal > 0, True)
        # Walk while the next unit earns: stop at the first segment that does not.
        first_bad = np.where((~good).any(axis=1), np.argmax(~good, axis=1), lo.shape[1])
        stop = np.where(first_bad < lo.shape[1], lo[np.arange(n), np.minimum(first_bad, lo.shape[1] - 1)], depth)
    cap = _quantity_for_notional(buy_price, buy_size, max_notional)
    upper = np.minimum(np.minimum(stop, depth), cap)
    upper_lot = _floor_lot(np.minimum(depth, cap), lot)  # the largest allowed size on the lot grid
    down = _floor_lot(upper, lot)
    up = np.where(lot > 0, np.minimum(down + lot, upper_lot), down)

    def profit_at(q: FloatArray) -> FloatArray:
        proceeds = ladder_fill(sell_price, sell_size, q)
        cost = ladder_fill(buy_price, buy_size, q)
        return np.asarray(proceeds * (1.0 - sell_fee) - cost * (1.0 + buy_fee), dtype=np.float64)

    def allowed(q: FloatArray) -> npt.NDArray[np.bool_]:
        cost = ladder_fill(buy_price, buy_size, q)
        return np.asarray((q > 0) & (q <= upper_lot * (1 + 1e-12)) & (cost >= min_notional), dtype=np.bool_)

    # Smallest lot multiple reaching min notional (only matters when the best point is below it).
    need = _quantity_for_notional(buy_price, buy_size, min_notional)
    smallest = np.where(lot > 0, np.ceil(need / np.where(lot > 0, lot, 1.0) * (1.0 - 1e-12)) * lot, need)
    best_size, best_profit = np.zeros(n), np.zeros(n)
    with np.errstate(invalid="ignore"):
        for candidate in (down, up, smallest):
            p = profit_at(candidate)
            better = allowed(candidate) & (p > best_profit) & np.isfinite(p)
            better |= allowed(candidate) & (p == best_profit) & (p > 0) & (candidate < best_size)
            best_size, best_profit = np.where(better, candidate, best_size), np.where(better, p, best_profit)
    return best_size, best_profit


def cycle_walk(
    *,
    sell: npt.NDArray[np.bool_],
    price: FloatArray,
    size: FloatArray,
    fee: FloatArray,
    cap: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Jointly walk the ladders of every leg of conversion cycles: the start amount that maximizes net profit.

    Parameters
    ----------
    sell
        ``(cycles, legs)``: the leg sells base at the bids (else buys base at the asks).
    price, size
        ``(cycles, legs, levels)`` best-first ladders of each leg (bids of a sell leg, asks of a buy leg); NaN
        price / 0 size pads.  A leg with no finite price at all is a rate-1 pass-through (transfers, padding).
    fee
        ``(cycles, legs)`` taker fee of each leg.
    cap
        ``(cycles,)`` most start currency to put in.

    Returns
    -------
    tuple
        ``start`` (start currency put in, ``(cycles,)``), ``profit`` (start currency earned net of fees,
        ``(cycles,)``), ``base`` and ``notional`` (``(cycles, legs)``: base units traded on each leg and their
        value in the leg's quote currency, so ``notional / base`` is the average fill price).

    Notes
    -----
    The marginal rate of the next unit of start currency is the product of every leg's rate at its current
    level; the walk advances by the smallest remaining level capacity (in start units) while that product is
    above 1, so each step is exact and there are at most ``legs x levels`` steps, all cycles at once.

    Examples
    --------
    >>> start, profit, base, notional = cycle_walk(
    ...     sell=np.array([[False, True]]), price=np.array([[[10.0, 10.5], [11.0, 10.2]]]),
    ...     size=np.array([[[1.0, 1.0], [1.5, 5.0]]]), fee=np.zeros((1, 2)), cap=np.array([1e9]))
    >>> start.tolist(), profit.tolist(), base.tolist(), notional.tolist()  # buy 1 @ 10, 0.5 @ 10.5; sell 1.5 @ 11
    ([15.25], [1.25], [[1.5, 1.5]], [[15.25, 16.5]])
    """
    n, legs, levels = price.shape
    passthrough: npt.NDArray[np.bool_] = np.asarray(~np.isfinite(price).any(axis=2), dtype=np.bool_)
    size = np.where(np.isfinite(price), size, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(sell[:, :, None], price, 1.0 / price) * (1.0 - fee[:, :, None])
        capacity = np.where(sell[:, :, None], size, size * price)  # per level, in the leg's input currency
    rate = np.where(passthrough[:, :, None], 1.0, np.nan_to_num(rate, nan=0.0))
    capacity = np.where(passthrough[:, :, None], np.inf, np.nan_to_num(capacity, nan=0.0))
    level = np.zeros((n, legs), dtype=np.int64)
    used = np.zeros((n, legs))  # input consumed in the current level
    start, out = np.zeros(n), np.zeros(n)
    base = np.zeros((n, legs))
    notional = np.zeros((n, legs))
    hit, leg = np.arange(n)[:, None], np.arange(legs)[None, :]
    for _ in range(legs * levels + 1):
        live = level < levels
        lvl = np.minimum(level, levels - 1)
        r = np.where(live, rate[hit, leg, lvl], 0.0)
        before = np.cumprod(np.concatenate([np.ones((n, 1)), r[:, :-1]], axis=1), axis=1)
        marginal = np.prod(r, axis=1)
        room = np.where(live, capacity[hit, leg, lvl] - used, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            room_start = np.where(before > 0, room / before, 0.0)
        step = np.minimum(room_start.min(axis=1), cap - start)
        active = (marginal > 1.0) & (step > 0)
        if not active.any():
            break
        step = np.where(active, step, 0.0)
        flow = step[:, None] * before  # input of each leg in this step
        start += step
        out += step * marginal
        lvl_price = price[hit, leg, lvl]
        bought = flow / np.where(np.isfinite(lvl_price), lvl_price, 1.0)
        base += np.where(passthrough, 0.0, np.where(sell, flow, bought))
        notional += np.where(passthrough, 0.0, np.where(sell, flow * np.nan_to_num(lvl_price), flow))
        used += flow
        done = active[:, None] & (used >= np.where(live, capacity[hit, leg, lvl], np.inf) * (1 - 1e-12))
        level = np.where(done, level + 1, level)
        used = np.where(done, 0.0, used)
    return start, out - start, base, notional
