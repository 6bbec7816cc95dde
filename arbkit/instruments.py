"""Unified symbols (the CCXT convention) and the instrument registry.

Symbols
-------
========================  ==========================================================
``BTC/USDT``              spot
``BTC/USDT:USDT``         linear perpetual swap (settled in the quote currency)
``BTC/USD:BTC``           inverse perpetual swap (settled in the base currency)
``BTC/USD:BTC-251226``    dated future expiring 2025-12-26 (08:00 UTC, Deribit's convention)
``BTC/USD:BTC-251226-45000-C``  option: expiry, strike, C or P
========================  ==========================================================

Every fee, tick, lot and contract size used anywhere in arbkit comes from a :class:`Registry`, never from a
literal.  :func:`default_registry` carries the public fee schedules of the six supported venues at their base
(lowest volume) tier; configuration overrides any field per venue and market kind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "VENUES",
    "Instrument",
    "InstrumentKind",
    "Registry",
    "SymbolError",
    "SymbolInfo",
    "TransferRoute",
    "UnknownInstrumentError",
    "VenueProfile",
    "default_registry",
    "expiry_ns",
    "format_symbol",
    "parse_symbol",
]

#: The supported venues, by CCXT exchange id.
VENUES: tuple[str, ...] = ("binance", "okx", "bybit", "coinbase", "kraken", "deribit")

_EXPIRY_HOUR_UTC = 8  # Deribit, OKX and Binance dated contracts all expire at 08:00 UTC


class SymbolError(ValueError):
    """A unified symbol that does not follow the CCXT convention."""


class UnknownInstrumentError(KeyError):
    """An (exchange, symbol) pair the registry cannot resolve."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown instrument"


class InstrumentKind(enum.StrEnum):
    SPOT = "spot"
    SWAP = "swap"  # perpetual
    FUTURE = "future"
    OPTION = "option"


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """What a unified symbol says by itself, without a venue."""

    base: str
    quote: str
    settle: str | None = None
    expiry: dt.date | None = None
    strike: float | None = None
    option_type: str | None = None  # "C" | "P"

    @property
    def kind(self) -> InstrumentKind:
        if self.settle is None:
            return InstrumentKind.SPOT
        if self.expiry is None:
            return InstrumentKind.SWAP
        if self.strike is None:
            return InstrumentKind.FUTURE
        return InstrumentKind.OPTION

    @property
    def linear(self) -> bool:
        """True when settled in the quote currency (spot counts as linear)."""
        return self.settle is None or self.settle == self.quote

    @property
    def inverse(self) -> bool:
        return self.settle is not None and self.settle == self.base


_CCY = r"[A-Z0-9]{1,15}"
_SYMBOL_RE = re.compile(
    rf"^(?P<base>{_CCY})/(?P<quote>{_CCY})"
    rf"(?::(?P<settle>{_CCY})"
    r"(?:-(?P<expiry>\d{6})"
    r"(?:-(?P<strike>\d+(?:\.\d+)?)-(?P<type>[CP]))?)?)?$"
)


def _format_strike(strike: float) -> str:
    if strike == int(strike):
        return str(int(strike))
    return repr(float(strike))


def parse_symbol(text: str) -> SymbolInfo:
    """Parse a unified CCXT symbol.

    Raises :class:`SymbolError` naming the symbol when it does not follow the convention.

    Examples
    --------
    >>> parse_symbol("BTC/USDT:USDT").kind
    <InstrumentKind.SWAP: 'swap'>
    >>> info = parse_symbol("BTC/USD:BTC-251226-45000-C")
    >>> info.expiry, info.strike, info.option_type
    (datetime.date(2025, 12, 26), 45000.0, 'C')
    >>> format_symbol(info)
    'BTC/USD:BTC-251226-45000-C'
    """
    if not isinstance(text, str):
        raise SymbolError(f"symbol must be a string, got {type(text).__name__}")
    m = _SYMBOL_RE.match(text)
    if m is None:
        raise SymbolError(f"not a unified symbol: {text!r} (expected BASE/QUOTE[:SETTLE[-YYMMDD[-STRIKE-C|P]]])")
    expiry = None
    if m["expiry"]:
        raw = m["expiry"]
        try:
            expiry = dt.date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:]))
        except ValueError as exc:
            raise SymbolError(f"bad expiry date {raw!r} in symbol {text!r}") from exc
    strike = float(m["strike"]) if m["strike"] else None
    if strike is not None and strike <= 0:
        raise SymbolError(f"strike must be > 0 in symbol {text!r}")
    if strike is not None and m["strike"] != _format_strike(strike):
        raise SymbolError(f"non-canonical strike {m['strike']!r} in {text!r} (write {_format_strike(strike)})")
    return SymbolInfo(m["base"], m["quote"], m["settle"], expiry, strike, m["type"])


