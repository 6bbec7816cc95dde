"""Venue message parsers: raw WebSocket bytes in, :mod:`arbkit.schema` rows out.

One adapter per venue (CCXT exchange ids): ``binance``, ``okx``, ``bybit``, ``coinbase``, ``kraken``,
``deribit``.  Each is pure (no I/O, no clock) and raises its own :class:`ParseError` subclass on bad input.

Examples
--------
>>> from live import adapters
>>> ad = adapters.get("okx")
>>> raw = (b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"},'
...        b'"data":[{"asks":[["101","2","0","1"]],"bids":[["100","1","0","1"]],"ts":"1700000000000"}]}')
>>> ad.parse_quote_tuple(raw, ts_recv=1_700_000_000_001_000_000)[3:8]
('BTC/USDT:USDT', 100.0, 1.0, 101.0, 2.0)
"""

from __future__ import annotations

import importlib

from live.adapters._base import (
    BOOK_RULES,
    GREEKS_SCHEMA,
    Adapter,
    BookRow,
    BookUpdate,
    FundingRow,
    GreeksRow,
    Level,
    OptionQuoteRow,
    Parsed,
    ParseError,
    QuoteRow,
    Rows,
    TradeRow,
)

__all__ = [
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
]

# venue -> (module, class); imported on first use so a process only loads the venues it reads.
_ADAPTERS: dict[str, tuple[str, str]] = {
    "binance": ("live.adapters.binance", "BinanceAdapter"),
    "okx": ("live.adapters.okx", "OkxAdapter"),
    "bybit": ("live.adapters.bybit", "BybitAdapter"),
    "coinbase": ("live.adapters.coinbase", "CoinbaseAdapter"),
    "kraken": ("live.adapters.kraken", "KrakenAdapter"),
    "deribit": ("live.adapters.deribit", "DeribitAdapter"),
}

#: The venues with an adapter, by CCXT exchange id.
VENUES: tuple[str, ...] = tuple(_ADAPTERS)


def get(venue: str, market: str | None = None) -> Adapter:
    """A new adapter for ``venue`` (CCXT id) and ``market`` (venue default when ``None``).

    ``market`` matters where the venue's symbol does not say it: Binance ``spot`` (default) or ``linear``
    (USD-M futures), Bybit ``linear`` (default) or ``spot``.  Unknown venues or markets raise ``ValueError``.

    Examples
    --------
    >>> get("binance", "linear").unified_symbol("BTCUSDT")
    'BTC/USDT:USDT'
    >>> get("ftx")
    Traceback (most recent call last):
    ...
    ValueError: unknown venue 'ftx' (known: binance, okx, bybit, coinbase, kraken, deribit)
    """
    try:
        module_name, class_name = _ADAPTERS[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r} (known: {', '.join(_ADAPTERS)})") from None
    cls: type[Adapter] = getattr(importlib.import_module(module_name), class_name)
    return cls(market)
