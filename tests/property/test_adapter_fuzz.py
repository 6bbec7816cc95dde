"""Fuzz: arbitrary bytes and mutated real messages into every parser either give valid frames or raise ParseError.

Whatever comes out must also pass the schema gate, and any book update must be accepted by the book keeper
without an exception: bad input never crashes the live path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbkit import schema
from live import adapters
from live.book import BookKeeper

RESOURCES = Path(__file__).parents[1] / "resources" / "messages"
TS_RECV = 1_800_000_000_000_000_000
MARKETS = {"usdm_futures": "linear"}

TABLES = {
    "quotes": schema.QUOTES,
    "trades": schema.TRADES,
    "book": schema.BOOK,
    "funding": schema.FUNDING,
    "option_quotes": schema.OPTION_QUOTES,
}


def _seeds() -> list[tuple[str, str | None, str]]:
    out: list[tuple[str, str | None, str]] = []
    for venue in adapters.VENUES:
        for path in (RESOURCES / f"{venue}.jsonl", RESOURCES / "docs" / f"{venue}.jsonl"):
            with path.open() as f:
                for line in f:
                    item = json.loads(line)
                    out.append((venue, MARKETS.get(item.get("market", "")), item["raw_text"]))
    return out


SEEDS = _seeds()
ADAPTERS = {(v, m): adapters.get(v, m) for v, m, _ in SEEDS}


def _check(adapter: adapters.Adapter, raw: bytes) -> None:
    try:
        parsed = adapter.parse(raw, TS_RECV)
    except adapter.ParseError:
        parsed = None
    if parsed is not None:
        for name, table in TABLES.items():
            frame = getattr(parsed, name)
            if frame is not None:
                schema.validate(frame, table)
        for update in parsed.book_updates:
            BookKeeper(update.exchange, update.symbol, max_age_ns=10**9).apply(update)
    try:
        row = adapter.parse_quote_tuple(raw, TS_RECV)
    except adapter.ParseError:
        return
    if row is not None:
        schema.validate(adapters.Parsed.from_rows(adapters.Rows(quotes=[row])).quotes, schema.QUOTES)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "-1", "1e400", "nan", "BTCUSDT", "BTC-USDT", "snapshot", "update", "bookTicker"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(_paths(child, (*prefix, i)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new, delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        copy_list.pop(head)
    else:
        copy_list[head] = _replace(value[head], rest, new, delete)
    return copy_list


@pytest.mark.parametrize("venue", adapters.VENUES)
@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(venue: str, raw: bytes) -> None:
    _check(adapters.get(venue), raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_json_values_never_crash(data: st.DataObject) -> None:
    venue, market, text = data.draw(st.sampled_from(SEEDS))
    message = json.loads(text)
    path = data.draw(st.sampled_from(_paths(message)))
    delete = bool(path) and data.draw(st.booleans())
    mutated = _replace(message, path, data.draw(json_values), delete)
    _check(ADAPTERS[(venue, market)], json.dumps(mutated).encode())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_bytes_never_crash(data: st.DataObject) -> None:
    venue, market, text = data.draw(st.sampled_from(SEEDS))
    raw = bytearray(text.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            raw = raw[:i]
        elif op == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif raw:
            del raw[i]
    _check(ADAPTERS[(venue, market)], bytes(raw))


decimal_text = st.one_of(
    st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False).map(str),
    st.sampled_from(["0", "0.00000000", "", "1e-8", "100"]),
)


@settings(max_examples=300, deadline=None)
@given(
    venue=st.sampled_from(["binance", "okx", "bybit", "deribit", "coinbase"]),
    bid=decimal_text,
    bid_size=decimal_text,
    ask=decimal_text,
    ask_size=decimal_text,
    ts=st.integers(0, 2 * 10**12),
)
def test_fast_path_equals_full_path(venue: str, bid: str, bid_size: str, ask: str, ask_size: str, ts: int) -> None:
    """The decoder-specialised fast path and the general parser agree on every top-of-book message."""
    if venue == "binance":
        raw = (
            f'{{"e":"bookTicker","u":7,"E":{ts},"T":{ts},"s":"BTCUSDT","b":"{bid}","B":"{bid_size}",'
            f'"a":"{ask}","A":"{ask_size}"}}'
        )
    elif venue == "okx":
        raw = (
            f'{{"arg":{{"channel":"bbo-tbt","instId":"BTC-USDT"}},"data":[{{"asks":[["{ask}","{ask_size}","0","1"]],'
            f'"bids":[["{bid}","{bid_size}","0","1"]],"ts":"{ts}","seqId":7}}]}}'
        )
    elif venue == "coinbase":
        raw = (
            '{"channel":"ticker","client_id":"","timestamp":"2026-04-07T14:30:03.000000Z","sequence_num":12,'
            '"events":[{"type":"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"1",'
            f'"best_bid":"{bid}","best_bid_quantity":"{bid_size}","best_ask":"{ask}","best_ask_quantity":"{ask_size}"}}]}}]}}'
        )
    elif venue == "deribit":
        numbers = [text or "0" for text in (bid, bid_size, ask, ask_size)]
        raw = (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":'
            f'{{"timestamp":{ts},"instrument_name":"BTC-PERPETUAL","best_bid_price":{numbers[0]},'
            f'"best_bid_amount":{numbers[1]},"best_ask_price":{numbers[2]},"best_ask_amount":{numbers[3]}}}}}}}'
        )
    else:
        raw = (
            f'{{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":{ts},"data":{{"s":"BTCUSDT",'
            f'"b":[["{bid}","{bid_size}"]],"a":[["{ask}","{ask_size}"]],"u":7,"seq":9}}}}'
        )
    adapter = adapters.get(venue, "linear" if venue == "binance" else None)
    assert json.loads(raw)  # the generated message is valid JSON
    try:
        fast = adapter.parse_quote_tuple(raw.encode(), TS_RECV)
    except adapter.ParseError:
        fast = None
        with pytest.raises(adapter.ParseError):
            adapter.parse_rows(raw.encode(), TS_RECV)
    if venue == "bybit":  # the full path leaves orderbook.1 to the keeper
        rows = adapters.Rows()
        try:
            update = adapter.parse_rows(raw.encode(), TS_RECV).book_update
        except adapter.ParseError:
            update = None
        if update is not None:
            quote = BookKeeper("bybit", update.symbol, max_age_ns=10**30).apply(update)
            assert quote is not None
            rows.quotes.append((*quote[:9], quote[9] & 2))
        full = rows.quotes[-1] if rows.quotes else None
    else:
        try:
            parsed = adapter.parse_rows(raw.encode(), TS_RECV)
            full = parsed.quotes[-1] if parsed.quotes else None
        except adapter.ParseError:
            full = None
    assert fast == full
