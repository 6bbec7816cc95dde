"""The adapter contract shared by every venue parser.

An adapter turns one raw WebSocket message (bytes, exactly as received) into rows of :mod:`arbkit.schema`'s
tables.  It is pure: no I/O, no clock (the caller passes ``ts_recv``), no state other than caches of symbol
mappings, so recorded messages replay to the same rows forever.

Two output shapes, one parse:

* :meth:`Adapter.parse_rows` returns :class:`Rows`: plain tuples in each table's column order (cheap, what the
  micro-batcher appends to its column buffers) plus, for order-book channels, one :class:`BookUpdate` for the
  book keeper (:mod:`live.book`).
* :meth:`Adapter.parse` wraps the same rows into Polars frames with the tables' exact schemas (:class:`Parsed`).
* :meth:`Adapter.parse_quote_tuple` is the fast path for top-of-book messages: one ``QUOTES`` row tuple or
  ``None`` when the message carries no self-contained top of book.
* :meth:`Adapter.parse_quote_batch` reads many top-of-book messages of one channel at once (what a connector
  received in one socket read): their ``QUOTES`` rows, exactly what :meth:`parse_rows` gives message by message,
  or ``None`` when any message is not a plain two-sided top of book (an ack, a one-sided book, a malformed
  message), and the caller then parses message by message so each error is counted with its own snippet.
  :meth:`Adapter.parse_book_batch` does the same for order-book pushes (their :class:`BookUpdate` objects).
* :meth:`Adapter.parse_quote_columns` reads one socket read's buffer (messages at byte offsets) with a compiled
  JSON kernel (:mod:`live.adapters._fastjson`) straight into :class:`~live.adapters.QuoteColumns`: the rows
  :meth:`parse_quote_batch` would give, or ``None`` under the same rules (and a few more: it declines what it
  cannot read bit for bit).  :meth:`Adapter.parse_book_columns` does it for Bybit ``orderbook.1`` snapshots.

Every malformed input raises the adapter's :class:`ParseError` subclass, never a bare ``KeyError`` or
``ValueError`` from deep inside, so a connector can count and skip bad frames without swallowing real bugs.
An absent side (empty string, empty level list, zero price) stays ``None``: a missing bid is not a bid of 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.instruments import InstrumentKind, SymbolError, SymbolInfo, expiry_ns, parse_symbol
from live.adapters._fastjson import Plan, SymbolTable, extract

if TYPE_CHECKING:
    from live.adapters._columns import QuoteColumns

__all__ = [
    "BOOK_RULES",
    "GREEKS_SCHEMA",
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
]

#: ``(ts_event, ts_recv, exchange, symbol, bid, bid_size, ask, ask_size, seq, flags)``: QUOTES column order.
QuoteRow = tuple[int, int, str, str, float | None, float | None, float | None, float | None, int | None, int]
#: ``(ts_event, ts_recv, exchange, symbol, trade_id, side, price, size, flags)``: TRADES column order.
TradeRow = tuple[int, int, str, str, str | None, str | None, float, float, int]
#: ``(ts_event, ts_recv, exchange, symbol, side, level, price, size, seq, flags)``: BOOK column order.
BookRow = tuple[int, int, str, str, str, int, float, float, int | None, int]
#: ``(ts_event, ts_recv, exchange, symbol, funding_rate, predicted_rate, next_funding_time, mark, index, flags)``.
FundingRow = tuple[int, int, str, str, float, float | None, int | None, float | None, float | None, int]
#: OPTION_QUOTES column order (see :data:`arbkit.schema.OPTION_QUOTES`).
OptionQuoteRow = tuple[
    int,
    int,
    str,
    str,
    str,
    int,
    float,
    str,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    int,
]
#: ``(ts_event, ts_recv, exchange, symbol, delta, gamma, vega, theta, rho)``: venue-computed option greeks.
GreeksRow = tuple[int, int, str, str, float | None, float | None, float | None, float | None, float | None]
#: Polars schema of :attr:`Parsed.greeks` (not an arbkit table yet: OPTION_QUOTES has no greek columns).
GREEKS_SCHEMA = pl.Schema(
    {
        "ts_event": pl.Int64,
        "ts_recv": pl.Int64,
        "exchange": pl.String,
        "symbol": pl.String,
        "delta": pl.Float64,
        "gamma": pl.Float64,
        "vega": pl.Float64,
        "theta": pl.Float64,
        "rho": pl.Float64,
    }
)
#: One price level: ``(price, size, price_text, size_text)``; the texts are what the venue sent (checksums).
Level = tuple[float, float, str, str]

#: Book-maintenance rule names a :class:`BookUpdate` may carry; :mod:`live.book` implements each.
BOOK_RULES: tuple[str, ...] = (
    "binance_spot",
    "binance_futures",
    "okx",
    "bybit",
    "coinbase",
    "kraken",
    "deribit",
    "replace",
)

_INF = math.inf
_NS_PER_MS = 1_000_000


class ParseError(Exception):
    """A message the adapter cannot turn into rows: malformed bytes, an unknown symbol, a bad value.

    Every venue adapter raises its own subclass (``adapter.ParseError``), so a caller may catch one venue's
    errors or all of them (``live.adapters.ParseError``).
    """

    venue: ClassVar[str] = ""


_ParseError = ParseError  # the Adapter class attribute below shadows the name inside the class body


class BookUpdate(msgspec.Struct, frozen=True, gc=False):
    """One order-book message in venue-neutral form, for :class:`live.book.BookKeeper`.

    A frozen ``msgspec.Struct`` (built in C: a frozen dataclass's ``__init__`` sets its 15 fields one
    ``object.__setattr__`` at a time, which was half the cost of parsing a Bybit ``orderbook.1`` push); not
    tracked by the garbage collector, as it holds only numbers, strings and tuples of them.

    ``seq`` is the message's own sequence number (Binance final update id ``u``, OKX ``seqId``, Bybit ``u``,
    Kraken none, Deribit ``change_id``, Coinbase ``sequence_num``); ``prev_seq`` the venue's pointer to the
    previous message (Binance futures ``pu``, OKX ``prevSeqId``, Deribit ``prev_change_id``) and ``first_seq``
    the first update id a diff covers (Binance ``U``).  ``rule`` names the venue rule that decides whether the
    update continues the book (see :data:`BOOK_RULES`).  ``checksum`` is the venue's stated checksum, ``None``
    when it sent none; ``depth`` is the book depth the venue maintains for this subscription, when fixed.
    """

    exchange: str
    symbol: str
    rule: str
    is_snapshot: bool
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event: int
    ts_recv: int
    seq: int | None = None
    prev_seq: int | None = None
    first_seq: int | None = None
    checksum: int | None = None
    depth: int | None = None
    price_precision: int | None = None
    size_precision: int | None = None


@dataclass(slots=True)
class Rows:
    """Rows one message produced, per table, as tuples in the table's column order."""

    quotes: list[QuoteRow] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)
    book: list[BookRow] = field(default_factory=list)
    funding: list[FundingRow] = field(default_factory=list)
    option_quotes: list[OptionQuoteRow] = field(default_factory=list)
    book_updates: list[BookUpdate] = field(default_factory=list)
    greeks: list[GreeksRow] = field(default_factory=list)

    @property
    def book_update(self) -> BookUpdate | None:
        """The message's book update (the last one when a message carries several books), or ``None``."""
        return self.book_updates[-1] if self.book_updates else None

    @property
    def empty(self) -> bool:
        """True for messages that carry no market data (acks, pongs, heartbeats)."""
        return not (self.quotes or self.trades or self.book or self.funding or self.option_quotes or self.book_updates)


