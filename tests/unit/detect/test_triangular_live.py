"""Triangular live path: compiled scan signatures, span-based episodes against the generic episode merge."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines
from arbkit import schema
from arbkit.align import _codes
from arbkit.detect import _tri_kernels, _triangular
from arbkit.detect._depth import _floor_lot
from arbkit.detect._episodes import (
    EpisodeState,
    advance_timeline_codes,
    event_frame,
    finish_episodes,
    merge_episodes,
    to_opportunities,
)
from arbkit.detect._triangular import (
    TriangularParams,
    TriangularState,
    _name_codes,
    _opportunities,
    detect_triangular,
    finish_triangular,
)
from arbkit.pipeline import Batch
from arbkit.testing import check_split_parity

TRIANGULAR = pipelines.get("triangular")
VENUES = ("binance", "okx", "bybit")
ASSETS = ("BTC", "ETH", "SOL")


def _market(seed: int, rows: int, dislocation: float = 0.01, flagged: float = 0.0) -> pl.DataFrame:
    """USDT pairs and BTC crosses on three venues, crosses consistent with the USDT mids except a few bumps."""
    rng = np.random.default_rng(seed)
    level = np.array([60_000.0, 3_000.0, 150.0])
    asset = rng.integers(0, 3, rows)
    cross = (rng.random(rows) < 0.4) & (asset > 0)
    mid = level[asset] * np.exp(0.0005 * rng.standard_normal(rows))
    mid = np.where(cross, mid / level[0], mid) * np.where(rng.random(rows) < 0.05, 1 + dislocation, 1.0)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 400_000_000, rows))
    names = np.array([f"{a}/USDT" for a in ASSETS] + [f"{a}/BTC" for a in ASSETS])
    return pl.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "exchange": np.array(VENUES)[rng.integers(0, 3, rows)],
            "symbol": names[asset + np.where(cross, 3, 0)],
            "bid": mid * (1 - 1e-4),
            "bid_size": rng.exponential(2.0, rows),
            "ask": mid * (1 + 1e-4),
            "ask_size": rng.exponential(2.0, rows),
            "seq": np.arange(rows),
            "flags": np.where(rng.random(rows) < flagged, 2, 0).astype(np.uint16),
        },
        schema=schema.QUOTES.polars,
    )


def test_scan_compiles_once_for_any_batch_length() -> None:
    frame = _market(3, 40_000)
    params = TriangularParams()
    state = TriangularState.empty()
    state = detect_triangular(frame.slice(0, 10), state, params)[1]
    compiled = _tri_kernels.scan_signatures()
    rng = np.random.default_rng(0)
    lo = 10
    for length in rng.integers(0, 60, 1_000):
        _, state = detect_triangular(frame.slice(lo, int(length)), state, params)
        lo += int(length)
    assert compiled == 1
    assert _tri_kernels.scan_signatures() == compiled


@pytest.mark.parametrize("count", [1, 3, None])
def test_episode_frame_matches_the_generic_merge(count: int | None) -> None:
    # The detector builds its opportunities frame column-wise from the episodes' arrays and the layout's per-cycle
    # names; it must equal what the generic to_opportunities makes of the same episodes as records (ids,
    # persistence, order, dtypes), for the few episodes a micro-batch closes and for many.
    frame = _market(5, 3_000, dislocation=0.02)
    params = TriangularParams(max_notional=1_000.0)
    state = TriangularState.empty()
    seen: dict[tuple[str, int], _triangular.OpenEpisode] = {}
    for lo in range(0, frame.height, 3):
        _, state = detect_triangular(frame.slice(lo, 3), state, params)
        seen.update({(e.key, e.ts_start): e for e in state.open_episodes(params)})
    assert len(seen) > 10, "the bumps should open some episodes"
    _assert_frame_of(finish_triangular(state, params), state.open_episodes(params))
    # Episodes seen open along the way as one frame (the layout of the last state names all their cycles).
    layout = _triangular._layout(state.quotes.cells, params)
    index = {key: k for k, key in enumerate(layout.keys)}
    episodes = sorted(seen.values(), key=lambda e: index[e.key])[:count]
    arrays = _triangular.OpenEpisodes(
        cycle=np.array([index[e.key] for e in episodes]),
        **{name: np.array([getattr(e, name) for e in episodes]) for name in _SCALARS},
        price=np.array([_per_leg(layout, index[e.key], e, 3) for e in episodes]),
        leg_size=np.array([_per_leg(layout, index[e.key], e, 4) for e in episodes]),
    )
    _assert_frame_of(_opportunities(layout, arrays, "active"), tuple(episodes))


_SCALARS = ("seq_start", "seq_last", "ts_start", "ts_end", "rows", "size", "profit", "peak_profit",
            "profit_percentage", "confidence")  # fmt: skip


def _per_leg(layout: _triangular._Layout, k: int, e: _triangular.OpenEpisode, field: int) -> list[float]:
    values = iter(float(leg[field]) for leg in e.legs)
    return [next(values) if t else 0.0 for t in layout.cycle_trade[k].tolist()]


def _assert_frame_of(got: pl.DataFrame, episodes: tuple[_triangular.OpenEpisode, ...]) -> None:
    legs = [
        [dict(zip(("exchange", "symbol", "side", "price", "size"), leg, strict=True)) for leg in e.legs]
        for e in episodes
    ]
    generic = pl.DataFrame(
        {
            "kind": ["triangular"] * len(episodes),
            "key": [e.key for e in episodes],
            "ts_start": [e.ts_start for e in episodes],
            "ts_end": [e.ts_end for e in episodes],
            "symbol": [e.name for e in episodes],
            "legs": pl.Series(legs, dtype=schema.OPPORTUNITIES.polars["legs"]),
            "buy_exchange": [e.legs[0][0] for e in episodes],
            "sell_exchange": [e.legs[-1][0] for e in episodes],
            "buy_price": [e.legs[0][3] for e in episodes],
            "sell_price": pl.Series([None] * len(episodes), dtype=pl.Float64),
            "size": [e.size for e in episodes],
            "profit": [e.profit for e in episodes],
            "peak_profit": [e.peak_profit for e in episodes],
            "profit_percentage": [e.profit_percentage for e in episodes],
            "confidence": [e.confidence for e in episodes],
            "rows": [e.rows for e in episodes],
        }
    )
    want = to_opportunities(generic, "active")
    assert got.schema == want.schema
    assert got.equals(want)


def test_runs_merge_like_one_event_per_row() -> None:
    # Runs are built from spans; one-row steps give one span per row, i.e. the per-row events.  Those events,
    # merged by the generic episode merge, must give the episodes of one run (start, end, peak, last, rows).
    frame = _market(11, 2_000, flagged=0.02)
    params = TriangularParams(max_notional=1_000.0)
    out, state = detect_triangular(frame, TriangularState.empty(), params)
    got = pl.concat([out, finish_triangular(state, params)])
    events = []
    step_state = TriangularState.empty()
    for r in range(frame.height):
        closed, step_state = detect_triangular(frame.slice(r, 1), step_state, params)
        del closed
        for e in step_state.open_episodes(params):
            if e.seq_last == r:
                events.append((e.key, r, e.ts_end, e.profit, e.name))
    assert events, "the bumps should make some rows profitable"
    ev = event_frame(
        kind="triangular", key=[e[0] for e in events], timeline="*", seq=[e[1] for e in events],
        ts=[e[2] for e in events], symbol=[e[4] for e in events], profit=[e[3] for e in events],
    )  # fmt: skip
    _, episodes = advance_timeline_codes(EpisodeState.empty(), ["*"], np.zeros(frame.height, dtype=np.int64))
    closed, episodes = merge_episodes(ev, episodes)
    generic = pl.concat([closed, finish_episodes(episodes)])
    cols = ["ts_start", "ts_end", "symbol", "peak_profit", "profit", "rows"]
    assert got.select(cols).sort(cols).equals(generic.select(cols).sort(cols))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    data=st.data(),
    max_age_ms=st.sampled_from([None, 300.0, 1_000.0]),
    transfers=st.sampled_from([(), ("USDT",)]),
)
def test_split_parity_on_longer_markets(
    seed: int, data: st.DataObject, max_age_ms: float | None, transfers: tuple[str, ...]
) -> None:
    frame = _market(seed, 400, flagged=0.01)
    cuts = sorted(data.draw(st.lists(st.integers(0, frame.height), max_size=12)))
    params = TriangularParams(max_notional=1_000.0, max_age_ms=max_age_ms, transfers=transfers)
    check_split_parity(TRIANGULAR, frame, params, cuts)
    assert Batch(quotes=frame).height == 400


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.sampled_from(["okx", "binance", "", "BTC/USDT", "ETH/USDT:USDT", "é/ü", "x" * 40]), max_size=80),
    start=st.integers(0, 5),
)
def test_name_codes_match_the_alignment_codes(names: list[str], start: int) -> None:
    series = pl.Series("exchange", ["pad"] * start + names, dtype=pl.String).slice(start)
    got_names, got = _name_codes(series)
    want_names, want = _codes(series)
    assert got_names == want_names
    assert got.tolist() == want.tolist()


def _numpy_sizing(units, quotes, time, graph, max_notional, min_profit):  # type: ignore[no-untyped-def]
    """The NumPy sizing the compiled kernel replaced (the reference its values must match bit for bit)."""
    cycle, start, end, source = units
    bid, bid_size, ask, ask_size, clock, reason = quotes
    cycle_edges, edge_column, edge_sell, fee_col, lot_col, min_notional_col, limit_ns = graph
    edges = cycle_edges[cycle]
    column = np.where(edges >= 0, edge_column[np.maximum(edges, 0)], -1)
    trade, col = column >= 0, np.maximum(column, 0)
    src = np.maximum(source, 0)
    leg_bid, leg_ask, quote_time, leg_ok = bid[src], ask[src], clock[src], reason[src] == 0
    present = np.where(trade, np.isfinite(leg_bid) & np.isfinite(leg_ask) & (leg_bid > 0) & (leg_ask > 0), True)
    present = present.all(1)
    flag_free = np.where(trade, leg_ok, True).all(axis=1)
    deadline = np.where(trade & leg_ok, quote_time + limit_ns[col], np.iinfo(np.int64).max).min(axis=1)
    stale_from = np.clip(np.searchsorted(time, deadline, side="right"), start, end)
    suppressed = [int(((end - stale_from) * present).sum()), int(((stale_from - start) * (present & ~flag_free)).sum())]
    hit = present & flag_free & (stale_from > start)
    sell = edge_sell[np.maximum(edges, 0)]
    fee = np.where((edges >= 0) & ~trade, 0.0, fee_col[col])
    rate = np.where(~trade, 1.0, np.where(sell, leg_bid, 1.0 / leg_ask) * (1.0 - fee))
    before = np.cumprod(np.concatenate([np.ones((cycle.size, 1)), rate[:, :-1]], axis=1), axis=1)
    capacity = np.where(~trade, np.inf, np.where(sell, bid_size[src], ask_size[src] * leg_ask))
    amount = np.minimum((capacity / before).min(axis=1), max_notional)
    per_start = np.where(sell, before, before / leg_ask)
    lot = np.where(trade, lot_col[col], 0.0)
    raw = amount[:, None] * per_start
    ratio = np.where(trade & (raw > 0), _floor_lot(raw, lot) / np.where(raw > 0, raw, 1.0), 1.0)
    amount = amount * ratio.min(axis=1)
    size = np.where(trade, _floor_lot(amount[:, None] * per_start, lot), 0.0)
    price = np.where(sell, leg_bid, leg_ask)
    notional_ok = np.where(trade, size * price >= min_notional_col[col], True).all(axis=1)
    growth = np.prod(rate, axis=1)
    profit = amount * (growth - 1.0)
    displayed = np.where(sell, bid_size[src], ask_size[src])
    keep = (growth > 1.0) & (amount > 0) & notional_ok & (profit >= min_profit) & np.isfinite(profit)
    per_unit = (stale_from, amount, profit, growth, notional_ok, trade, col, sell, fee, price, size, displayed)
    return hit, keep, (*per_unit, quote_time), suppressed


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lots=st.booleans(), min_profit=st.sampled_from([-1.0, 0.0, 0.01]))
def test_compiled_sizing_is_bit_identical_to_numpy(seed: int, lots: bool, min_profit: float) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cells, n_columns, legs = 50, 8, 6, 4
    n_quotes = n_rows + n_cells
    mid = np.exp(rng.uniform(-5, 10, n_quotes))
    bid = np.where(rng.random(n_quotes) < 0.05, np.nan, mid * (1 - 1e-4))
    ask = np.where(rng.random(n_quotes) < 0.05, 0.0, mid * (1 + 1e-4))
    quotes = (
        bid, rng.exponential(2.0, n_quotes), ask, rng.exponential(2.0, n_quotes),
        rng.integers(0, 10**9, n_quotes), np.where(rng.random(n_quotes) < 0.1, 3, 0).astype(np.uint8),
    )  # fmt: skip
    time = np.sort(rng.integers(0, 10**9, n_rows))
    # Edges 0..11 trade columns (sell, buy per column), 12..13 transfers; cycles of 3 or 4 legs (-1 padded).
    edge_column = np.concatenate([np.repeat(np.arange(n_columns), 2), [-1, -1]]).astype(np.int64)
    edge_sell = np.array([True, False] * n_columns + [True, True])
    cycle_edges = rng.integers(0, edge_column.size, (30, legs))
    cycle_edges[rng.random(30) < 0.5, legs - 1] = -1
    lot = np.where(rng.random(n_columns) < 0.5, 10.0 ** rng.integers(-4, 0, n_columns), 0.0)
    graph = (
        cycle_edges, edge_column, edge_sell, rng.uniform(0, 0.002, n_columns), lot if lots else np.zeros(n_columns),
        rng.uniform(0, 0.2, n_columns), rng.integers(10**8, 2 * 10**9, n_columns),
    )  # fmt: skip
    n_units = 200
    cycle, start = rng.integers(0, 30, n_units), rng.integers(0, n_rows, n_units)
    edges = cycle_edges[cycle]
    trade = (edges >= 0) & (edge_column[np.maximum(edges, 0)] >= 0)
    source = np.where(trade, rng.integers(0, n_quotes, (n_units, legs)), -1)  # transfers and pads: -1
    units = (cycle, start, np.minimum(start + rng.integers(1, 10, n_units), n_rows), source)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit, keep, want, suppressed = _numpy_sizing(units, quotes, time, graph, 500.0, min_profit)
    assert hit.any()
    assert (hit & keep).any() or min_profit > 0
    for keep_only, chosen in ((False, hit), (True, hit & keep)):
        got = _tri_kernels.size_spans(units, quotes, time, graph, 500.0, min_profit, keep_only=keep_only)
        assert got[0].tolist() == np.flatnonzero(chosen).tolist()
        assert got[-1].tolist() == suppressed
        for g, w in zip(got[1:-1], want, strict=True):
            assert g.dtype == w.dtype
            assert g.tobytes() == w[chosen].tobytes()


def test_open_episodes_survive_new_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cells that appear later add cycles that sort before the open ones (binance < okx): the open episodes are
    # re-indexed by key, and stepping still equals one run.
    frame = _market(7, 1_200, dislocation=0.0)
    # okx's ETH/BTC stays 2% rich, so an okx cycle is open at every cut; the other venues arrive later.
    rich = (pl.col("exchange") == "okx") & (pl.col("symbol") == "ETH/BTC")
    frame = frame.with_columns(*(pl.when(rich).then(pl.col(c) * 1.02).otherwise(pl.col(c)) for c in ("bid", "ask")))
    okx_first = pl.concat([frame.slice(0, 600).filter(pl.col("exchange") == "okx"), frame.slice(600)])
    reindexed = []
    real = _triangular._reindex

    def spy(episodes, before, after):  # type: ignore[no-untyped-def]
        reindexed.append(len(episodes) > 0 and before is not after)
        return real(episodes, before, after)

    monkeypatch.setattr(_triangular, "_reindex", spy)
    params = TriangularParams(max_notional=1_000.0, max_age_ms=600_000.0)  # legs stay fresh between cuts
    check_split_parity(TRIANGULAR, okx_first, params, list(range(3, okx_first.height, 7)))
    assert any(reindexed), "some batch should add cells while episodes are open"
