from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from arbkit.instruments import (
    InstrumentKind,
    SymbolError,
    SymbolInfo,
    UnknownInstrumentError,
    default_registry,
    format_symbol,
    parse_symbol,
)

currency = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6)
strikes = st.one_of(
    st.integers(min_value=1, max_value=10**6).map(float),
    st.decimals(min_value="0.001", max_value="100000", places=3).map(float),
)


@st.composite
def symbols(draw: st.DrawFn) -> SymbolInfo:
    base, quote = draw(currency), draw(currency)
    kind = draw(st.sampled_from(list(InstrumentKind)))
    if kind is InstrumentKind.SPOT:
        return SymbolInfo(base, quote)
    settle = draw(st.sampled_from([base, quote, draw(currency)]))
    if kind is InstrumentKind.SWAP:
        return SymbolInfo(base, quote, settle)
    expiry = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)))
    if kind is InstrumentKind.FUTURE:
        return SymbolInfo(base, quote, settle, expiry)
    return SymbolInfo(base, quote, settle, expiry, draw(strikes), draw(st.sampled_from(["C", "P"])))


@given(symbols())
@example(SymbolInfo("BTC", "USD", "BTC", dt.date(2025, 12, 26), 45000.0, "C"))
@example(SymbolInfo("ETH", "USDC", "USDC", dt.date(2026, 3, 27), 2500.5, "P"))
def test_format_parse_round_trip(info: SymbolInfo) -> None:
    text = format_symbol(info)
    assert parse_symbol(text) == info
    assert format_symbol(parse_symbol(text)) == text


@pytest.mark.parametrize(
    ("text", "kind", "linear"),
    [
        ("BTC/USDT", InstrumentKind.SPOT, True),
        ("BTC/USDT:USDT", InstrumentKind.SWAP, True),
        ("BTC/USD:BTC", InstrumentKind.SWAP, False),
        ("BTC/USD:BTC-251226", InstrumentKind.FUTURE, False),
        ("BTC/USD:BTC-251226-45000-C", InstrumentKind.OPTION, False),
    ],
)
def test_kinds_from_ccxt_examples(text: str, kind: InstrumentKind, linear: bool) -> None:
    info = parse_symbol(text)
    assert (info.kind, info.linear) == (kind, linear)


@pytest.mark.parametrize(
    "text",
    [
        "BTCUSDT",
        "BTC/",
        "btc/usdt",
        "BTC/USD:BTC-2512",
        "BTC/USD:BTC-251332",
        "BTC/USD:BTC-251226-45000-X",
        "BTC/USD:BTC-251226-045000-C",
        "BTC/USD:BTC-251226-45000.0-C",
        "",
    ],
)
def test_malformed_symbols_raise(text: str) -> None:
    with pytest.raises(SymbolError):
        parse_symbol(text)


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_symbol_error(text: str) -> None:
    try:
        info = parse_symbol(text)
    except SymbolError:
        return
    assert format_symbol(info) == text


def test_registry_fees_from_public_schedules() -> None:
    reg = default_registry()
    assert reg.get("binance", "BTC/USDT").taker_fee == 0.001
    assert reg.get("bybit", "BTC/USDT:USDT").taker_fee == 0.00055
    opt = reg.get("deribit", "BTC/USD:BTC-251226-45000-C")
    assert (opt.premium_currency, opt.fee_cap, opt.venue_symbol) == ("BTC", 0.125, "BTC-26DEC25-45000-C")
    assert reg.get("okx", "BTC/USDT:USDT").venue_symbol == "BTC-USDT-SWAP"


def test_registry_rejects_unknowns() -> None:
    reg = default_registry()
    with pytest.raises(UnknownInstrumentError, match="unknown exchange 'ftx'"):
        reg.get("ftx", "BTC/USDT")
    with pytest.raises(UnknownInstrumentError, match="coinbase does not list option"):
        reg.get("coinbase", "BTC/USD:BTC-251226-45000-C")
    with pytest.raises(UnknownInstrumentError, match="not a unified symbol"):
        reg.get("okx", "BTCUSDT")
    assert ("okx", "BTC/USDT") in reg
    assert ("okx", "nope") not in reg


def test_fee_override_applies_to_explicit_instruments() -> None:
    reg = default_registry()
    reg = reg.with_instruments([reg.get("kraken", "ETH/USDT")]).with_fees("kraken", "spot", maker=0.001, taker=0.002)
    assert reg.get("kraken", "ETH/USDT").taker_fee == 0.002
    with pytest.raises(ValueError, match="out of range"):
        reg.with_fees("kraken", "spot", maker=0.0, taker=0.5)
