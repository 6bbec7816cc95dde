"""Symbol mapping venue <-> unified, subscribe messages, error types and absent-side handling."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live import adapters

TS_RECV = 1_800_000_000_000_000_000

# (venue, market, venue symbol, unified symbol): the table plus the neighbours, written by hand.
SYMBOLS = [
    ("binance", "spot", "BTCUSDT", "BTC/USDT"),
    ("binance", "spot", "ETHBTC", "ETH/BTC"),
    ("binance", "spot", "BTCFDUSD", "BTC/FDUSD"),
    ("binance", "linear", "BTCUSDT", "BTC/USDT:USDT"),
    ("binance", "linear", "BTCUSDT_251226", "BTC/USDT:USDT-251226"),
    ("okx", None, "BTC-USDT", "BTC/USDT"),
    ("okx", None, "BTC-USDT-SWAP", "BTC/USDT:USDT"),
    ("okx", None, "BTC-USD-SWAP", "BTC/USD:BTC"),
    ("okx", None, "BTC-USD-251226", "BTC/USD:BTC-251226"),
    ("okx", None, "BTC-USD-251226-45000-C", "BTC/USD:BTC-251226-45000-C"),
    ("okx", None, "ETH-USD-250103-3000-P", "ETH/USD:ETH-250103-3000-P"),
    ("bybit", "linear", "BTCUSDT", "BTC/USDT:USDT"),
    ("bybit", "linear", "BTCPERP", "BTC/USDC:USDC"),
    ("bybit", "spot", "BTCUSDT", "BTC/USDT"),
    ("coinbase", None, "BTC-USD", "BTC/USD"),
    ("coinbase", None, "ETH-BTC", "ETH/BTC"),
    ("kraken", None, "BTC/USD", "BTC/USD"),
    ("kraken", None, "ETH/EUR", "ETH/EUR"),
    ("deribit", None, "BTC-PERPETUAL", "BTC/USD:BTC"),
    ("deribit", None, "BTC-26DEC25", "BTC/USD:BTC-251226"),
    ("deribit", None, "BTC-26DEC25-45000-C", "BTC/USD:BTC-251226-45000-C"),
    ("deribit", None, "ETH-3JAN25-3000-P", "ETH/USD:ETH-250103-3000-P"),
    ("deribit", None, "BTC_USDC-PERPETUAL", "BTC/USDC:USDC"),
    ("deribit", None, "XRP_USDC-27JUN25-0d625-C", "XRP/USDC:USDC-250627-0.625-C"),
]


@pytest.mark.parametrize(("venue", "market", "venue_symbol", "unified"), SYMBOLS)
def test_symbol_maps_both_ways(venue: str, market: str | None, venue_symbol: str, unified: str) -> None:
    ad = adapters.get(venue, market)
    assert ad.unified_symbol(venue_symbol) == unified
    assert ad.venue_symbol(unified) == venue_symbol


def test_kraken_legacy_names() -> None:
    ad = adapters.get("kraken")
    assert ad.unified_symbol("XBT/USD") == "BTC/USD"
    assert ad.unified_symbol("XDG/USD") == "DOGE/USD"


@pytest.mark.parametrize(
    ("venue", "market", "venue_symbol"),
    [
        ("binance", "spot", "BTCXYZ"),
        ("binance", "spot", "btcusdt"),
        ("binance", "spot", "BTCUSDT_251226"),
        ("binance", "linear", "BTCUSDT_2512"),
        ("okx", None, "BTC"),
        ("okx", None, "BTC-USD-SWAPX"),
        ("okx", None, "BTC-USD-251226-45000-X"),
        ("okx", None, "BTC-USD-991399"),
        ("bybit", "linear", "USDT"),
        ("coinbase", None, "BTCUSD"),
        ("kraken", None, "BTC-USD"),
        ("deribit", None, "BTC-32DEC25"),
        ("deribit", None, "BTC-26XYZ25-100-C"),
        ("deribit", None, "BTC-26DEC25-0-C"),
        ("deribit", None, ""),
    ],
)
def test_unknown_symbol_raises_parse_error(venue: str, market: str | None, venue_symbol: str) -> None:
    ad = adapters.get(venue, market)
    with pytest.raises(ad.ParseError):
        ad.unified_symbol(venue_symbol)


def test_venue_symbol_rejects_foreign_markets() -> None:
    with pytest.raises(adapters.ParseError):
        adapters.get("binance", "spot").venue_symbol("BTC/USDT:USDT")
    with pytest.raises(adapters.ParseError):
        adapters.get("coinbase").venue_symbol("BTC/USD:BTC")
    with pytest.raises(adapters.ParseError):
        adapters.get("kraken").venue_symbol("not a symbol")


def test_get_rejects_unknown_venue_and_market() -> None:
    with pytest.raises(ValueError, match="unknown venue"):
        adapters.get("ftx")
    with pytest.raises(ValueError, match="unknown market"):
        adapters.get("binance", "option")


def test_each_venue_has_its_own_parse_error() -> None:
    classes = {adapters.get(v).ParseError for v in adapters.VENUES}
    assert len(classes) == len(adapters.VENUES)
    for cls in classes:
        assert issubclass(cls, adapters.ParseError)
        assert not issubclass(cls, (KeyError, TypeError))


@pytest.mark.parametrize(
    ("venue", "channel", "symbols", "expected"),
    [
        ("binance", "bookTicker", ["BTCUSDT"], {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}),
        (
            "okx",
            "books",
            ["BTC-USDT", "ETH-USDT"],
            {
                "op": "subscribe",
                "args": [{"channel": "books", "instId": "BTC-USDT"}, {"channel": "books", "instId": "ETH-USDT"}],
            },
        ),
        ("bybit", "orderbook.1", ["BTCUSDT"], {"op": "subscribe", "args": ["orderbook.1.BTCUSDT"]}),
        ("coinbase", "ticker", ["BTC-USD"], {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "ticker"}),
        (
            "kraken",
            "ticker",
            ["BTC/USD"],
            {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}},
        ),
        (
            "deribit",
            "ticker",
            ["BTC-PERPETUAL"],
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "public/subscribe",
                "params": {"channels": ["ticker.BTC-PERPETUAL.100ms"]},
            },
        ),
    ],
)
def test_subscribe_messages(venue: str, channel: str, symbols: list[str], expected: object) -> None:
    raw = adapters.get(venue).subscribe_message(channel, symbols)
    assert isinstance(raw, bytes)
    assert json.loads(raw) == expected


def test_subscribe_rejects_unknown_channel() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        adapters.get("okx").subscribe_message("candles", ["BTC-USDT"])


@pytest.mark.parametrize(
    ("venue", "raw"),
    [
        ("binance", b'{"u":1,"s":"BTCUSDT","b":"0.00000000","B":"0.00000000","a":"101","A":"2"}'),
        (
            "okx",
            b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"bidPx":"","bidSz":"","askPx":"101","askSz":"2","ts":"1"}]}',
        ),
        (
            "okx",
            b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["101","2","0","1"]],"bids":[],"ts":"1"}]}',
        ),
        (
            "kraken",
            b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":0,"bid_qty":0,"ask":101,"ask_qty":2}]}',
        ),
        (
            "deribit",
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{"timestamp":1,'
            b'"instrument_name":"BTC-PERPETUAL","best_bid_price":0,"best_bid_amount":0,"best_ask_price":101,"best_ask_amount":2}}}',
        ),
        (
            "coinbase",
            b'{"channel":"ticker","timestamp":"2026-01-01T00:00:00Z","sequence_num":1,"events":[{"type":"update",'
            b'"tickers":[{"product_id":"BTC-USD","best_bid":"","best_bid_quantity":"","best_ask":"101","best_ask_quantity":"2"}]}]}',
        ),
    ],
)
def test_absent_bid_stays_null_never_zero(venue: str, raw: bytes) -> None:
    row = adapters.get(venue).parse_quote_tuple(raw, TS_RECV)
    assert row is not None
    assert row[4] is None
    assert row[5] is None
    assert row[6:8] == (101.0, 2.0)


@pytest.mark.parametrize(
    ("venue", "raw"),
    [
        ("binance", b'{"u":1,"s":"BTCUSDT","b":"nan","B":"1","a":"101","A":"2"}'),
        ("binance", b'{"u":1,"s":"BTCUSDT","b":"-5","B":"1","a":"101","A":"2"}'),
        ("binance", b'{"u":1,"s":"BTCUSDT","b":"100","B":"-1","a":"101","A":"2"}'),
        ("binance", b'{"u":1,"s":"BTCUSDT","b":"abc","B":"1","a":"101","A":"2"}'),
        ("binance", b'{"e":"depthUpdate","s":"BTCUSDT","U":1,"u":2,"b":[["1"]],"a":[]}'),
        (
            "okx",
            b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["inf","2"]],"bids":[],"ts":"1"}]}',
        ),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"partial","data":[{"asks":[],"bids":[]}]}'),
        (
            "bybit",
            b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["x","1"]],"a":[],"u":1}}',
        ),
        ("bybit", b'{"topic":"kline.1.BTCUSDT","data":[]}'),
        ("coinbase", b'{"channel":"ticker","timestamp":"yesterday","events":[]}'),
        ("kraken", b'[1,{"a":["x",1,"2"],"b":["1",1,"2"]},"ticker","XBT/USD"]'),
        ("deribit", b'{"jsonrpc":"2.0","error":{"code":10001,"message":"bad"}}'),
        (
            "deribit",
            b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-FOO","data":{"instrument_name":"BTC-FOO"}}}',
        ),
    ],
)
def test_bad_values_raise_parse_error(venue: str, raw: bytes) -> None:
    ad = adapters.get(venue)
    with pytest.raises(ad.ParseError):
        ad.parse(raw, TS_RECV)
    with pytest.raises(ad.ParseError):
        ad.parse_quote_tuple(raw, TS_RECV)


@given(
    base=st.sampled_from(["BTC", "ETH", "SOL", "DOGE", "XRP"]),
    day=st.integers(1, 28),
    month=st.integers(1, 12),
    year=st.integers(24, 30),
    strike=st.integers(1, 500_000),
    option_type=st.sampled_from(["C", "P"]),
)
def test_option_symbols_round_trip(base: str, day: int, month: int, year: int, strike: int, option_type: str) -> None:
    unified = f"{base}/USD:{base}-{year:02d}{month:02d}{day:02d}-{strike}-{option_type}"
    for venue in ("okx", "deribit"):
        ad = adapters.get(venue)
        assert ad.unified_symbol(ad.venue_symbol(unified)) == unified


def test_exported_members() -> None:
    """The curated surface others import; a change here is a change of contract."""
    assert set(adapters.__all__) == {
        "BOOK_RULES",
        "GREEKS_SCHEMA",
        "VENUES",
        "Adapter",
        "BookRow",
        "BookUpdate",
        "FundingRow",
        "GreeksRow",
        "Level",
        "OptionQuoteRow",
        "ParseError",
        "Parsed",
        "QuoteRow",
        "Rows",
        "TradeRow",
        "get",
    }
    for name in adapters.__all__:
        assert hasattr(adapters, name)
    assert adapters.VENUES == ("binance", "okx", "bybit", "coinbase", "kraken", "deribit")
