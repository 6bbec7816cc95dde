"""Adapters against example messages copied from each venue's API docs (tests/resources/messages/docs/).

Values in the assertions are read straight off the documented messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arbkit import schema
from live import adapters

DOCS = Path(__file__).parents[2] / "resources" / "messages" / "docs"
TS_RECV = 1_800_000_000_000_000_000


def _doc(venue: str, channel: str) -> bytes:
    with (DOCS / f"{venue}.jsonl").open() as f:
        for line in f:
            item: dict[str, Any] = json.loads(line)
            if item["channel"] == channel:
                assert item["source"].startswith("https://")
                return str(item["raw_text"]).encode()
    raise LookupError(channel)


@pytest.mark.parametrize(
    ("venue", "channel"),
    [
        ("binance", "subscribe response"),
        ("okx", "subscribe ack"),
        ("bybit", "subscribe ack"),
        ("coinbase", "subscriptions"),
        ("kraken", "subscribe ack"),
        ("kraken", "heartbeat"),
        ("kraken", "status"),
        ("binance", "serverShutdown"),
        ("binance", "serverShutdown event wrapper"),
        ("deribit", "subscribe result"),
    ],
)
def test_acks_and_heartbeats_are_empty(venue: str, channel: str) -> None:
    ad = adapters.get(venue)
    parsed = ad.parse(_doc(venue, channel), TS_RECV)
    assert parsed.empty
    assert ad.parse_rows(_doc(venue, channel), TS_RECV).empty
    assert ad.parse_quote_tuple(_doc(venue, channel), TS_RECV) is None


def test_shutdown_notice_on_usdm_and_combined_streams_is_empty() -> None:
    raw = _doc("binance", "serverShutdown")
    combined = b'{"stream":"btcusdt@bookTicker","data":' + raw + b"}"
    for market in ("spot", "linear"):
        ad = adapters.get("binance", market)
        assert ad.parse_rows(raw, TS_RECV).empty
        assert ad.parse_rows(combined, TS_RECV).empty


def test_okx_error_event_raises_parse_error() -> None:
    ad = adapters.get("okx")
    with pytest.raises(ad.ParseError, match="60012"):
        ad.parse(_doc("okx", "error event"), TS_RECV)


def test_binance_spot_book_ticker_without_event_time() -> None:
    row = adapters.get("binance").parse_quote_tuple(_doc("binance", "spot bookTicker"), TS_RECV)
    assert row == (TS_RECV, TS_RECV, "binance", "BNB/USDT", 25.3519, 31.21, 25.3652, 40.66, 400900217, 0)


def test_binance_spot_trade_and_diff() -> None:
    ad = adapters.get("binance")
    trades = ad.parse(_doc("binance", "spot trade"), TS_RECV).trades
    assert trades is not None
    assert trades.row(0) == (1672515782136000000, TS_RECV, "binance", "BNB/BTC", "12345", "sell", 0.001, 100.0, 0)
    update = ad.parse(_doc("binance", "spot depth diff"), TS_RECV).book_update
    assert update is not None
    assert (update.first_seq, update.seq, update.prev_seq, update.rule) == (157, 160, None, "binance_spot")
    assert update.bids == ((0.0024, 10.0, "0.0024", "10"),)
    assert update.asks == ((0.0026, 100.0, "0.0026", "100"),)


def test_binance_rest_snapshot() -> None:
    update = adapters.get("binance").parse_snapshot(_doc("binance", "spot REST depth snapshot"), TS_RECV, "BNBBTC")
    assert (update.symbol, update.seq, update.is_snapshot) == ("BNB/BTC", 1027024, True)
    assert update.bids[0][:2] == (4.0, 431.0)
    assert update.asks[0][:2] == (4.000002, 12.0)


def test_okx_bbo_tbt_fast_and_full_paths_agree() -> None:
    ad = adapters.get("okx")
    raw = _doc("okx", "bbo-tbt swap")
    expected = (1670324386802000000, TS_RECV, "okx", "BCH/USDT:USDT", 111.05, 57745.0, 111.06, 55154.0, 363996337, 0)
    assert ad.parse_quote_tuple(raw, TS_RECV) == expected
    quotes = ad.parse(raw, TS_RECV).quotes
    assert quotes is not None
    assert quotes.row(0) == expected


def test_okx_funding_inverse_swap() -> None:
    funding = adapters.get("okx").parse(_doc("okx", "funding-rate inverse swap"), TS_RECV).funding
    assert funding is not None
    row = funding.row(0, named=True)
    assert row["symbol"] == "BTC/USD:BTC"
    assert row["funding_rate"] == 0.0001875391284828
    assert row["predicted_rate"] is None  # nextFundingRate "" : absent, not 0
    assert row["next_funding_time"] == 1700726400000 * 1_000_000
    assert row["ts_event"] == 1700724675402 * 1_000_000


def test_bybit_orderbook_snapshot_and_ticker() -> None:
    ad = adapters.get("bybit")
    update = ad.parse(_doc("bybit", "orderbook.50 snapshot"), TS_RECV).book_update
    assert update is not None
    assert (update.symbol, update.seq, update.depth, update.is_snapshot) == ("BTC/USDT:USDT", 18521288, 50, True)
    assert update.ts_event == 1672304484976 * 1_000_000  # cts: when the matching engine produced the book
    parsed = ad.parse(_doc("bybit", "tickers linear snapshot"), TS_RECV)
    assert parsed.quotes is not None
    assert parsed.quotes.row(0)[4:8] == (17215.5, 84.489, 17216.0, 83.02)
    assert parsed.funding is not None
    row = parsed.funding.row(0, named=True)
    assert (row["funding_rate"], row["mark_price"], row["index_price"]) == (-0.000212, 17217.33, 17227.36)
    assert row["next_funding_time"] == 1673280000000 * 1_000_000


def test_bybit_ticker_delta_without_top_gives_no_quote() -> None:
    raw = (
        b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"17215.50",'
        b'"markPrice":"17217.33"},"cs":24987956060,"ts":1673272861687}'
    )
    parsed = adapters.get("bybit").parse(raw, TS_RECV)
    assert parsed.quotes is None  # only the bid moved: the ask is unknown here, not absent
    assert parsed.funding is None


def test_bybit_public_trade() -> None:
    trades = adapters.get("bybit").parse(_doc("bybit", "publicTrade"), TS_RECV).trades
    assert trades is not None
    assert trades.row(0) == (
        1672304486865000000,
        TS_RECV,
        "bybit",
        "BTC/USDT:USDT",
        "20f43950-d8dd-5b31-9112-a178eb6023af",
        "buy",
        16578.5,
        0.001,
        0,
    )


def test_coinbase_ticker_keeps_nanoseconds() -> None:
    quotes = adapters.get("coinbase").parse(_doc("coinbase", "ticker"), TS_RECV).quotes
    assert quotes is not None
    assert quotes.row(0) == (1675974637167359596, TS_RECV, "coinbase", "BTC/USD", 21931.98, 0.43, 21933.98, 0.5, 0, 0)


def test_coinbase_level2_snapshot_with_epoch_event_times() -> None:
    update = adapters.get("coinbase").parse(_doc("coinbase", "level2 snapshot"), TS_RECV).book_update
    assert update is not None
    assert update.is_snapshot
    assert update.ts_event == 1675974770714964855  # the docs' event_time is the epoch: message time stands in
    assert [lv[:2] for lv in update.bids] == [(21921.73, 0.06317902), (21921.3, 0.02)]
    assert update.asks == ()


def test_kraken_v2_ticker_and_trade() -> None:
    ad = adapters.get("kraken")
    row = ad.parse_quote_tuple(_doc("kraken", "ticker snapshot"), TS_RECV)
    assert row == (TS_RECV, TS_RECV, "kraken", "ALGO/USD", 0.10025, 740.0, 0.10036, 1361.44813783, None, 0)
    trades = ad.parse(_doc("kraken", "trade"), TS_RECV).trades
    assert trades is not None
    assert trades.row(0) == (1695628177708706000, TS_RECV, "kraken", "MATIC/USD", "4665906", "sell", 0.5117, 40.0, 0)


def test_deribit_book_snapshot_then_change() -> None:
    ad = adapters.get("deribit")
    snap = ad.parse(_doc("deribit", "book snapshot"), TS_RECV).book_update
    change = ad.parse(_doc("deribit", "book change"), TS_RECV).book_update
    assert snap is not None
    assert change is not None
    assert (snap.seq, snap.prev_seq, snap.is_snapshot) == (297217, None, True)
    assert (change.seq, change.prev_seq, change.is_snapshot) == (297218, 297217, False)
    assert change.bids[0][:2] == (5041.94, 0.0)  # "delete" becomes size 0
    assert change.asks[0][:2] == (5042.64, 30.0)


def test_deribit_trades() -> None:
    trades = adapters.get("deribit").parse(_doc("deribit", "trades"), TS_RECV).trades
    assert trades is not None
    assert trades.row(0) == (
        1590484156350000000,
        TS_RECV,
        "deribit",
        "BTC/USD:BTC",
        "48079269",
        "sell",
        8950.0,
        10.0,
        0,
    )


@pytest.mark.parametrize("venue", adapters.VENUES)
def test_docs_messages_give_valid_frames(venue: str) -> None:
    ad = adapters.get(venue)
    with (DOCS / f"{venue}.jsonl").open() as f:
        for line in f:
            item = json.loads(line)
            if "REST" in item["channel"] or "error" in item["channel"]:
                continue
            parsed = ad.parse(item["raw_text"].encode(), TS_RECV)
            for name, table in (
                ("quotes", schema.QUOTES),
                ("trades", schema.TRADES),
                ("book", schema.BOOK),
                ("funding", schema.FUNDING),
                ("option_quotes", schema.OPTION_QUOTES),
            ):
                frame = getattr(parsed, name)
                if frame is not None:
                    schema.validate(frame, table)


def test_okx_trades() -> None:
    # https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-trades-channel (push data example)
    raw = (
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
        b'"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}'
    )
    trades = adapters.get("okx").parse(raw, TS_RECV).trades
    assert trades is not None
    assert trades.row(0) == (
        1630048897897000000,
        TS_RECV,
        "okx",
        "BTC/USDT",
        "130639474",
        "buy",
        42219.9,
        0.12060306,
        0,
    )