_POLARS_SCHEMAS: dict[str, pl.Schema] = {}


def polars_schema(table: schema.Table) -> pl.Schema:
    """``table.polars``, derived once per table (deriving it costs far more than building a small frame)."""
    hit = _POLARS_SCHEMAS.get(table.name)
    if hit is None:
        hit = _POLARS_SCHEMAS[table.name] = table.polars
    return hit


def rows_frame(rows: Sequence[tuple[Any, ...]], table: schema.Table) -> pl.DataFrame:
    """Build a frame with ``table``'s exact schema from row tuples in the table's column order.

    Row orientation with a cached schema measured fastest for the one-to-few rows a message yields (column
    dicts cost about five times more here).
    """
    return pl.DataFrame(rows, schema=polars_schema(table), orient="row")


@dataclass(slots=True)
class Parsed:
    """The schema frames one message produced; a table is ``None`` when the message had none of its rows.

    ``book_updates`` are the structured book messages for the book keeper (empty outside book channels;
    ``book_update`` is the last of them or ``None``).

    Examples
    --------
    >>> from live import adapters
    >>> raw = b'{"u":1,"s":"BTCUSDT","b":"100.5","B":"2","a":"101","A":"3"}'
    >>> out = adapters.get("binance").parse(raw, ts_recv=1_700_000_000_000_000_000)
    >>> out.quotes.select("symbol", "bid", "ask").row(0)
    ('BTC/USDT', 100.5, 101.0)
    >>> out.trades is None, out.empty
    (True, False)
    """

    quotes: pl.DataFrame | None = None
    trades: pl.DataFrame | None = None
    book: pl.DataFrame | None = None
    funding: pl.DataFrame | None = None
    option_quotes: pl.DataFrame | None = None
    book_updates: list[BookUpdate] = field(default_factory=list)
    greeks: pl.DataFrame | None = None

    @property
    def book_update(self) -> BookUpdate | None:
        """The message's book update (the last one when a message carries several books), or ``None``."""
        return self.book_updates[-1] if self.book_updates else None

    @property
    def empty(self) -> bool:
        return (
            self.quotes is None
            and self.trades is None
            and self.book is None
            and self.funding is None
            and self.option_quotes is None
            and not self.book_updates
        )

    @classmethod
    def from_rows(cls, rows: Rows) -> Parsed:
        """Wrap :class:`Rows` into frames; tables without rows stay ``None``."""
        return cls(
            quotes=rows_frame(rows.quotes, schema.QUOTES) if rows.quotes else None,
            trades=rows_frame(rows.trades, schema.TRADES) if rows.trades else None,
            book=rows_frame(rows.book, schema.BOOK) if rows.book else None,
            funding=rows_frame(rows.funding, schema.FUNDING) if rows.funding else None,
            option_quotes=rows_frame(rows.option_quotes, schema.OPTION_QUOTES) if rows.option_quotes else None,
            book_updates=rows.book_updates,
            greeks=pl.DataFrame(rows.greeks, schema=GREEKS_SCHEMA, orient="row") if rows.greeks else None,
        )


