"""Cross-exchange detector against a per-row brute force written here."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings

from arbkit.align import LastQuotes, align_quotes
from arbkit.detect._cross_exchange import CrossExchangeParams, CrossExchangeState, detect_cross_exchange
from arbkit.detect._cross_exchange import finish_cross_exchange as finish
from arbkit.instruments import default_registry
from arbkit.pipeline import states_equal
from arbkit.schema import OPPORTUNITIES, QuoteFlag, validate
from arbkit.testing import quote_frames

REG = default_registry()
PARAMS = CrossExchangeParams(max_notional=50_000.0)


def _brute(frame: pl.DataFrame, params: CrossExchangeParams) -> list[tuple[str, str, str, int, int, int]]:
    """(symbol, buy, sell, ts_start, ts_end, rows) of every episode, by walking rows one at a time."""
    rows = frame.with_row_index("pos").to_dicts()
    rows.sort(key=lambda r: (r["ts_recv"], r["pos"]))
    latest: dict[tuple[str, str], dict[str, object]] = {}
    open_: dict[tuple[str, str, str], list[int]] = {}
    done = []
    for row in rows:
        latest[(row["exchange"], row["symbol"])] = row
        symbol, t = row["symbol"], row["ts_recv"]
        profitable = set()
        venues = [v for (v, s) in latest if s == symbol]
        for a in venues:
            for b in venues:
                qa, qb = latest[(a, symbol)], latest[(b, symbol)]
                if a == b or not (_good(qa, t) and _good(qb, t)):
                    continue
                ia, ib = REG.get(a, symbol), REG.get(b, symbol)
                pu = (qb["bid"] - qa["ask"]) - ia.taker_fee * qa["ask"] - ib.taker_fee * qb["bid"]  # type: ignore[operator]
                lot = max(ia.lot_size, ib.lot_size)
                raw = min(qa["ask_size"], qb["bid_size"], params.max_notional / qa["ask"])  # type: ignore[operator, type-var]
                size = math.floor(raw / lot * (1 + 1e-12)) * lot
                if pu > 0 and size > 0 and size * qa["ask"] >= max(ia.min_notional, ib.min_notional):  # type: ignore[operator]
                    profitable.add((symbol, a, b))
        for key in [k for k in open_ if k[0] == symbol and k not in profitable]:
            start, end, n = open_.pop(key)
            done.append((*key, start, end, n))
        for key in profitable:
            start, _, n = open_.get(key, [t, t, 0])
            open_[key] = [start, t, n + 1]
    done.extend((*k, s, e, n) for k, (s, e, n) in open_.items())
    return sorted(done)


def _good(q: dict[str, object], t: int) -> bool:
    try:
        REG.get(str(q["exchange"]), str(q["symbol"]))
    except KeyError:
        return False
    bid, ask, bs, as_ = (float(q[k]) for k in ("bid", "ask", "bid_size", "ask_size"))  # type: ignore[arg-type]
    if not all(math.isfinite(x) for x in (bid, ask, bs, as_)) or bid <= 0 or ask <= 0 or bid > ask:
        return False
    if bs < 0 or as_ < 0 or int(q["flags"]) & QuoteFlag.blocking():  # type: ignore[call-overload]
        return False
    return t - int(q["ts_recv"]) <= REG.profile(str(q["exchange"])).max_age_ms * 1e6  # type: ignore[call-overload]


@settings(max_examples=60, deadline=None)
@given(frame=quote_frames(max_rows=50, invalid=True, max_gap_ms=600))
def test_matches_brute_force(frame: pl.DataFrame) -> None:
    out, state = detect_cross_exchange(frame, CrossExchangeState.empty(), PARAMS)
    out = pl.concat([out, finish(state, PARAMS)])
    validate(out, OPPORTUNITIES)
    got = sorted(
        zip(
            out["symbol"],
            out["buy_exchange"],
            out["sell_exchange"],
            out["ts_start"],
            out["ts_end"],
            out["rows"],
            strict=True,
        )
    )
    assert got == _brute(frame, PARAMS)
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1)).all()
    assert (out["peak_profit"] >= out["profit"]).all()
    assert (out["buy_exchange"] != out["sell_exchange"]).all()


def _quotes(rows: list[tuple[int, str, float, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": ["ETH/USDT"] * len(rows),
            "bid": [r[2] for r in rows],
            "bid_size": [2.0] * len(rows),
            "ask": [r[3] for r in rows],
            "ask_size": [2.0] * len(rows),
            "flags": pl.Series([r[4] for r in rows], dtype=pl.UInt16),
        }
    )


def test_profit_size_and_counters() -> None:
    ms = 1_000_000
    frame = _quotes(
        [
            (1 * ms, "binance", 3000.0, 3000.5, 0),
            (2 * ms, "okx", 3020.0, 3020.5, 0),  # profitable: buy binance, sell okx
            (3 * ms, "okx", 3020.0, 3020.5, int(QuoteFlag.UNVERIFIED)),  # flagged: suppressed
            (5000 * ms, "okx", 3020.0, 3020.5, 0),  # binance now stale: suppressed
        ]
    )
    params = CrossExchangeParams(max_notional=3000.5)  # caps the size at 1 ETH
    out, state = detect_cross_exchange(frame, CrossExchangeState.empty(), params)
    assert out.height == 1
    row = out.row(0, named=True)
    assert row["size"] == 1.0
    expected = (3020.0 - 3000.5) - 0.001 * 3000.5 - 0.001 * 3020.0
    assert math.isclose(row["profit"], expected, rel_tol=1e-12)
    assert (row["ts_start"], row["ts_end"], row["status"]) == (2 * ms, 2 * ms, "expired")
    assert [leg["side"] for leg in row["legs"]] == ["buy", "sell"]
    assert state.counters == {"flagged": 1, "suppressed_flagged": 1, "suppressed_stale": 1}


def test_fee_override_can_remove_the_opportunity() -> None:
    frame = _quotes([(1, "binance", 3000.0, 3000.5, 0), (2, "okx", 3010.0, 3010.5, 0)])
    base, _ = detect_cross_exchange(frame, CrossExchangeState.empty(), CrossExchangeParams())
    state = detect_cross_exchange(frame, CrossExchangeState.empty(), CrossExchangeParams())[1]
    assert base.height + finish(state, CrossExchangeParams()).height == 1
    expensive = CrossExchangeParams(taker_fees={"binance": 0.01})
    out, state = detect_cross_exchange(frame, CrossExchangeState.empty(), expensive)
    assert out.height + finish(state, expensive).height == 0


def test_empty_and_garbage_batches_do_not_crash() -> None:
    empty = _quotes([])
    out, state = detect_cross_exchange(empty, CrossExchangeState.empty(), PARAMS)
    assert out.height == 0
    garbage = _quotes([(1, "nowhere", float("nan"), -1.0, 0), (2, "okx", 0.0, 0.0, 0)])
    out, state = detect_cross_exchange(garbage, state, PARAMS)
    assert out.height == 0
    assert state.counters == {"missing_price": 1, "non_positive_price": 1}


def _book_rows(t: int, exchange: str, side: str, levels: list[tuple[float, float]]) -> list[dict[str, object]]:
    return [
        {"ts_event": t, "ts_recv": t, "exchange": exchange, "symbol": "BTC/USDT", "side": side, "level": i,
         "price": p, "size": s, "seq": None, "flags": 0}
        for i, (p, s) in enumerate(levels)
    ]  # fmt: skip


def test_book_depth_sizes_the_trade_by_a_joint_walk() -> None:
    asks = [(100.0, 1.0), (100.3, 2.0), (100.8, 5.0)]  # binance, buy side
    bids = [(101.0, 1.0), (100.6, 2.0), (100.1, 5.0)]  # okx, sell side
    quotes = pl.DataFrame(
        {
            "ts_event": [1, 2, 3],
            "ts_recv": [1, 2, 3],
            "exchange": ["binance", "okx", "bybit"],
            "symbol": ["BTC/USDT"] * 3,
            "bid": [99.9, 101.0, 90.0],
            "bid_size": [1.0, 1.0, 1.0],
            "ask": [100.0, 101.1, 110.0],
            "ask_size": [1.0, 1.0, 1.0],
        }
    )
    book = pl.DataFrame(
        _book_rows(1, "binance", "ask", asks) + _book_rows(2, "okx", "bid", bids),
        schema={"ts_event": pl.Int64, "ts_recv": pl.Int64, "exchange": pl.String, "symbol": pl.String,
                "side": pl.String, "level": pl.UInt16, "price": pl.Float64, "size": pl.Float64, "seq": pl.Int64,
                "flags": pl.UInt16},
    )  # fmt: skip
    params = CrossExchangeParams(max_notional=1e6)
    out, state = detect_cross_exchange(quotes, CrossExchangeState.empty(), params, book)
    opp = pl.concat([out, finish(state, params)])
    assert opp.height == 1
    registry = params.registry
    fee_buy = registry.get("binance", "BTC/USDT").taker_fee
    fee_sell = registry.get("okx", "BTC/USDT").taker_fee
    lot = max(registry.get("binance", "BTC/USDT").lot_size, registry.get("okx", "BTC/USDT").lot_size)

    def fill(levels: list[tuple[float, float]], q: float) -> float:
        total, left = 0.0, q
        for price, size in levels:
            take = min(size, left)
            total, left = total + take * price, left - take
        return total

    # Brute force over every lot multiple up to the shallower ladder's depth (8 units).
    best = max(
        ((fill(bids, k * lot) * (1 - fee_sell) - fill(asks, k * lot) * (1 + fee_buy), k * lot)
         for k in range(1, round(8.0 / lot) + 1)),
    )  # fmt: skip
    assert math.isclose(opp["profit"][0], best[0], rel_tol=1e-9)
    assert math.isclose(opp["size"][0], best[1], rel_tol=1e-9)
    buy_leg, sell_leg = opp["legs"][0]
    assert math.isclose(buy_leg["price"], fill(asks, best[1]) / best[1], rel_tol=1e-12)  # average fill price
    assert math.isclose(sell_leg["price"], fill(bids, best[1]) / best[1], rel_tol=1e-12)
    assert opp["buy_price"][0] == 100.0  # the quoted top of book
    # Without the book the same quotes give the top-of-book size.
    top, top_state = detect_cross_exchange(quotes, CrossExchangeState.empty(), params)
    assert pl.concat([top, finish(top_state, params)])["size"][0] == 1.0


def test_a_book_without_the_walked_side_falls_back_to_top_of_book() -> None:
    quotes = pl.DataFrame(
        {
            "ts_event": [1, 2, 3],
            "ts_recv": [1, 2, 3],
            "exchange": ["binance", "okx", "bybit"],
            "symbol": ["BTC/USDT"] * 3,
            "bid": [99.9, 101.0, 90.0],
            "bid_size": [1.0, 1.0, 1.0],
            "ask": [100.0, 101.1, 110.0],
            "ask_size": [1.0, 1.0, 1.0],
        }
    )
    bids_only = pl.DataFrame(
        _book_rows(1, "binance", "bid", [(99.9, 1.0), (99.5, 3.0)]),
        schema={"ts_event": pl.Int64, "ts_recv": pl.Int64, "exchange": pl.String, "symbol": pl.String,
                "side": pl.String, "level": pl.UInt16, "price": pl.Float64, "size": pl.Float64, "seq": pl.Int64,
                "flags": pl.UInt16},
    )  # fmt: skip
    params = CrossExchangeParams(max_notional=1e6)
    out, state = detect_cross_exchange(quotes, CrossExchangeState.empty(), params, bids_only)
    opp = pl.concat([out, finish(state, params)])
    assert opp["size"].to_list() == [1.0]


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=80, invalid=True, max_gap_ms=300))
def test_rows_need_clock_order_per_symbol_only(frame: pl.DataFrame) -> None:
    """A store file sorted by symbol then time is scanned as is: same episodes, counters and state as the
    time-ordered frame (and as a frame in arbitrary order, which is put in canonical order first)."""
    by_time = frame.sort("ts_recv", maintain_order=True)
    by_symbol = by_time.sort("symbol", maintain_order=True)
    # Ties of equal clocks are settled by batch position, so a shuffle is compared on distinct clocks.
    distinct = by_time.with_columns(pl.col("ts_recv") + pl.int_range(pl.len(), dtype=pl.Int64))
    shuffled = distinct.sample(fraction=1.0, shuffle=True, seed=3)
    results = []
    for variant in (by_time, by_symbol):
        out, state = detect_cross_exchange(variant, CrossExchangeState.empty(), PARAMS)
        results.append((pl.concat([out, finish(state, PARAMS)]).sort("id"), state))
    (a, sa), (b, sb) = results
    assert a.equals(b)
    assert states_equal(sa, sb)
    out, state = detect_cross_exchange(distinct, CrossExchangeState.empty(), PARAMS)
    out2, state2 = detect_cross_exchange(shuffled, CrossExchangeState.empty(), PARAMS)
    assert out.sort("id").equals(out2.sort("id"))
    assert states_equal(state, state2)


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=60, invalid=True))
def test_carried_quotes_match_the_alignment_module(frame: pl.DataFrame) -> None:
    """The compiled scan's carried cells equal :func:`arbkit.align.align_quotes`'s state (a second method)."""
    _, state = detect_cross_exchange(frame, CrossExchangeState.empty(), PARAMS)
    _, expected = align_quotes(frame, LastQuotes.empty(), registry=REG)
    got = state.latest_quotes()
    assert got.select(expected.frame.columns).equals(expected.frame, null_equal=True)


@settings(max_examples=30, deadline=None)
@given(frame=quote_frames(max_rows=80, max_gap_ms=200, dislocation=0.01))
def test_few_and_many_episode_builders_agree(frame: pl.DataFrame) -> None:
    """Micro-batches build their few episodes row-wise, big batches column-wise: the frames must be identical."""
    import arbkit.detect._cross_exchange as module

    out, state = detect_cross_exchange(frame, CrossExchangeState.empty(), PARAMS)
    few = pl.concat([out, finish(state, PARAMS)])
    saved = module._FEW_EPISODES
    module._FEW_EPISODES = -1
    try:
        out, state = detect_cross_exchange(frame, CrossExchangeState.empty(), PARAMS)
        many = pl.concat([out, finish(state, PARAMS)])
    finally:
        module._FEW_EPISODES = saved
    assert few.schema == many.schema == OPPORTUNITIES.polars
    assert few.equals(many)
