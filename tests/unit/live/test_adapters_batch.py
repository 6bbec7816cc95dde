"""``parse_quote_batch`` equals message-by-message ``parse_rows``, and declines whatever is not a plain top of book."""

from __future__ import annotations

import pytest

from live import adapters
from live.simulator import ENCODERS, SessionState, Tick

CASES = [
    ("binance", None, "bookTicker", "BTC/USDT"),
    ("binance", "linear", "bookTicker", "ETH/USDT:USDT"),
    ("okx", None, "bbo-tbt", "BTC/USDT:USDT"),
    ("coinbase", None, "ticker", "BTC/USD"),
    ("kraken", None, "ticker", "ETH/USD"),
]
TS_RECV = 1_700_000_000_123_456_789


def _messages(venue: str, market: str | None, channel: str, symbol: str, n: int = 6) -> list[bytes]:
    adapter = adapters.get(venue, market)
    encoder = ENCODERS[venue](adapter.market)
    state = SessionState(sequence=1)
    out = []
    for i in range(n):
        bid = 100.0 + i * 0.25
        tick = Tick(
            1_700_000_000_000_000_000 + i * 1_000_000,
            symbol,
            adapter.venue_symbol(symbol),
            bid,
            1.5,
            bid + 0.1,
            0.25 * (i + 1),
            i + 1,
        )
        encoder.prepare(tick)
        msg = encoder.encode(state, channel, tick)
        assert msg is not None
        out.append(msg.encode())
    return out


@pytest.mark.parametrize(("venue", "market", "channel", "symbol"), CASES)
def test_batch_equals_per_message_rows(venue: str, market: str | None, channel: str, symbol: str) -> None:
    adapter = adapters.get(venue, market)
    raws = _messages(venue, market, channel, symbol)
    expected = [q for raw in raws for q in adapter.parse_rows(raw, TS_RECV).quotes]
    assert adapter.parse_quote_batch(raws, TS_RECV) == expected
    assert len(expected) == len(raws)


@pytest.mark.parametrize(("venue", "market", "channel", "symbol"), CASES)
def test_batch_declines_malformed_and_non_quote_messages(
    venue: str, market: str | None, channel: str, symbol: str
) -> None:
    adapter = adapters.get(venue, market)
    raws = _messages(venue, market, channel, symbol)
    adapter.parse_rows(raws[0], TS_RECV)  # the symbol is known from here on
    assert adapter.parse_quote_batch(raws, TS_RECV) is not None
    assert adapter.parse_quote_batch([*raws[:3], raws[3][:-7], *raws[4:]], TS_RECV) is None  # truncated JSON
    assert adapter.parse_quote_batch([*raws, b'{"event":"subscribe","result":null,"id":1}'], TS_RECV) is None
    one_sided = raws[2].replace(b'"100.5"', b'"0"').replace(b":100.5,", b":0,")
    assert one_sided != raws[2]
    assert adapter.parse_quote_batch([raws[0], one_sided], TS_RECV) is None


def test_kraken_batch_without_timestamps_uses_the_receive_time() -> None:
    adapter = adapters.get("kraken")
    raws = [m.replace(b',"timestamp":"', b',"x":"') for m in _messages("kraken", None, "ticker", "ETH/USD")]
    expected = [q for raw in raws for q in adapter.parse_rows(raw, TS_RECV).quotes]
    assert [q[0] for q in expected] == [TS_RECV] * len(raws)
    assert adapter.parse_quote_batch(raws, TS_RECV) == expected


def test_base_adapter_never_batches() -> None:
    adapter = adapters.get("bybit")
    assert adapter.parse_quote_batch([b"{}"], TS_RECV) is None
    assert adapters.get("okx").parse_book_batch([b"{}"], TS_RECV) is None


def test_bybit_book_batch_equals_per_message_updates() -> None:
    adapter = adapters.get("bybit")
    raws = _messages("bybit", None, "orderbook.1", "BTC/USDT:USDT")
    delta = raws[1].replace(b'"type":"snapshot"', b'"type":"delta"')
    raws = [*raws, delta]
    expected = [u for raw in raws for u in adapter.parse_rows(raw, TS_RECV).book_updates]
    assert len(expected) == len(raws)
    assert adapter.parse_book_batch(raws, TS_RECV) == expected
    assert adapter.parse_book_batch([*raws, raws[0][:-3]], TS_RECV) is None  # truncated
    assert adapter.parse_book_batch([raws[0], b'{"success":true,"ret_msg":"pong","op":"ping"}'], TS_RECV) is None
    negative = raws[2].replace(b'"1.5"', b'"-1.5"')
    assert negative != raws[2]
    assert adapter.parse_book_batch([raws[0], negative], TS_RECV) is None  # the full path raises on it


def test_bybit_book_batch_mixed_depths_and_declines() -> None:
    """One-level snapshots (the inline path), multi-level deltas and both depths parse as on the full path."""
    adapter = adapters.get("bybit")
    raws = [
        b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1700000000000,'
        b'"data":{"s":"BTCUSDT","b":[["100.5","1.25"]],"a":[["100.6","0"]],"u":5,"seq":9},"cts":1699999999990}',
        b'{"topic":"orderbook.50.ETHUSDT","type":"delta","ts":1700000000001,'
        b'"data":{"s":"ETHUSDT","b":[["2000","1"],["1999.5","0"]],"a":[],"u":6,"seq":10}}',
        b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1700000000002,'
        b'"data":{"s":"BTCUSDT","b":[],"a":[["100.7","3"]],"u":7,"seq":11}}',
    ]
    expected = [u for raw in raws for u in adapter.parse_rows(raw, TS_RECV).book_updates]
    assert adapter.parse_book_batch(raws, TS_RECV) == expected
    assert [(u.depth, u.is_snapshot, len(u.bids), len(u.asks)) for u in expected] == [
        (1, True, 1, 1),
        (50, False, 2, 0),
        (1, True, 0, 1),
    ]
    bad_price = raws[0].replace(b'"100.5"', b'"-1"')
    assert adapter.parse_book_batch([raws[1], bad_price], TS_RECV) is None
    assert (
        adapter.parse_book_batch(
            [raws[0], raws[0].replace(b'"ts":1700000000000', b'"ts":0').replace(b',"cts":1699999999990', b"")], TS_RECV
        )
        is None
    )
    ticker = b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1700000000000,"data":{"symbol":"BTCUSDT"}}'
    assert adapter.parse_book_batch([raws[0], ticker], TS_RECV) is None
