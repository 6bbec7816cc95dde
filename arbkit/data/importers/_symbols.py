"""Venue symbols of vendor files -> (CCXT exchange id, unified symbol).

The rules are data (tables below) plus three small parsers: concatenated pairs (``BTCUSDT``) are split at the
longest known quote currency, dash pairs (``BTC-USD``) split at the dash, and dated contracts carry their expiry
either as ``YYMMDD`` (Binance, OKX) or ``DMMMYY`` (Deribit: ``26DEC25``).
"""

from __future__ import annotations

import datetime as dt
import re

from arbkit.instruments import SymbolError, SymbolInfo, format_symbol, parse_symbol

#: Quote currencies tried, longest first, when a venue writes a pair without a separator.
QUOTE_CURRENCIES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD", "EUR", "GBP", "TRY", "BRL", "JPY", "AUD",
            "BTC", "ETH", "BNB", "XBT",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip

#: Bases that settle an ambiguous split (``XBTUSD`` is XBT/USD, not XB/TUSD).
KNOWN_BASES: frozenset[str] = frozenset(
    ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "LTC", "DOT", "AVAX", "LINK", "TRX", "BCH", "MATIC", "TON")
)

#: Legacy asset codes some venues use (Kraken, BitMEX).
ASSET_ALIASES: dict[str, str] = {"XBT": "BTC", "XDG": "DOGE"}

#: Tardis.dev exchange id -> (CCXT exchange id, market: spot | linear | inverse | auto).
TARDIS_EXCHANGES: dict[str, tuple[str, str]] = {
    "binance": ("binance", "spot"),
    "binance-us": ("binanceus", "spot"),
    "binance-futures": ("binance", "linear"),
    "binance-delivery": ("binance", "inverse"),
    "binance-options": ("binance", "auto"),
    "deribit": ("deribit", "auto"),
    "okex": ("okx", "spot"),
    "okex-swap": ("okx", "auto"),
    "okex-futures": ("okx", "auto"),
    "okex-options": ("okx", "auto"),
    "bybit": ("bybit", "auto"),
    "bybit-spot": ("bybit", "spot"),
    "bybit-options": ("bybit", "auto"),
    "coinbase": ("coinbase", "spot"),
    "kraken": ("kraken", "spot"),
    "bitmex": ("bitmex", "inverse"),
    "huobi": ("huobi", "spot"),
    "huobi-dm-swap": ("huobi", "inverse"),
    "huobi-dm-linear-swap": ("huobi", "linear"),
}

_MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                           "DEC"))}  # fmt: skip
_DMY = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_YMD = re.compile(r"^\d{6}$")


def _asset(code: str) -> str:
    return ASSET_ALIASES.get(code, code)


def split_pair(text: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")`` by the longest known quote currency; :class:`SymbolError` otherwise."""
    for sep in ("/", "-", "_"):
        if sep in text:
            base, _, quote = text.partition(sep)
            if base and quote:
                return _asset(base), _asset(quote)
    candidates = [(text[: -len(q)], q) for q in QUOTE_CURRENCIES if text.endswith(q) and len(text) > len(q)]
    if candidates:
        # XBTUSD ends with both TUSD and USD: a well-known base wins, else the longest quote (ETHFDUSD -> FDUSD)
        known = [c for c in candidates if _asset(c[0]) in KNOWN_BASES]
        base, quote = (known or candidates)[0]
        return _asset(base), _asset(quote)
    raise SymbolError(f"cannot split {text!r} into base and quote (known quotes: {', '.join(QUOTE_CURRENCIES)})")


def _expiry(text: str) -> dt.date:
    m = _DMY.match(text)
    try:
        if m is not None and m.group(2) in _MONTHS:
            return dt.date(2000 + int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)))
        if _YMD.match(text):
            return dt.date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        pass
    raise SymbolError(f"not an expiry date: {text!r}")


def _strike(text: str) -> float:
    try:
        value = float(text.replace("d", "."))  # Deribit writes decimal strikes as 2d5
    except ValueError:
        raise SymbolError(f"not a strike: {text!r}") from None
    if value <= 0:
        raise SymbolError(f"strike must be > 0: {text!r}")
    return value


def _check(info: SymbolInfo) -> str:
    text = format_symbol(info)
    parse_symbol(text)  # canonical form: raises on anything the convention does not allow
    return text


def _linear_or_inverse(base: str, quote: str, market: str) -> str | None:
    if market == "spot":
        return None
    if market == "linear":
        return quote
    if market == "inverse":
        return base
    # auto: USD-quoted derivatives settle in the base (inverse), stablecoin-quoted ones in the quote
    return base if quote == "USD" else quote


def _deribit(symbol: str) -> str:
    parts = symbol.split("-")
    head = parts[0]
    if "_" in head:  # linear USDC contracts: BTC_USDC-PERPETUAL
        base, quote = split_pair(head)
        settle = quote
    else:
        base, quote, settle = _asset(head), "USD", _asset(head)
    if len(parts) == 2 and parts[1] == "PERPETUAL":
        return _check(SymbolInfo(base, quote, settle))
    if len(parts) == 2:
        return _check(SymbolInfo(base, quote, settle, _expiry(parts[1])))
    if len(parts) == 4 and parts[3] in ("C", "P"):
        return _check(SymbolInfo(base, quote, settle, _expiry(parts[1]), _strike(parts[2]), parts[3]))
    raise SymbolError(f"not a Deribit instrument name: {symbol!r}")


def _okx(symbol: str, market: str) -> str:
    parts = symbol.split("-")
    if len(parts) < 2:
        raise SymbolError(f"not an OKX instrument id: {symbol!r}")
    base, quote = _asset(parts[0]), _asset(parts[1])
    if len(parts) == 2:
        settle = _linear_or_inverse(base, quote, market if market != "auto" else "spot")
        return _check(SymbolInfo(base, quote, settle))
    settle = base if quote == "USD" else quote
    if len(parts) == 3 and parts[2] == "SWAP":
        return _check(SymbolInfo(base, quote, settle))
    if len(parts) == 3:
        return _check(SymbolInfo(base, quote, settle, _expiry(parts[2])))
    if len(parts) == 5 and parts[4] in ("C", "P"):
        return _check(SymbolInfo(base, quote, settle, _expiry(parts[2]), _strike(parts[3]), parts[4]))
    raise SymbolError(f"not an OKX instrument id: {symbol!r}")


def _concatenated(symbol: str, market: str) -> str:
    """Binance/Bybit style: BTCUSDT, BTCUSDT_240628, BTCUSD_PERP, BTCUSD_240628, BTC-240628-60000-C."""
    if symbol.count("-") == 3:  # options: BTC-240628-60000-C (quote USDT on Binance/Bybit)
        base, expiry, strike, kind = symbol.split("-")
        if kind not in ("C", "P"):
            raise SymbolError(f"not an option symbol: {symbol!r}")
        return _check(SymbolInfo(_asset(base), "USDT", "USDT", _expiry(expiry), _strike(strike), kind))
    pair, _, suffix = symbol.partition("_")
    if "-" in pair:  # Bybit dated: BTCUSDT-27DEC24 / BTC-27DEC24
        pair, _, suffix = pair.partition("-")
    base, quote = split_pair(pair)
    settle = _linear_or_inverse(base, quote, market)
    if suffix in ("", "PERP"):
        if suffix == "PERP" and settle is None:
            settle = _linear_or_inverse(base, quote, "auto")
        return _check(SymbolInfo(base, quote, settle))
    if settle is None:
        settle = _linear_or_inverse(base, quote, "auto")
    return _check(SymbolInfo(base, quote, settle, _expiry(suffix)))


def unify(venue: str, symbol: str, market: str = "auto") -> str:
    """A venue's instrument name as a unified CCXT symbol; ``venue`` is a CCXT id, ``market`` a hint.

    ``market`` is ``spot``, ``linear``, ``inverse`` or ``auto`` (USD-quoted derivatives are inverse, stablecoin
    ones linear).

    Examples
    --------
    >>> unify("deribit", "BTC-26DEC25"), unify("binance", "BTCUSDT", "linear"), unify("kraken", "XBT/USD")
    ('BTC/USD:BTC-251226', 'BTC/USDT:USDT', 'BTC/USD')
    """
    if not symbol:
        raise SymbolError("empty symbol")
    if venue == "deribit":
        return _deribit(symbol)
    if venue == "okx":
        return _okx(symbol, market)
    if venue in ("coinbase", "kraken") or (market == "spot" and ("-" in symbol or "/" in symbol)):
        base, quote = split_pair(symbol)
        return _check(SymbolInfo(base, quote))
    if venue == "huobi" and "-" in symbol:
        base, quote = split_pair(symbol)
        return _check(SymbolInfo(base, quote, _linear_or_inverse(base, quote, market)))
    return _concatenated(symbol.upper(), market)


def tardis_venue(exchange_id: str) -> tuple[str, str]:
    """Tardis.dev exchange id -> (CCXT exchange id, market hint); :class:`SymbolError` for an unknown id."""
    try:
        return TARDIS_EXCHANGES[exchange_id]
    except KeyError:
        raise SymbolError(f"unknown Tardis exchange {exchange_id!r} (known: {', '.join(TARDIS_EXCHANGES)})") from None