# Decoder failures that mean "bad message", turned into the adapter's ParseError at the parse boundary.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    SymbolError,
    UnicodeDecodeError,
)


class Adapter:
    """Base class of the venue adapters: subclasses implement :meth:`parse_rows` and the symbol maps.

    Attributes
    ----------
    exchange : str
        CCXT exchange id.
    market : str
        The market family this adapter instance reads (``spot``, ``linear``, ``inverse``, ``option`` or ``all``
        when the venue's own symbols say it).
    channels : tuple of str
        The channel names :meth:`subscribe_message` accepts.
    """

    exchange: ClassVar[str] = ""
    markets: ClassVar[tuple[str, ...]] = ("spot",)
    channels: ClassVar[tuple[str, ...]] = ()
    ParseError: ClassVar[type[_ParseError]] = ParseError

    def __init__(self, market: str | None = None) -> None:
        market = market or self.markets[0]
        if market not in self.markets:
            raise ValueError(f"{self.exchange} adapter: unknown market {market!r} (known: {', '.join(self.markets)})")
        self.market = market
        self._unified: dict[str, str] = {}
        self._options: dict[str, tuple[str, int, float, str]] = {}
        self._symbol_table = SymbolTable()  # venue symbols already in _unified, for the compiled kernel

    def __repr__(self) -> str:
        return f"{type(self).__name__}(market={self.market!r})"

    # -- parsing --------------------------------------------------------------------------------------------
    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        """Rows of every table the message produced; raises :attr:`ParseError` on malformed input."""
        raise NotImplementedError

    def parse(self, raw: bytes, ts_recv: int) -> Parsed:
        """Schema frames the message produced (``None`` per absent table); raises :attr:`ParseError`."""
        return Parsed.from_rows(self.parse_rows(raw, ts_recv))

    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """The message's top-of-book ``QUOTES`` row, or ``None`` when it carries no self-contained quote.

        Subclasses override this with a decoder specialised for their top-of-book channel; the default goes
        through :meth:`parse_rows`.
        """
        rows = self.parse_rows(raw, ts_recv)
        return rows.quotes[-1] if rows.quotes else None

    def parse_quote_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[QuoteRow] | None:
        """``QUOTES`` rows of many top-of-book messages, or ``None`` to have the caller parse one by one.

        Where not ``None``, equal to ``[q for raw in raws for q in self.parse_rows(raw, ts_recv).quotes]`` (one
        row per message; no other table).  The base class never batches; venues with a top-of-book channel do.
        """
        return None

    def parse_book_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[BookUpdate] | None:
        """Book updates of many order-book messages, or ``None`` to have the caller parse one by one.

        Where not ``None``, equal to ``[u for raw in raws for u in self.parse_rows(raw, ts_recv).book_updates]``
        and those messages produce no other rows (the book keeper makes the quotes).  The base class never
        batches; venues whose book pushes are plain do.
        """
        return None

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``QUOTES`` rows of the messages ``buf[starts[i]:ends[i]]`` (one socket read) as columns, or ``None``.

        Where not ``None``, ``columns.rows()`` equals :meth:`parse_quote_batch` of the same payloads (and, message
        by message, :meth:`parse_quote_tuple`), floats bit for bit; ``None`` whenever any message is not a plain
        two-sided top of book the compiled reader takes exactly (the caller then goes message by message).  A
        symbol is known to it once the slow path mapped it.  The base class never reads columns.
        """
        return None

    def parse_book_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """Order-book snapshots that carry one level per side, as columns for
        :meth:`live.book.Books.apply_snapshot_columns`, or ``None`` (see :meth:`parse_quote_columns`).

        Each row is the snapshot's own top of book (event time and update id as the message says; ``level_texts``
        keeps the level texts); the keeper turns them into the quotes it emits.  Only Bybit implements it.
        """
        return None

    def _columns(
        self,
        plan: Plan,
        buf: bytes,
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        ts_recv: int,
        *,
        exclude_options: bool = False,
        level_texts: bool = False,
    ) -> QuoteColumns | None:
        """Run ``plan`` over the messages with this adapter's symbol table (rebuilt when the cache grew)."""
        from live.adapters._columns import QuoteColumns  # the module imports this one

        table = self._symbol_table
        table.sync(self._unified, _not_option if exclude_options else None)
        out = extract(plan, table, buf, starts, ends, ts_recv)
        if out is None:
            return None
        values = out.values
        return QuoteColumns(
            self.exchange,
            ts_recv,
            out.ts_event,
            out.symbol_code,
            table.names,
            values[0],
            values[1],
            values[2],
            values[3],
            out.seq,
            out.seq_valid,
            out.flags,
            (bytes(buf), out.spans) if level_texts else None,
        )

    # -- symbols --------------------------------------------------------------------------------------------
    def unified_symbol(self, venue_symbol: str) -> str:
        """Unified CCXT symbol of a venue symbol; :attr:`ParseError` when unknown or unparsable."""
        hit = self._unified.get(venue_symbol)
        if hit is not None:
            return hit
        if not isinstance(venue_symbol, str) or not venue_symbol or len(venue_symbol) > 64:
            raise self.ParseError(f"{self.exchange}: bad symbol {venue_symbol!r}")
        try:
            unified = self._to_unified(venue_symbol)
            parse_symbol(unified)
        except self.ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.ParseError(f"{self.exchange}: cannot map symbol {venue_symbol!r}: {exc}") from None
        if len(self._unified) < 100_000:
            self._unified[venue_symbol] = unified
        return unified

    def venue_symbol(self, unified: str) -> str:
        """The venue's spelling of a unified symbol (what :meth:`subscribe_message` takes)."""
        try:
            info = parse_symbol(unified)
        except SymbolError as exc:
            raise self.ParseError(f"{self.exchange}: {exc}") from None
        return self._to_venue(info)

    def _to_unified(self, venue_symbol: str) -> str:
        raise NotImplementedError

    def _to_venue(self, info: SymbolInfo) -> str:
        raise NotImplementedError

    def option_terms(self, unified: str) -> tuple[str, int, float, str]:
        """``(underlying, expiry_ns, strike, option_type)`` of a unified option symbol (cached)."""
        hit = self._options.get(unified)
        if hit is None:
            info = parse_symbol(unified)
            if info.kind is not InstrumentKind.OPTION or info.expiry is None or info.strike is None:
                raise self.ParseError(f"{self.exchange}: {unified!r} is not an option")
            hit = (f"{info.base}/{info.quote}", expiry_ns(info.expiry), info.strike, info.option_type or "C")
            self._options[unified] = hit
        return hit

    # -- subscriptions --------------------------------------------------------------------------------------
    def subscribe_message(self, channel: str, venue_symbols: Iterable[str]) -> bytes:
        """The venue's subscribe request for ``channel`` on ``venue_symbols``, as bytes to send."""
        raise NotImplementedError

    def _check_channel(self, channel: str) -> None:
        if channel not in self.channels:
            raise ValueError(f"{self.exchange}: unknown channel {channel!r} (known: {', '.join(self.channels)})")

    # -- helpers shared by the venues -----------------------------------------------------------------------
    def error(self, message: str) -> _ParseError:
        return self.ParseError(f"{self.exchange}: {message}")

    def price(self, text: str | float | None) -> float | None:
        """A price, ``None`` when absent (``""``, ``None`` or 0 mean 'no level'); non-finite or negative fails."""
        if text is None or text == "":
            return None
        value = float(text)
        if 0.0 < value < _INF:
            return value
        if value == 0.0:
            return None
        raise self.error(f"bad price {text!r}")

    def size(self, text: str | float | None) -> float | None:
        """A size, ``None`` when absent; negative or non-finite fails."""
        if text is None or text == "":
            return None
        value = float(text)
        if 0.0 <= value < _INF:
            return value
        raise self.error(f"bad size {text!r}")

    def number(self, text: str | float | None) -> float | None:
        """Any finite number (funding rates may be negative), ``None`` when absent."""
        if text is None or text == "":
            return None
        value = float(text)
        if -_INF < value < _INF:
            return value
        raise self.error(f"bad number {text!r}")

    def levels(self, raw_levels: Iterable[Sequence[str]]) -> tuple[Level, ...]:
        """Book levels ``[price, size, ...]`` as :data:`Level` tuples; size 0 is kept (it deletes a level)."""
        out = []
        for item in raw_levels:
            price_text = item[0]
            size_text = item[1]
            price = float(price_text)
            size = float(size_text)
            if not (0.0 < price < _INF and 0.0 <= size < _INF):
                raise self.error(f"bad book level {list(item)!r}")
            out.append((price, size, price_text, size_text))
        return tuple(out)

    def timestamp_ms(self, value: int | str | None, fallback: int) -> int:
        """Venue milliseconds to ns; ``fallback`` (the receive time) when the message has no event time."""
        if value is None or value == "":
            return fallback
        ms = int(value)
        if ms <= 0 or ms > 10**14:
            raise self.error(f"bad timestamp {value!r}")
        return ms * _NS_PER_MS


