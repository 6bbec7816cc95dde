"""As-of alignment against a brute-force reference and across micro-batch splits."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.align import REASONS, LastQuotes, Reason, align_quotes, check_quotes, count_reasons
from arbkit.instruments import default_registry
from arbkit.schema import QuoteFlag
from arbkit.testing import quote_frames

REG = default_registry()
MAX_AGE_NS = {v: int(REG.profile(v).max_age_ms * 1_000_000) for v in ("binance", "okx", "bybit")}


def _reference(frame: pl.DataFrame, clock: str) -> dict[tuple[int, str], tuple[float, bool, bool]]:
    """For each input row and venue: (bid of the latest row of that venue and symbol, usable, stale), by loops."""
    rows = frame.with_row_index("pos").to_dicts()
    rows.sort(key=lambda r: (r[clock], r["pos"]))
    reasons = check_quotes(frame, REG)
    out: dict[tuple[int, str], tuple[float, bool, bool]] = {}
    for i, row in enumerate(rows):
        for venue in ("binance", "okx", "bybit"):
            latest = None
            for earlier in rows[: i + 1]:
                if earlier["symbol"] == row["symbol"] and earlier["exchange"] == venue:
                    latest = earlier
            if latest is None:
                continue
            ok = reasons[latest["pos"]] == 0
            fresh = row[clock] - latest[clock] <= MAX_AGE_NS[venue]
            out[(row["pos"], venue)] = (latest["bid"], ok and fresh, ok and not fresh)
    return out


def _check(view, frame: pl.DataFrame, clock: str, offset: int = 0) -> None:  # type: ignore[no-untyped-def]
    ref = _reference(frame, clock)
    for r in range(view.height):
        pos = int(view.source[r]) + offset
        for v, venue in enumerate(view.venues):
            if venue not in MAX_AGE_NS:
                continue
            expected = ref.get((pos, venue))
            if expected is None:
                assert np.isnan(view.bid[r, v]) or not view.usable[r, v]
                assert not view.usable[r, v]
                continue
            bid, usable, stale = expected
            assert view.usable[r, v] == usable
            assert view.stale[r, v] == stale
            if usable:
                assert view.bid[r, v] == bid


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=40, invalid=True, max_gap_ms=700), clock=st.sampled_from(["ts_recv", "ts_event"]))
def test_matches_brute_force(frame: pl.DataFrame, clock: str) -> None:
    view, _ = align_quotes(frame, LastQuotes.empty(), registry=REG, clock=clock)  # type: ignore[arg-type]
    assert view.height == frame.height
    assert np.all(np.diff(view.time) >= 0)
    _check(view, frame, clock)


@settings(max_examples=40, deadline=None)
@given(frame=quote_frames(max_rows=40, invalid=True, max_gap_ms=700), data=st.data())
def test_split_views_equal_whole(frame: pl.DataFrame, data: st.DataObject) -> None:
    whole, whole_state = align_quotes(frame, LastQuotes.empty(), registry=REG)
    cut_list = sorted(data.draw(st.lists(st.integers(0, frame.height), max_size=4)))
    order = np.argsort(frame["ts_recv"].to_numpy(), kind="stable")
    state = LastQuotes.empty()
    bids, usable = [], []
    for lo, hi in zip([0, *cut_list], [*cut_list, frame.height], strict=True):
        part = frame[np.sort(order[lo:hi])]
        view, state = align_quotes(part, state, registry=REG)
        full = np.full((view.height, len(whole.venues)), np.nan)
        mask = np.zeros((view.height, len(whole.venues)), dtype=bool)
        for v, venue in enumerate(view.venues):
            w = whole.venues.index(venue)
            full[:, w] = view.bid[:, v]
            mask[:, w] = view.usable[:, v]
        bids.append(full)
        usable.append(mask)
    np.testing.assert_array_equal(np.concatenate(usable), whole.usable)
    np.testing.assert_array_equal(np.where(whole.usable, np.concatenate(bids), 0), np.where(whole.usable, whole.bid, 0))
    assert state.frame.equals(whole_state.frame)


def test_flagged_and_bad_rows_are_counted_and_never_usable() -> None:
    frame = pl.DataFrame(
        {
            "ts_event": [1, 2, 3, 4, 5],
            "ts_recv": [1, 2, 3, 4, 5],
            "exchange": ["okx", "okx", "okx", "kraken", "nowhere"],
            "symbol": ["BTC/USDT", "BTC/USDT", "BTC/USDT", "NOT A SYMBOL", "BTC/USDT"],
            "bid": [100.0, 0.0, 100.0, 1.0, 1.0],
            "bid_size": [1.0] * 5,
            "ask": [101.0, 101.0, 101.0, 2.0, 2.0],
            "ask_size": [1.0] * 5,
            "flags": [0, 0, int(QuoteFlag.RESYNCING), 0, 0],
        }
    )
    reasons = check_quotes(frame, REG)
    assert [REASONS[c] for c in reasons] == [
        "ok",
        "non_positive_price",
        "flagged",
        "unknown_instrument",
        "unknown_instrument",
    ]
    assert count_reasons(reasons) == {"non_positive_price": 1, "flagged": 1, "unknown_instrument": 2}
    view, state = align_quotes(frame, LastQuotes.empty(), registry=REG)
    okx = view.venues.index("okx")
    # The first row is usable; the zero-price row replaces it and nothing after is usable on okx.
    assert view.usable[:, okx].tolist() == [True, False, False, False, False]
    assert state.frame.filter(pl.col("exchange") == "okx")["reason"].to_list() == [int(Reason.FLAGGED)]


def test_empty_batch_keeps_state() -> None:
    frame = pl.DataFrame(
        {
            "ts_event": [1],
            "ts_recv": [1],
            "exchange": ["okx"],
            "symbol": ["BTC/USDT"],
            "bid": [1.0],
            "bid_size": [1.0],
            "ask": [2.0],
            "ask_size": [1.0],
            "flags": [0],
        }
    )
    _, state = align_quotes(frame, LastQuotes.empty(), registry=REG)
    view, again = align_quotes(frame.clear(), state, registry=REG)
    assert view.height == 0
    assert again.frame.equals(state.frame)


def test_max_age_override() -> None:
    ms = 1_000_000
    frame = pl.DataFrame(
        {
            "ts_event": [1, 1],
            "ts_recv": [1 * ms, 300 * ms],
            "exchange": ["okx", "binance"],
            "symbol": ["BTC/USDT"] * 2,
            "bid": [1.0, 1.0],
            "bid_size": [1.0] * 2,
            "ask": [2.0, 2.0],
            "ask_size": [1.0] * 2,
        }
    )
    view, _ = align_quotes(frame, LastQuotes.empty(), registry=REG, max_age_ms={"okx": 100.0})
    assert view.usable[1].tolist() == [True, False]
    assert view.stale[1].tolist() == [False, True]
