"""Binance (spot and USD-M) against more real messages (tests/resources/messages/extra/binance.jsonl).

Each line's ``expected`` was read off the message by hand (decimal strings, ``null`` for an absent side or time,
unified symbols written from the CCXT convention); the checks compare the adapter's rows with those values,
never with its own output.  :func:`check_line` serves the Bybit file too (loaded by path: the test folders are
not packages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbkit import schema
from live import adapters
from live.book import BookKeeper

EXTRA = Path(__file__).parents[2] / "resources" / "messages" / "extra"
TS_RECV = 1_800_000_000_000_000_000
MARKETS = {"usdm_futures": "linear", "spot": "spot", "linear": "linear"}
TABLES = ("quotes", "trades", "book", "funding", "option_quotes")


def load(venue: str) -> list[Any]:
    """The venue's extra fixture lines as pytest params, one id per line."""
    with (EXTRA / f"{venue}.jsonl").open() as f:
        lines = [json.loads(text) for text in f if text.strip()]
    return [pytest.param(venue, line, id=f"{i}-{line['channel'][:50]}") for i, line in enumerate(lines)]


def num(text: str | None) -> float | None:
    return None if text is None else float(text)


def ns(ms: int | None) -> int:
    return TS_RECV if ms is None else ms * 1_000_000


def adapter(venue: str, line: dict[str, Any]) -> adapters.Adapter:
    return adapters.get(venue, MARKETS[line["market"]])


def levels(side: tuple[Any, ...]) -> list[list[str]]:
    return [[lv[2], lv[3]] for lv in side]


def _quote_matches(row: tuple[Any, ...], want: dict[str, Any]) -> None:
    assert row[3] == want["unified"]
    assert row[4:8] == (num(want["bid"]), num(want["bid_size"]), num(want["ask"]), num(want["ask_size"]))
    assert row[0] == ns(want["ts_ms"])
    assert row[1] == TS_RECV
    if "update_id" in want:
        assert row[8] == want["update_id"]


def _columns_agree(ad: adapters.Adapter, raw: bytes, row: tuple[Any, ...] | None, *, book: bool) -> None:
    """The compiled readers give the slow path's row bit for bit (twice in one buffer), or decline."""
    read = ad.parse_book_columns if book else ad.parse_quote_columns
    cols = read(raw * 2, np.array([0, len(raw)]), np.array([len(raw), 2 * len(raw)]), TS_RECV)
    if cols is None:
        return
    assert row is not None
    for got in cols.rows():
        assert got[:4] == row[:4]
        assert got[8:] == row[8:]
        assert [np.float64(v).tobytes() for v in got[4:8]] == [np.float64(v).tobytes() for v in row[4:8]]


def _check_book(ad: adapters.Adapter, raw: bytes, want: dict[str, Any]) -> None:
    rows = ad.parse_rows(raw, TS_RECV)
    update = rows.book_update
    assert update is not None
    assert (update.symbol, update.is_snapshot, update.seq) == (want["unified"], want["is_snapshot"], want["seq"])
    assert update.ts_event == ns(want["ts_ms"])
    assert levels(update.bids) == want["bids"]
    assert levels(update.asks) == want["asks"]
    for key, attr in (("first_seq", "first_seq"), ("prev_seq", "prev_seq"), ("depth", "depth")):
        if key in want:
            assert getattr(update, attr) == want[key]
    if not want["is_snapshot"]:
        assert not rows.quotes
        assert not rows.book
        return
    quote = BookKeeper(update.exchange, update.symbol).apply(update)
    assert quote is not None
    _quote_matches(quote, want)
    if rows.quotes:  # partial books carry their own top of book
        _quote_matches(rows.quotes[-1], want)


