"""Properties of the basis and options-parity pipelines: batch-split parity, and no parity violation on a market
priced by :mod:`arbkit.pricing` with spreads."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines
from arbkit import schema
from arbkit.pipeline import Batch, assert_parity
from arbkit.pricing import black76
from arbkit.testing import cuts, quote_frames

BASIS = pipelines.get("basis")
PARITY = pipelines.get("options_parity")
_MS = 1_000_000
_BASIS_SYMBOLS = {"BTC/USDT": 60_000.0, "BTC/USDT:USDT": 60_000.0, "BTC/USD:BTC": 60_000.0}
_EXPIRY = "260327"
_EXPIRY_NS = 1_774_598_400_000_000_000  # 2026-03-27 08:00 UTC


def _funding(quotes: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Funding rows for the perpetuals, at a subset of the quote times (bursts and ties included)."""
    rng = np.random.default_rng(seed)
    perps = quotes.filter(pl.col("symbol").str.contains(":"))
    pick = perps.filter(pl.Series(rng.random(perps.height) < 0.4))
    n = pick.height
    rate = rng.normal(0.0, 0.001, n)
    return pl.DataFrame(
        {
            "ts_event": pick["ts_event"],
            "ts_recv": pick["ts_recv"],
            "exchange": pick["exchange"],
            "symbol": pick["symbol"],
            "funding_rate": rate,
            "predicted_rate": np.where(rng.random(n) < 0.5, rate * 1.1, np.nan),
            "next_funding_time": (pick["ts_recv"] // (8 * 3600 * 10**9) + 1) * (8 * 3600 * 10**9),
            "mark_price": pick["bid"].fill_nan(None).abs().fill_null(60_000.0).clip(1.0),
            "index_price": [60_000.0] * n,
            "flags": np.where(rng.random(n) < 0.1, 1, 0).astype(np.uint16),
        }
    ).with_columns(pl.col("predicted_rate").fill_nan(None))


@settings(max_examples=20, deadline=None)
@given(
    frame=quote_frames(
        venues=("binance", "okx", "deribit"), symbols=_BASIS_SYMBOLS, max_rows=60, invalid=True, dislocation=0.01
    ),
    seed=st.integers(0, 2**16),
    data=st.data(),
    clock=st.sampled_from(["ts_recv", "ts_event"]),
)
def test_basis_split_parity(frame: pl.DataFrame, seed: int, data: st.DataObject, clock: str) -> None:
    funding = _funding(frame, seed)
    batch = Batch(quotes=frame, funding=schema.validate(funding, schema.FUNDING))
    params = BASIS.params_type(clock=clock, max_notional=100_000.0)
    assert_parity(BASIS, batch, params, data.draw(cuts(batch.height)), clock=clock)


def _option_market(seed: int, n_times: int, spread_bps: float, with_future: bool) -> Batch:
    """Calls and puts priced by Black-76 on the future's mid, quoted around it with spreads."""
    rng = np.random.default_rng(seed)
    start = 1_767_225_600_000_000_000  # 2026-01-01
    gaps = np.where(rng.random(n_times) < 0.3, 0, rng.integers(1, 300, n_times)) * _MS
    times = start + np.cumsum(gaps)
    # One consistent market (forward level, a volatility per strike) re-quoted over time: every combination of a
    # call row and a put row then satisfies parity at mid, whatever order the rows arrive in.
    forward = np.full(n_times, 100_000.0 * float(rng.uniform(0.5, 1.5)))
    vols = rng.uniform(0.3, 0.9, 3)
    strikes = np.array([90_000.0, 100_000.0, 110_000.0])
    rows: list[dict[str, object]] = []
    futures: list[dict[str, object]] = []
    rate = 0.05
    for i, ts in enumerate(times):
        t = (_EXPIRY_NS - ts) / (365.0 * 24 * 3600 * 1e9)
        f = float(forward[i])
        half_f = f * 0.0001
        futures.append(
            {
                "ts_event": ts,
                "ts_recv": ts,
                "exchange": "deribit",
                "symbol": f"BTC/USD:BTC-{_EXPIRY}",
                "bid": f - half_f,
                "bid_size": 50_000.0,
                "ask": f + half_f,
                "ask_size": 50_000.0,
            }
        )
        index = f * np.exp(-rate * t)  # the spot index whose carry-forward is the future's mid
        for raw_strike, vol in zip(strikes * forward[0] / 100_000.0, vols, strict=True):
            k = float(round(raw_strike))
            for kind in ("C", "P"):
                mid = float(black76(f, float(k), t, rate, float(vol), is_call=kind == "C"))
                half = max(mid * spread_bps / 1e4, 1.0)
                rows.append(
                    {
                        "ts_event": ts,
                        "ts_recv": ts,
                        "exchange": "deribit",
                        "symbol": f"BTC/USD:BTC-{_EXPIRY}-{round(k)}-{kind}",
                        "underlying": "BTC/USD",
                        "expiry": _EXPIRY_NS,
                        "strike": float(round(k)),
                        "option_type": kind,
                        "bid": (mid - half) / index if mid - half > 0 else None,
                        "bid_size": 5.0,
                        "ask": (mid + half) / index,
                        "ask_size": 5.0,
                        "underlying_price": index,
                    }
                )
    options = schema.validate(pl.DataFrame(rows), schema.OPTION_QUOTES)
    if with_future:
        return Batch(option_quotes=options, quotes=schema.validate(pl.DataFrame(futures), schema.QUOTES))
    return Batch(option_quotes=options)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), spread=st.floats(1.0, 200.0), with_future=st.booleans())
def test_no_parity_violation_on_a_market_priced_by_the_engine(seed: int, spread: float, with_future: bool) -> None:
    batch = _option_market(seed, 12, spread, with_future)
    params = PARITY.params_type(rate=0.05)
    events, state = PARITY.step(batch, PARITY.init(params), params)
    assert PARITY.finish(state, params).height == 0
    assert events.height == 0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), data=st.data(), with_future=st.booleans())
def test_parity_split_parity(seed: int, data: st.DataObject, with_future: bool) -> None:
    batch = _option_market(seed, 6, 20.0, with_future)
    rng = np.random.default_rng(seed)
    # Push some calls far above parity so episodes exist, and flag a few rows.
    opt = batch.option_quotes
    bump = pl.Series(rng.random(opt.height) < 0.3) & (pl.col("option_type") == "C")
    opt = opt.with_columns(
        pl.when(bump).then(pl.col("bid") * 1.5).otherwise(pl.col("bid")).alias("bid"),
        pl.when(bump).then(pl.col("ask") * 1.5).otherwise(pl.col("ask")).alias("ask"),
        pl.Series("flags", np.where(rng.random(opt.height) < 0.1, 4, 0).astype(np.uint16)),
    )
    batch = Batch(option_quotes=opt, quotes=batch.quotes)
    params = PARITY.params_type(rate=0.05)
    assert_parity(PARITY, batch, params, data.draw(cuts(batch.height)))
