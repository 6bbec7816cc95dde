"""The simulator's vectorised rendering (``Encoder.render`` + ``emit``) equals its per-message ``encode`` byte for byte.

``encode`` is the reference: the replay's fast path sends rendered texts, so any drift would change what clients
parse.  Ticks cover one-sided books, absent sizes, zero prices and numbers whose shortest text needs an exponent.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import polars as pl
import pytest

from live import adapters
from live.simulator import ENCODERS, SessionState, Tick, format_number
from live.simulator._encoders import event_stamp, format_numbers, with_number_texts
from live.simulator._framing import frames, pack_texts

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


# Send times: now-ish, a whole second (ISO fractions all zeros), a fraction with leading zeros, the last ns of a ms.
STAMP_TIMES = [time.time_ns(), 1_700_000_000_000_000_000, 1_700_000_000_000_000_007, 1_712_345_678_999_999_999]


@pytest.mark.parametrize(("venue", "market", "channel"), CASES)
@pytest.mark.parametrize("combined", [False, True])
def test_stamped_render_equals_encode_at_the_send_time(
    venue: str, market: str | None, channel: str, combined: bool
) -> None:
    """A restamped replay's texts (placeholders filled at send time) are what encode writes for that event time."""
    adapter = adapters.get(venue, market)
    ticks = _ticks(venue, market)
    fast = ENCODERS[venue](adapter.market)
    rendered = fast.render(channel, _rows(ticks), stamped=True)
    assert all("\x01" <= ch <= "\x07" for text in rendered for ch in text if ch < " " and ch != "\x00")
    for now in STAMP_TIMES:
        reference = ENCODERS[venue](adapter.market)
        ref_state, fast_state = SessionState(sequence=5, combined=combined), SessionState(sequence=5, combined=combined)
        synced = {(channel, t.venue_symbol) for t in ticks}
        ref_state.synced |= synced
        fast_state.synced |= synced
        expected = []
        for tick in ticks:
            stamped = dataclasses.replace(tick, ts_event=now)
            reference.prepare(stamped)
            message = reference.encode(ref_state, channel, stamped)
            assert message is not None
            expected.append(message)
        stamp = event_stamp(now)
        got = [
            fast.emit(fast_state, channel, t.venue_symbol, stamp.fill(text))
            for t, text in zip(ticks, rendered, strict=True)
        ]
        assert got == expected
        # the compiled pass writes the same bytes as the Python fill (numbered for Coinbase's sequence_num)
        if fast.emit_plan(SessionState(combined=combined)) is not None:
            numbered = fast.emit_plan(SessionState()) == "numbered"
            packed = pack_texts([rendered])
            out, count, after = packed.frame(
                np.zeros(len(ticks), np.int32),
                np.ones((1, 1), np.uint8),
                0,
                len(ticks),
                5,
                numbered=numbered,
                stamp=stamp,
            )
            assert out.tobytes() == frames(expected)
            assert (count, after) == (len(ticks), ref_state.sequence if numbered else 5)


def test_unstamped_render_has_no_placeholders() -> None:
    for venue, market, channel in CASES:
        texts = ENCODERS[venue](adapters.get(venue, market).market).render(channel, _rows(_ticks(venue, market, 20)))
        assert not any(ch in text for text in texts for ch in "\x01\x02\x03")


def test_event_stamp_refuses_a_time_of_another_width() -> None:
    assert event_stamp(1_700_000_000_123_456_789).texts == {
        1: "1700000000123",
        2: "2023-11-14T22:13:20.123456Z",
        3: "2023-11-14T22:13:20.123456789Z",
    }
    with pytest.raises(ValueError, match="characters wide"):
        event_stamp(999_999_999_999 * 1_000_000)  # 2001-09-09: ms integers had 12 digits before it