def check_line(venue: str, line: dict[str, Any]) -> None:
    """Parse ``line['raw_text']`` and compare every row with the hand-read ``expected``."""
    want = line["expected"]
    kind = want["kind"]
    ad = adapter(venue, line)
    raw = line["raw_text"].encode()
    if kind == "error":
        with pytest.raises(ad.ParseError, match=want["match"]):
            ad.parse(raw, TS_RECV)
        with pytest.raises(adapters.ParseError):
            ad.parse_quote_tuple(raw, TS_RECV)
        return
    if kind == "rest_snapshot":
        update = ad.parse_snapshot(raw, TS_RECV, want["venue_symbol"])  # type: ignore[attr-defined]
        assert (update.symbol, update.seq, update.is_snapshot) == (want["unified"], want["seq"], True)
        assert (levels(update.bids), levels(update.asks)) == (want["bids"], want["asks"])
        assert update.ts_event == ns(want["ts_ms"])
        top = BookKeeper(update.exchange, update.symbol).apply(update)
        assert top is not None
        assert top[4:8] == (*map(float, want["bids"][0]), *map(float, want["asks"][0]))
        return
    parsed = ad.parse(raw, TS_RECV)
    if kind == "empty":
        assert parsed.empty
        assert ad.parse_rows(raw, TS_RECV).empty
        assert ad.parse_quote_tuple(raw, TS_RECV) is None
        return
    assert not parsed.empty
    for name in TABLES:
        frame = getattr(parsed, name)
        if frame is not None:
            schema.validate(frame, getattr(schema, name.upper()))
            assert frame["ts_recv"].to_list() == [TS_RECV] * frame.height
    rows = ad.parse_rows(raw, TS_RECV)
    if kind in ("quote", "ticker"):
        quote_want = want if kind == "quote" else want["quote"]
        assert len(rows.quotes) == 1
        _quote_matches(rows.quotes[0], quote_want)
        fast = ad.parse_quote_tuple(raw, TS_RECV)
        assert fast == rows.quotes[0]
        _columns_agree(ad, raw, fast, book=False)
    if kind in ("funding", "ticker"):
        assert [(f[3], f[4], f[6], f[7], f[8], f[0]) for f in rows.funding] == [
            (f["unified"], float(f["rate"]), ns(f["next_funding_ms"]), num(f["mark"]), num(f["index"]), ns(f["ts_ms"]))
            for f in want["funding"]
        ]
    if kind == "trades":
        assert [t[2:8] + t[0:1] for t in rows.trades] == [
            (venue, t["unified"], t["trade_id"], t["side"], float(t["price"]), float(t["size"]), ns(t["ts_ms"]))
            for t in want["trades"]
        ]
    if kind == "book":
        _check_book(ad, raw, want)
        _columns_agree(ad, raw, ad.parse_quote_tuple(raw, TS_RECV), book=venue == "bybit")


CASES = load("binance")


def test_every_line_names_its_source() -> None:
    for case in CASES:
        line = case.values[1]
        assert line["source"].startswith(("github.com/", "https://"))
        assert line["source_kind"] in ("oss_fixture_live_capture", "oss_fixture_docs_derived", "venue_docs")
        assert line["market"] in MARKETS


@pytest.mark.parametrize(("venue", "line"), CASES)
def test_message_matches_hand_read_values(venue: str, line: dict[str, Any]) -> None:
    check_line(venue, line)


def _line(channel_part: str) -> dict[str, Any]:
    return next(c.values[1] for c in CASES if channel_part in c.values[1]["channel"])


def test_pretty_printed_combined_stream_reads_like_compact() -> None:
    """The whitespace around the wrapper changes nothing (it used to be taken for an ack and dropped)."""
    line = _line("combined stream, pretty-printed")
    ad = adapter("binance", line)
    compact = json.dumps(json.loads(line["raw_text"]), separators=(",", ":")).encode()
    assert compact.startswith(b'{"stream":')
    assert ad.parse_rows(line["raw_text"].encode(), TS_RECV) == ad.parse_rows(compact, TS_RECV)


def test_all_market_mark_price_array_raw_and_combined_agree() -> None:
    """``!markPrice@arr`` pushes a bare array on /ws and a wrapped one on /stream: the same rows either way."""
    line = _line("!markPrice@arr (all-market array, combined")
    ad = adapter("binance", line)
    data = json.loads(line["raw_text"])["data"]
    bare = json.dumps(data, separators=(",", ":")).encode()
    assert ad.parse_rows(bare, TS_RECV).funding == ad.parse_rows(line["raw_text"].encode(), TS_RECV).funding
    assert len(ad.parse_rows(bare, TS_RECV).funding) == 2


def test_usdm_rest_snapshot_with_zero_times_falls_back_to_receive_time() -> None:
    """Some servers (the simulator among them) send ``E``/``T`` 0: no time, not a bad one."""
    line = _line("REST GET /fapi/v1/depth (snapshot with E/T)")
    body = json.loads(line["raw_text"])
    body["E"] = body["T"] = 0
    update = adapter("binance", line).parse_snapshot(json.dumps(body).encode(), TS_RECV, "BTCUSDT")  # type: ignore[attr-defined]
    assert update.ts_event == TS_RECV
