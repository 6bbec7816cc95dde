"""Bybit v5 (linear and spot) against more real messages (tests/resources/messages/extra/bybit.jsonl).

The hand-read ``expected`` values are checked by the Binance file's :func:`check_line` (loaded by path: the test
folders are not packages), so both venues' fixtures obey one set of rules.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from live import adapters

_spec = importlib.util.spec_from_file_location(
    "_extra_checks", Path(__file__).with_name("test_adapters_extra_binance.py")
)
assert _spec is not None
assert _spec.loader is not None
_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_checks)

TS_RECV: int = _checks.TS_RECV
CASES = _checks.load("bybit")


@pytest.mark.parametrize(("venue", "line"), CASES)
def test_message_matches_hand_read_values(venue: str, line: dict[str, Any]) -> None:
    _checks.check_line(venue, line)


def test_every_line_names_its_source() -> None:
    for case in CASES:
        line = case.values[1]
        assert line["source"].startswith(("github.com/", "https://")), line["source"]
        assert line["market"] in ("linear", "spot")


def test_pretty_printed_orderbook_1_snapshot_still_gives_its_quote() -> None:
    """The fast path keys on the compact byte prefix; indented bytes must reach the same quote via the full path."""
    with (Path(__file__).parents[2] / "resources" / "messages" / "bybit.jsonl").open() as f:
        line = next(json.loads(t) for t in f if '"orderbook.1 (snapshot)"' in t)
    ad = adapters.get("bybit")
    compact = line["raw_text"].encode()
    pretty = json.dumps(json.loads(compact), indent=4).encode()
    quote = ad.parse_quote_tuple(compact, TS_RECV)
    assert quote is not None
    assert quote[4:8] == (27450.0, 0.5, 27451.0, 0.75)  # read off the snapshot: best bid 27450.00 x 0.500
    assert ad.parse_quote_tuple(pretty, TS_RECV) == quote


@pytest.mark.parametrize(
    ("venue_symbol", "unified"),
    [
        ("BTCUSDT-26DEC25", "BTC/USDT:USDT-251226"),  # USDT-settled dated future
        ("BTC-26DEC25", "BTC/USDC:USDC-251226"),  # USDC-settled dated future
        ("ETH-3JAN25", "ETH/USDC:USDC-250103"),  # one-digit day
        ("ETHPERP", "ETH/USDC:USDC"),
    ],
)
def test_linear_dated_futures_map_to_ccxt_symbols(venue_symbol: str, unified: str) -> None:
    assert adapters.get("bybit").unified_symbol(venue_symbol) == unified


@pytest.mark.parametrize("venue_symbol", ["BTC-6JAN23-17500-C", "BTC-26XYZ25", "BTCUSDT-26DEC25"])
def test_symbols_outside_the_market_are_parse_errors(venue_symbol: str) -> None:
    ad = adapters.get("bybit", "spot" if venue_symbol.startswith("BTCUSDT") else "linear")
    with pytest.raises(ad.ParseError):
        ad.unified_symbol(venue_symbol)
