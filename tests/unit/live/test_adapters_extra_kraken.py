"""Kraken v2 adapter against more real messages (tests/resources/messages/extra/kraken.jsonl).

``expected`` holds values read off each message by hand.  Book lines that belong to one captured stream carry
``sequence``/``seq_index``/``depth``: the stream is replayed through :class:`live.book.BookKeeper` in order and
every stated checksum must verify (they are the venue's own CRC32s, so a wrong level anywhere would show).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbkit import schema
from live import adapters
from live.adapters._base import iso_to_ns
from live.adapters.kraken import KrakenAdapter
from live.book import BookKeeper

EXTRA = Path(__file__).parents[2] / "resources" / "messages" / "extra"
TS_RECV = 1_800_000_000_000_000_000


LINES: list[dict[str, Any]] = list(map(json.loads, (EXTRA / "kraken.jsonl").read_text().splitlines()))
CASES = [pytest.param(line, id=f"{i}-{line['channel']}") for i, line in enumerate(LINES)]


def _kind(kind: str) -> list[Any]:
    return [c for c in CASES if c.values[0]["expected"]["kind"] == kind]


def _pairs(levels: Any) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s in levels]


def _top(expected: dict[str, str]) -> tuple[float, float, float, float]:
    return (
        float(expected["bid"]),
        float(expected["bid_size"]),
        float(expected["ask"]),
        float(expected["ask_size"]),
    )


def test_every_line_names_its_source() -> None:
    for line in LINES:
        assert line["source"].startswith(("github.com/", "https://docs.kraken.com/"))
        assert line["source_kind"] in ("oss_fixture_live_capture", "oss_fixture_docs_derived", "venue_docs")


@pytest.mark.parametrize("line", _kind("empty"))
def test_control_messages_are_empty(line: dict[str, Any]) -> None:
    ad = adapters.get("kraken")
    raw = line["raw_text"].encode()
    assert ad.parse(raw, TS_RECV).empty
    assert ad.parse_quote_tuple(raw, TS_RECV) is None


@pytest.mark.parametrize("line", _kind("quote"))
def test_ticker(line: dict[str, Any]) -> None:
    expected = line["expected"]
    ad = adapters.get("kraken")
    raw = line["raw_text"].encode()
    quotes = ad.parse(raw, TS_RECV).quotes
    assert quotes is not None
    schema.validate(quotes, schema.QUOTES)
    row = quotes.row(0)
    assert row[2:8] == ("kraken", expected["unified"], *_top(expected))
    assert row[0] == expected["ts_ns"]  # the RFC 3339 timestamp, every microsecond kept
    assert row[0] == iso_to_ns(json.loads(line["raw_text"])["data"][0]["timestamp"])
    assert ad.parse_quote_tuple(raw, TS_RECV) == row
    # compiled reader: the same rows bit for bit, or a decline
    cols = ad.parse_quote_columns(raw + raw, np.array([0, len(raw)]), np.array([len(raw), 2 * len(raw)]), TS_RECV)
    if cols is not None:
        assert cols.rows() == [row, row]
        assert cols.bid.tobytes() == np.array([row[4], row[4]], np.float64).tobytes()
        assert cols.ask_size.tobytes() == np.array([row[7], row[7]], np.float64).tobytes()


@pytest.mark.parametrize("line", _kind("book"))
def test_book_message(line: dict[str, Any]) -> None:
    parsed = adapters.get("kraken").parse(line["raw_text"].encode(), TS_RECV)
    assert parsed.quotes is None  # book channels give quotes through the keeper only
    assert len(parsed.book_updates) == 1
    update, expected = parsed.book_updates[0], line["expected"]
    assert (update.exchange, update.rule, update.symbol) == ("kraken", "kraken", expected["unified"])
    assert update.is_snapshot is expected["is_snapshot"]
    assert update.checksum == expected["checksum"]
    ts = expected["timestamp"]
    assert update.ts_event == (TS_RECV if ts is None else iso_to_ns(ts))
    if "bids" in expected:
        assert [lv[:2] for lv in update.bids] == _pairs(expected["bids"])
        assert [lv[:2] for lv in update.asks] == _pairs(expected["asks"])
    else:
        assert (len(update.bids), len(update.asks)) == (expected["bid_levels"], expected["ask_levels"])
        assert [lv[:2] for lv in update.bids[:2]] == _pairs(expected["bids_head"])
        assert [lv[:2] for lv in update.asks[:2]] == _pairs(expected["asks_head"])
    for side, price, size in expected.get("exponent_levels", ()):
        levels = update.bids if side == "bid" else update.asks
        assert (float(price), float(size)) in [lv[:2] for lv in levels]


def _sequences() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in LINES:
        if "sequence" in line["expected"]:
            out[line["expected"]["sequence"]].append(line)
    return {name: sorted(group, key=lambda x: x["expected"]["seq_index"]) for name, group in out.items()}


@pytest.mark.parametrize(("name", "group"), sorted(_sequences().items()))
def test_sequence_checksums_verify(name: str, group: list[dict[str, Any]]) -> None:
    depth = group[0]["expected"]["depth"]
    ad = KrakenAdapter(depth=depth)  # the depth the capture subscribed with (its ack says so)
    keeper: BookKeeper | None = None
    for i, line in enumerate(group):
        expected = line["expected"]
        assert expected["seq_index"] == i
        assert expected["checksum_matches"] is True
        update = ad.parse(line["raw_text"].encode(), TS_RECV + i).book_update
        assert update is not None
        assert update.is_snapshot is (i == 0)
        keeper = keeper or BookKeeper("kraken", update.symbol, depth=depth, max_age_ns=10**30)
        quote = keeper.apply(update)
        assert keeper.counters.checksum_failures == 0, f"{name}[{i}]"
        assert not keeper.needs_resync
        assert quote is not None
        assert quote[9] == 0
        if "book_after" in expected:
            assert quote[4:8] == _top(expected["book_after"])
    assert keeper is not None
    assert keeper.counters.applied == len(group)


def test_minagbp_stream_ends_where_the_capture_says() -> None:
    """After the 11 captured updates the bids read, best first, as the levels they set (worked by hand)."""
    group = _sequences()["minagbp_d25"]
    ad = KrakenAdapter(depth=25)
    keeper = BookKeeper("kraken", "MINA/GBP", depth=25, max_age_ns=10**30)
    for line in group:
        update = ad.parse(line["raw_text"].encode(), TS_RECV).book_update
        assert update is not None
        keeper.apply(update)
    top = [(lv[2], lv[3]) for lv in keeper.sorted_bids(5)]
    assert top == [
        ("0.0286", "74198.19125726"),
        ("0.0285", "18831.49589194"),
        ("0.0281", "173.01796684"),
        ("0.0278", "13018.62844188"),
        ("0.0277", "1486.59884837"),
    ]
    assert len(keeper.bids) == 25
    assert len(keeper.asks) == 25


def test_docs_snapshot_fails_only_without_the_pairs_precision() -> None:
    """The docs trim trailing zeros (0.566): with the text as sent the checksum cannot hold, at (4, 8) it does."""
    line = next(x for x in LINES if x["channel"] == "book snapshot MATIC/USD (docs)")
    update = KrakenAdapter(precision={"MATIC/USD": (8, 8)}).parse(line["raw_text"].encode(), TS_RECV).book_update
    assert update is not None
    keeper = BookKeeper("kraken", "MATIC/USD", max_age_ns=10**30)
    keeper.apply(update)
    assert keeper.counters.checksum_failures == 1
    update = adapters.get("kraken").parse(line["raw_text"].encode(), TS_RECV).book_update
    assert update is not None
    assert (update.price_precision, update.size_precision) == (4, 8)
