"""Cross-exchange detector against a per-row brute force written here."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings

from arbkit.detect._cross_exchange import CrossExchangeParams, CrossExchangeState, detect_cross_exchange
from arbkit.detect._cross_exchange import finish_cross_exchange as finish
from arbkit.instruments import default_registry
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