def _not_option(unified: str) -> bool:
    """Unified option symbols end in ``-C`` / ``-P``: their rows go to OPTION_QUOTES, never through columns."""
    return unified[-2:-1] != "-"


def level_quote(
    ts_event: int,
    ts_recv: int,
    exchange: str,
    symbol: str,
    bid: Level | None,
    ask: Level | None,
    seq: int | None,
    flags: int,
) -> QuoteRow:
    """A ``QUOTES`` row from the best bid and ask levels (an absent side stays ``None``)."""
    return (
        ts_event,
        ts_recv,
        exchange,
        symbol,
        bid[0] if bid else None,
        bid[1] if bid else None,
        ask[0] if ask else None,
        ask[1] if ask else None,
        seq,
        flags,
    )


#: Month abbreviations as venues write expiries (``26DEC25``).
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def dmy_expiry(text: str) -> str:
    """A venue's ``26DEC25`` / ``3JAN25`` expiry as the unified symbol's ``251226`` / ``250103`` (Deribit, Bybit).

    >>> dmy_expiry("3JAN25")
    '250103'
    """
    day, month, year = text[:-5], text[-5:-2], text[-2:]
    if not (day.isdigit() and 1 <= len(day) <= 2 and year.isdigit() and month in MONTHS):
        raise ValueError(f"bad expiry {text!r}")
    return f"{year}{MONTHS.index(month) + 1:02d}{int(day):02d}"


