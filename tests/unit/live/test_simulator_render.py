"""The simulator's vectorised rendering (``Encoder.render`` + ``emit``) equals its per-message ``encode`` byte for byte.

``encode`` is the reference: the replay's fast path sends rendered texts, so any drift would change what clients
parse.  Ticks cover one-sided books, absent sizes, zero prices and numbers whose shortest text needs an exponent.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from live import adapters
from live.simulator import ENCODERS, SessionState, Tick, format_number
from live.simulator._encoders import format_numbers, with_number_texts

CASES = [
    (venue, market, channel)
    for venue, market in [
        ("binance", None),
        ("binance", "linear"),
        ("okx", None),
        ("bybit", None),
        ("coinbase", None),
        ("kraken", None),
        ("deribit", None),
    ]
    for channel in ENCODERS[venue].rendered_channels
]
SYMBOLS: dict[str, dict[str | None, list[str]]] = {
    "binance": {None: ["BTC/USDT", "ETH/USDT"], "linear": ["BTC/USDT:USDT", "ETH/USDT:USDT"]},
    "okx": {None: ["BTC/USDT", "BTC/USDT:USDT"]},
    "bybit": {None: ["BTC/USDT:USDT", "ETH/USDT:USDT"]},
    "coinbase": {None: ["BTC/USD", "ETH/USD"]},
    "kraken": {None: ["BTC/USD", "ETH/USD"]},
    "deribit": {None: ["BTC/USD:BTC", "ETH/USD:ETH"]},
}
ODD_VALUES = [None, 0.0, 1e-7, 3.0, 1e16, 0.1 + 0.2, 65000.5, 123456789.125, 5e-324]


def _ticks(venue: str, market: str | None, n: int = 300) -> list[Tick]:
    adapter = adapters.get(venue, market)
    rng = np.random.default_rng(7)
    symbols = SYMBOLS[venue][market]
    ticks = []
    for i in range(n):
        values: list[float | None] = [
            round(float(rng.uniform(1, 70_000)), 2),
            round(float(rng.uniform(0.0001, 5)), 4),
            round(float(rng.uniform(1, 70_000)), 2),
            float(rng.uniform(0, 10)),
        ]
        if i % 5 == 0:  # odd values in every field position in turn
            values[(i // 5) % 4] = ODD_VALUES[(i // 20) % len(ODD_VALUES)]
        symbol = symbols[i % len(symbols)]
        ts = 1_700_000_000_000_000_000 + i * 123_456_789 + (i % 7)
        bid, bid_size, ask, ask_size = values
        ticks.append(Tick(ts, symbol, adapter.venue_symbol(symbol), bid, bid_size, ask, ask_size, i + 1))
    return ticks


def _rows(ticks: list[Tick]) -> pl.DataFrame:
    names = ("ts_event", "symbol", "venue_symbol", "bid", "bid_size", "ask", "ask_size", "seq")
    schema = {"ts_event": pl.Int64, "symbol": pl.String, "venue_symbol": pl.String, "seq": pl.Int64}
    data = {name: [getattr(t, name) for t in ticks] for name in names}
    frame = pl.DataFrame(data, schema={name: schema.get(name, pl.Float64) for name in names})
    return with_number_texts(frame)


@pytest.mark.parametrize(("venue", "market", "channel"), CASES)
@pytest.mark.parametrize("combined", [False, True])
def test_render_equals_encode(venue: str, market: str | None, channel: str, combined: bool) -> None:
    adapter = adapters.get(venue, market)
    ticks = _ticks(venue, market)
    reference, fast = ENCODERS[venue](adapter.market), ENCODERS[venue](adapter.market)
    ref_state, fast_state = SessionState(sequence=5, combined=combined), SessionState(sequence=5, combined=combined)
    synced = {(channel, t.venue_symbol) for t in ticks}  # past each symbol's first (snapshot) message
    ref_state.synced |= synced
    fast_state.synced |= synced
    expected = []
    for tick in ticks:
        reference.prepare(tick)
        expected.append(reference.encode(ref_state, channel, tick))
    rendered = fast.render(channel, _rows(ticks))
    got = [fast.emit(fast_state, channel, t.venue_symbol, text) for t, text in zip(ticks, rendered, strict=True)]
    assert got == expected
    assert fast_state.sequence == ref_state.sequence


def test_render_refuses_channels_that_need_book_state() -> None:
    with pytest.raises(NotImplementedError):
        ENCODERS["okx"]("spot").render("books", _rows(_ticks("okx", None, 3)))


def test_format_numbers_equals_format_number() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            np.round(rng.uniform(0, 1e5, 20_000), 2),
            rng.uniform(0, 10, 20_000),
            10 ** rng.uniform(-12, 22, 20_000),
            -rng.uniform(0, 1e3, 1_000),
            [0.0, -0.0, 1e-5, 1e-4, 1e15, 1e16, 5e-324, 1.7976931348623157e308, math.inf, -math.inf],
        ]
    )
    got = format_numbers(pl.Series(values)).to_list()
    assert got == [format_number(v) for v in values]
    assert format_numbers(pl.Series([None, 2.5], dtype=pl.Float64)).to_list() == [None, "2.5"]