def format_symbol(info: SymbolInfo | Instrument) -> str:
    """Format a symbol so that ``format_symbol(parse_symbol(s)) == s`` for every canonical ``s``."""
    if isinstance(info, Instrument):
        info = info.info
    out = f"{info.base}/{info.quote}"
    if info.settle is None:
        return out
    out += f":{info.settle}"
    if info.expiry is None:
        return out
    out += "-" + info.expiry.strftime("%y%m%d")
    if info.strike is None:
        return out
    return f"{out}-{_format_strike(info.strike)}-{info.option_type}"


def expiry_ns(expiry: dt.date) -> int:
    """Expiry instant in ns since the epoch (08:00 UTC on the expiry date)."""
    moment = dt.datetime(expiry.year, expiry.month, expiry.day, _EXPIRY_HOUR_UTC, tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument on one venue, with everything needed to size, price and charge it.

    Fees are fractions of notional (0.001 = 10 bps); negative maker fees are rebates.  For options
    ``fee_cap`` caps the fee at that fraction of the option premium (Deribit's 12.5% rule) and
    ``premium_currency`` says what the price is quoted in (BTC for Deribit's inverse options).
    """

    exchange: str
    symbol: str
    info: SymbolInfo
    tick_size: float
    lot_size: float
    min_notional: float
    maker_fee: float
    taker_fee: float
    contract_size: float = 1.0
    venue_symbol: str = ""
    fee_cap: float | None = None
    premium_currency: str | None = None
    funding_interval_hours: float | None = None

    @property
    def base(self) -> str:
        return self.info.base

    @property
    def quote(self) -> str:
        return self.info.quote

    @property
    def settle(self) -> str | None:
        return self.info.settle

    @property
    def kind(self) -> InstrumentKind:
        return self.info.kind

    @property
    def expiry(self) -> dt.date | None:
        return self.info.expiry

    @property
    def strike(self) -> float | None:
        return self.info.strike

    @property
    def option_type(self) -> str | None:
        return self.info.option_type

    @property
    def linear(self) -> bool:
        return self.info.linear


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """Per-venue timing facts used for staleness, latency and funding."""

    exchange: str
    latency_ms: float  # typical one-way latency from a colocated-ish client
    max_age_ms: float  # a quote older than this is stale
    funding_interval_hours: float = 8.0


@dataclass(frozen=True, slots=True)
class TransferRoute:
    """Moving an asset off a venue: withdrawal fee (in the asset) and typical delay on the chosen network."""

    asset: str
    network: str
    fee: float
    delay_s: float


# Public fee schedules at the base tier (fractions of notional), as published by each venue in 2025.
# (venue, kind) -> (maker, taker)
_FEES: dict[tuple[str, InstrumentKind], tuple[float, float]] = {
    ("binance", InstrumentKind.SPOT): (0.0010, 0.0010),
    ("binance", InstrumentKind.SWAP): (0.0002, 0.0005),
    ("binance", InstrumentKind.FUTURE): (0.0002, 0.0005),
    ("okx", InstrumentKind.SPOT): (0.0008, 0.0010),
    ("okx", InstrumentKind.SWAP): (0.0002, 0.0005),
    ("okx", InstrumentKind.FUTURE): (0.0002, 0.0005),
    ("okx", InstrumentKind.OPTION): (0.0002, 0.0003),
    ("bybit", InstrumentKind.SPOT): (0.0010, 0.0010),
    ("bybit", InstrumentKind.SWAP): (0.0002, 0.00055),
    ("bybit", InstrumentKind.FUTURE): (0.0002, 0.00055),
    ("bybit", InstrumentKind.OPTION): (0.0002, 0.0003),
    ("coinbase", InstrumentKind.SPOT): (0.0060, 0.0120),  # Advanced Trade, < $10k 30-day volume
    ("kraken", InstrumentKind.SPOT): (0.0025, 0.0040),
    ("deribit", InstrumentKind.SWAP): (0.0000, 0.0005),
    ("deribit", InstrumentKind.FUTURE): (0.0000, 0.0005),
    ("deribit", InstrumentKind.OPTION): (0.0003, 0.0003),  # of the underlying, capped at 12.5% of premium
}

_PROFILES: dict[str, VenueProfile] = {
    "binance": VenueProfile("binance", latency_ms=5.0, max_age_ms=1_000.0, funding_interval_hours=8.0),
    "okx": VenueProfile("okx", latency_ms=8.0, max_age_ms=1_000.0, funding_interval_hours=8.0),
    "bybit": VenueProfile("bybit", latency_ms=8.0, max_age_ms=1_000.0, funding_interval_hours=8.0),
    "coinbase": VenueProfile("coinbase", latency_ms=15.0, max_age_ms=2_000.0),
    "kraken": VenueProfile("kraken", latency_ms=20.0, max_age_ms=2_000.0),
    "deribit": VenueProfile("deribit", latency_ms=10.0, max_age_ms=2_000.0, funding_interval_hours=8.0),
}

# tick, lot, min_notional (quote currency) by base asset for USD(T)-quoted markets; crosses use _CROSS_SIZES.
_SIZES: dict[str, tuple[float, float, float]] = {
    "BTC": (0.1, 0.00001, 5.0),
    "ETH": (0.01, 0.0001, 5.0),
    "SOL": (0.01, 0.001, 5.0),
    "XRP": (0.0001, 0.1, 5.0),
    "DOGE": (0.00001, 1.0, 5.0),
}
_DEFAULT_SIZES = (0.0001, 0.001, 5.0)
_CROSS_SIZES = (0.00001, 0.0001, 0.0001)  # e.g. ETH/BTC: tick 1e-5 BTC, lot 1e-4 ETH, min 1e-4 BTC

_TRANSFERS: dict[str, TransferRoute] = {
    "BTC": TransferRoute("BTC", "BTC", 0.0002, 1_800.0),
    "ETH": TransferRoute("ETH", "ERC20", 0.0015, 300.0),
    "SOL": TransferRoute("SOL", "SOL", 0.01, 60.0),
    "USDT": TransferRoute("USDT", "TRC20", 1.0, 120.0),
    "USDC": TransferRoute("USDC", "SOL", 1.0, 60.0),
    "USD": TransferRoute("USD", "WIRE", 10.0, 86_400.0),
}

_VENUE_SYMBOL_STYLE: dict[str, str] = {
    "binance": "{base}{quote}",
    "okx": "{base}-{quote}",
    "bybit": "{base}{quote}",
    "coinbase": "{base}-{quote}",
    "kraken": "{base}/{quote}",
    "deribit": "{base}-{quote}",
}


def _sizes(info: SymbolInfo) -> tuple[float, float, float]:
    if info.quote in ("USDT", "USD", "USDC"):
        return _SIZES.get(info.base, _DEFAULT_SIZES)
    return _CROSS_SIZES


def _venue_symbol(exchange: str, info: SymbolInfo) -> str:
    style = _VENUE_SYMBOL_STYLE.get(exchange, "{base}/{quote}")
    out = style.format(base=info.base, quote=info.quote)
    if info.kind is InstrumentKind.SWAP:
        return {"okx": f"{out}-SWAP", "deribit": f"{info.base}-PERPETUAL"}.get(exchange, out)
    if info.expiry is not None:
        day = info.expiry.strftime("%d%b%y").upper().lstrip("0")
        if info.kind is InstrumentKind.OPTION:
            return f"{info.base}-{day}-{_format_strike(info.strike or 0.0)}-{info.option_type}"
        return f"{info.base}-{day}"
    return out


@dataclass(frozen=True)
class Registry:
    """Instruments by (exchange, symbol), venue profiles and transfer routes.

    Explicit entries win; any other parseable symbol on a known venue resolves to the venue defaults (so an option
    chain listed tomorrow needs no code change).  Overrides replace fields per ``(exchange, kind)``.

    Examples
    --------
    >>> reg = default_registry()
    >>> inst = reg.get("binance", "BTC/USDT")
    >>> inst.taker_fee, inst.tick_size
    (0.001, 0.1)
    >>> reg.with_fees("binance", "spot", maker=0.00075, taker=0.00075).get("binance", "BTC/USDT").taker_fee
    0.00075
    """

    fees: Mapping[tuple[str, InstrumentKind], tuple[float, float]]
    profiles: Mapping[str, VenueProfile]
    transfers: Mapping[str, TransferRoute]
    instruments: Mapping[tuple[str, str], Instrument] = dataclasses.field(default_factory=dict)

    @property
    def venues(self) -> tuple[str, ...]:
        return tuple(self.profiles)

    def profile(self, exchange: str) -> VenueProfile:
        try:
            return self.profiles[exchange]
        except KeyError:
            raise UnknownInstrumentError(f"unknown exchange {exchange!r} (known: {', '.join(self.profiles)})") from None

    def transfer(self, asset: str) -> TransferRoute:
        try:
            return self.transfers[asset]
        except KeyError:
            raise UnknownInstrumentError(f"no transfer route configured for asset {asset!r}") from None

    def get(self, exchange: str, symbol: str) -> Instrument:
        """The instrument, explicit or derived from venue defaults; :class:`UnknownInstrumentError` otherwise."""
        hit = self.instruments.get((exchange, symbol))
        if hit is not None:
            return hit
        self.profile(exchange)
        try:
            info = parse_symbol(symbol)
        except SymbolError as exc:
            raise UnknownInstrumentError(f"{exchange}: {exc}") from None
        fee = self.fees.get((exchange, info.kind))
        if fee is None:
            raise UnknownInstrumentError(f"{exchange} does not list {info.kind.value} markets ({symbol!r})")
        tick, lot, min_notional = _sizes(info)
        inverse = info.inverse
        option = info.kind is InstrumentKind.OPTION
        contract = 1.0
        if inverse and not option:
            contract = 10.0 if info.base != "BTC" else 100.0  # USD per contract (Deribit/OKX inverse)
        profile = self.profiles[exchange]
        return Instrument(
            exchange=exchange,
            symbol=symbol,
            info=info,
            tick_size=0.0001 if option and inverse else (0.5 if inverse else tick),
            lot_size=0.1 if option else (1.0 if inverse else lot),
            min_notional=0.0 if inverse else min_notional,
            maker_fee=fee[0],
            taker_fee=fee[1],
            contract_size=contract,
            venue_symbol=_venue_symbol(exchange, info),
            fee_cap=0.125 if option else None,
            premium_currency=(info.base if inverse else info.quote) if option else None,
            funding_interval_hours=profile.funding_interval_hours if info.kind is InstrumentKind.SWAP else None,
        )

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        try:
            self.get(str(key[0]), str(key[1]))
        except UnknownInstrumentError:
            return False
        return True

    def with_instruments(self, instruments: Iterable[Instrument]) -> Registry:
        merged = dict(self.instruments)
        merged.update({(i.exchange, i.symbol): i for i in instruments})
        return dataclasses.replace(self, instruments=merged)

    def with_fees(self, exchange: str, kind: str | InstrumentKind, *, maker: float, taker: float) -> Registry:
        """Override a venue's fee tier for one market kind (explicit instruments of that kind too)."""
        kind = InstrumentKind(kind)
        self.profile(exchange)
        if not (-0.01 <= maker <= 0.05 and 0.0 <= taker <= 0.05):
            raise ValueError(f"fees for {exchange} {kind.value} out of range: maker={maker}, taker={taker}")
        fees = dict(self.fees)
        fees[(exchange, kind)] = (maker, taker)
        instruments = {
            k: (dataclasses.replace(v, maker_fee=maker, taker_fee=taker) if k[0] == exchange and v.kind is kind else v)
            for k, v in self.instruments.items()
        }
        return dataclasses.replace(self, fees=fees, instruments=instruments)

    def with_profile(self, profile: VenueProfile) -> Registry:
        profiles = dict(self.profiles)
        profiles[profile.exchange] = profile
        return dataclasses.replace(self, profiles=profiles)

    def with_transfer(self, route: TransferRoute) -> Registry:
        transfers = dict(self.transfers)
        transfers[route.asset] = route
        return dataclasses.replace(self, transfers=transfers)


def default_registry() -> Registry:
    """The six venues with their public base-tier fees, latency profiles and withdrawal routes."""
    return Registry(fees=dict(_FEES), profiles=dict(_PROFILES), transfers=dict(_TRANSFERS))