_ISO_SECONDS: dict[str, int] = {}


def iso_to_ns(text: str) -> int:
    """RFC 3339 UTC timestamp (``2026-04-07T14:30:03.123456789Z``) to integer ns, keeping every digit.

    The whole-second part is cached (a feed's timestamps share it for a second at a time).

    Examples
    --------
    >>> iso_to_ns("2023-10-06T17:35:55.440295Z")
    1696613755440295000
    """
    n = len(text)
    if n in (30, 27):  # 9 or 6 fraction digits (Coinbase, Kraken) after a second already seen: no checks left
        seconds = _ISO_SECONDS.get(text[:19])
        if seconds is not None and text[19] == "." and text[-1] == "Z":
            digits = text[20:-1]
            if digits.isdigit():
                return seconds * 1_000_000_000 + int(digits) * (1 if n == 30 else 1_000)
    if not text.endswith("Z") or n < 20 or text[10] != "T":
        raise ValueError(f"not an RFC 3339 UTC timestamp: {text!r}")
    head = text[:19]
    seconds = _ISO_SECONDS.get(head)
    if seconds is None:
        if not (text[4] == text[7] == "-" and text[13] == text[16] == ":"):
            raise ValueError(f"not an RFC 3339 UTC timestamp: {text!r}")
        whole = dt.datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            0,
            dt.UTC,
        )
        seconds = int(whole.timestamp())
        if len(_ISO_SECONDS) > 4096:
            _ISO_SECONDS.clear()
        _ISO_SECONDS[head] = seconds
    frac = text[19:-1]
    nanos = 0
    if frac:
        digits = frac[1:]
        if frac[0] != "." or not digits.isdigit() or len(digits) > 9:
            raise ValueError(f"bad fraction in timestamp {text!r}")
        nanos = int(digits.ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos
