"""Property: the compiled columnar parsers return ``None`` or exactly the per-message path's rows, bit for bit.

Messages are generated valid (keys in random order, random whitespace, extra keys, numbers written in many
shapes: exponents, long mantissas, trailing zeros) and then, half the time, mutated (truncated, bytes replaced
or inserted, escapes, wrong types).  Whatever comes out, the columns must never contradict the slow path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live import adapters

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "live"))
from test_adapter_columns import adapter, check  # the reference comparison, shared with the unit tests


class Raw(str):
    """Text written into the JSON verbatim (a number in one of its many spellings)."""


def _dump(value: Any, ws: list[str], i: list[int]) -> str:
    def sp() -> str:
        i[0] += 1
        return ws[i[0] % len(ws)]

    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + sp()
            + ",".join(f"{sp()}{json.dumps(k)}{sp()}:{sp()}{_dump(v, ws, i)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + sp() + ",".join(sp() + _dump(v, ws, i) for v in value) + sp() + "]"
    return json.dumps(value)


digits = st.text("0123456789", min_size=1, max_size=20)


@st.composite
def number_text(draw: st.DrawFn, positive: bool = True) -> str:
    """A JSON number: integer part, optional fraction of up to 20 digits, optional exponent."""
    head = draw(st.sampled_from(["0", "1", "60000", "29010", "7"]) | digits.filter(lambda d: d[0] != "0"))
    frac = draw(st.none() | digits)
    exp = draw(
        st.none() | st.tuples(st.sampled_from(["e", "E"]), st.sampled_from(["", "+", "-"]), digits.map(lambda d: d[:3]))
    )
    text = head + (f".{frac}" if frac else "") + ("".join(exp) if exp else "")
    if not positive and draw(st.booleans()):
        text = "-" + text
    return text


# Python's shortest repr of a double with a 17-digit decimal mantissa (often 17 digits itself, e.g.
# "199.95999999999998"), from 1e-20 to 1e6: past Clinger's fast path, converted by Eisel-Lemire
long_repr = st.tuples(st.integers(10**16, 10**17 - 1), st.integers(-36, -10)).map(
    lambda t: repr(float(f"{t[0]}e{t[1]}"))
)


@st.composite
def message(draw: st.DrawFn, venue: str, simple: bool = False, long_floats: bool = False) -> bytes:
    if long_floats:
        num = long_repr | st.floats(1e-12, 1e12).map(repr)
    else:
        num = st.integers(1, 10**9).map(lambda v: repr(v / 100)) if simple else number_text()
    num_str = num.map(lambda t: Raw(json.dumps(t)))
    num_bare = num.map(Raw)
    ms = st.integers(1_600_000_000_000, 1_900_000_000_000).map(lambda v: Raw(str(v)))
    seq = st.integers(-(2**40), 10**17 - 1 if simple or long_floats else 2**62).map(lambda v: Raw(str(v)))
    extra = st.dictionaries(
        st.sampled_from(["x", "note", "stats", "q1"]),
        st.none() | st.booleans() | num_bare | st.text(st.characters(max_codepoint=0xD7FF), max_size=5),
        max_size=2,
    )
    body: dict[str, Any]
    if venue == "binance":
        body = {
            "u": draw(seq),
            "s": "BTCUSDT",
            "b": draw(num_str),
            "B": draw(num_str),
            "a": draw(num_str),
            "A": draw(num_str),
        }
        if draw(st.booleans()):
            body |= {"e": "bookTicker", "E": draw(ms), "T": draw(ms)}
    elif venue == "okx":
        level = st.tuples(num_str, num_str).map(lambda t: [t[0], t[1], Raw('"0"'), Raw('"3"')])
        data = {"asks": [draw(level)], "bids": [draw(level)], "ts": Raw(json.dumps(str(draw(ms))))}
        if draw(st.booleans()):
            data["seqId"] = draw(seq)
        body = {
            "arg": {"channel": "bbo-tbt", "instId": draw(st.sampled_from(["BTC-USDT", "ETH-USDT-SWAP"]))},
            "data": [data],
        }
    elif venue == "bybit":
        level = st.tuples(num_str, num_str).map(list)
        data = {"s": "BTCUSDT", "b": [draw(level)], "a": [draw(level)], "u": draw(seq), "seq": draw(seq)}
        body = {"topic": "orderbook.1.BTCUSDT", "type": "snapshot", "ts": draw(ms), "data": data}
        if draw(st.booleans()):
            body["cts"] = draw(ms)
    elif venue == "coinbase":
        stamp = draw(
            st.sampled_from(["2026-04-07T14:30:03.123456789Z", "2023-10-06T17:35:55.440295Z", "2024-02-29T00:00:00Z"])
        )
        sides = {k: draw(num_str) for k in ("best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity")}
        ticker = {"type": "ticker", "product_id": "BTC-USD", "price": draw(num_str), **sides}
        body = {"channel": "ticker", "client_id": "", "timestamp": stamp, "sequence_num": draw(seq),
                "events": [{"type": "update", "tickers": [ticker]}]}  # fmt: skip
    elif venue == "kraken":
        symbol = draw(st.sampled_from(["BTC/USD", "XBT/USD"]))
        data = {"symbol": symbol, "bid": draw(num_bare), "bid_qty": draw(num_bare), "ask": draw(num_bare),
                "ask_qty": draw(num_bare), "last": draw(num_bare)}  # fmt: skip
        if draw(st.booleans()):
            data["timestamp"] = "2023-10-06T17:35:55.440295Z"
        body = {"channel": "ticker", "type": "update", "data": [data]}
    else:
        name = draw(st.sampled_from(["BTC-PERPETUAL", "BTC-30SEP22"]))
        mark = draw(num_bare if simple or long_floats else number_text(positive=False).map(Raw))
        data = {"timestamp": draw(ms), "instrument_name": name, "best_bid_price": draw(num_bare),
                "best_bid_amount": draw(num_bare), "best_ask_price": draw(num_bare),
                "best_ask_amount": draw(num_bare), "mark_price": mark}  # fmt: skip
        channel = draw(st.sampled_from(["quote.BTC-PERPETUAL", "ticker.BTC-PERPETUAL.100ms"]))
        body = {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    body |= draw(extra)
    items = list(body.items())
    order = draw(st.permutations(range(len(items))))
    body = {items[k][0]: items[k][1] for k in order}
    ws = draw(st.lists(st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n"]), min_size=1, max_size=5))
    return _dump(body, ws, [0]).encode()


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["cut", "replace", "insert", "escape", "quote", "delete"]))
        if op == "cut":
            raw = raw[:at]
        elif op == "replace":
            raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
        elif op == "insert":
            raw = (
                raw[:at]
                + draw(
                    st.sampled_from(
                        [b'"', b"\\", b",", b"{", b"]", b"0", b"-", b"e", b"null", b"\\u0041", b"\xc3\xa9", b'"x":1,']
                    )
                )
                + raw[at:]
            )
        elif op == "escape":
            raw = raw.replace(b'"', b'"\\u0030', 1) if draw(st.booleans()) else raw.replace(b"S", b"\\u0053", 1)
        elif op == "quote":
            raw = raw[:at] + b'"' + raw[at:]
        else:
            raw = raw[:at] + raw[at + draw(st.integers(1, 8)) :]
    return raw


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    venue = draw(st.sampled_from(adapters.VENUES))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        raw = draw(message(venue))
        if draw(st.integers(0, 3)) == 0:
            raw = draw(mutated(raw))
        out.append(raw)
    return venue, out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches())
def test_columns_are_none_or_the_slow_paths_rows(batch: tuple[str, list[bytes]]) -> None:
    venue, messages = batch
    check(adapter(venue), messages)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(adapters.VENUES).flatmap(
        lambda v: st.tuples(st.just(v), st.lists(message(v, simple=True), min_size=1, max_size=3))
    )
)
def test_valid_messages_with_plain_numbers_are_read(batch: tuple[str, list[bytes]]) -> None:
    """Any key order, whitespace and extra keys: valid messages with plain decimals are read, not declined."""
    venue, messages = batch
    assert check(adapter(venue), messages)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(adapters.VENUES).flatmap(
        lambda v: st.tuples(st.just(v), st.lists(message(v, long_floats=True), min_size=1, max_size=3))
    )
)
def test_valid_messages_with_17_digit_reprs_are_read(batch: tuple[str, list[bytes]]) -> None:
    """Prices and sizes as shortest reprs of random doubles (17 digits, what the simulator renders) are read,
    not declined, and equal the slow path bit for bit."""
    venue, messages = batch
    assert check(adapter(venue), messages)
