"""Per-venue wire protocols of the exchange simulator: requests parsed, acks and market data encoded.

Every encoder speaks one venue's documented public stream layout, so the real adapters (:mod:`live.adapters`)
parse what the simulator sends:

=========  ==================================  =====================================================
venue      channels                            other protocol pieces
=========  ==================================  =====================================================
binance    ``<sym>@bookTicker`` (spot ``u s b  ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``;
           B a A``; USD-M adds ``e E T``),     ``.../stream`` is the combined endpoint (payloads
           ``<sym>@depth5|10|20`` from BOOK    wrapped in ``{"stream", "data"}``); ping frames;
           rows                                ``serverShutdown`` event
okx        ``bbo-tbt``, ``tickers``, ``books`` ``{"op": "subscribe"}`` -> ``{"event": "subscribe"}``;
           (snapshot, then updates chained by  text ``ping`` -> ``pong``; ``notice`` 64008 before a
           ``prevSeqId``, CRC32 ``checksum``), service-upgrade disconnect
           ``books5`` from BOOK rows
bybit      ``orderbook.1`` (``u`` contiguous   ``{"op": "subscribe"}`` -> ``success``; ``{"op":
           per topic), ``orderbook.50`` from   "ping"}`` -> ``pong``
           BOOK rows
coinbase   Advanced Trade ``ticker``           ``subscriptions`` ack; per-connection
                                               ``sequence_num``; ``heartbeats`` channel
kraken     v2 ``ticker`` and ``book`` (JSON    ``status`` greeting; ``subscribe`` ack with
           numbers; CRC32 over top 10 levels   ``time_in``/``time_out``; ``ping``/``pong``;
           at the pair's precision)            ``heartbeat`` every second
deribit    ``ticker.<inst>.100ms``, ``quote``  JSON-RPC 2.0 ``public/subscribe``;
                                               ``public/set_heartbeat`` -> ``test_request``
=========  ==================================  =====================================================

Also replayed from the store: ``FUNDING`` rows on Binance USD-M ``<sym>@markPrice`` (``markPriceUpdate``; no
predicted rate on the wire), Bybit ``tickers`` (no predicted rate) and OKX ``funding-rate`` (no mark or index
price); ``OPTION_QUOTES`` rows on Deribit ``ticker.<option>.100ms`` (IVs in percent, see :func:`percent_text`).
Binance's diff stream ``<sym>@depth@100ms`` (``depthUpdate`` with ``U``/``u``, USD-M ``pu``) follows the quotes'
one-level book; its REST snapshot is served by the server (``GET .../api/v3/depth``, ``.../fapi/v1/depth``).

Numbers are written with the shortest text that reads back as the same float (``repr``, never an exponent), so
a round trip through the simulator and an adapter reproduces prices and sizes bit for bit.  Event times are
written at each venue's resolution (ms; Coinbase ns; Kraken µs).
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import orjson
import polars as pl

from arbkit.instruments import InstrumentKind, parse_symbol
from live.simulator._framing import Stamp

__all__ = [
    "ENCODERS",
    "BookSnapshot",
    "Encoder",
    "FundingTick",
    "OptionTick",
    "Reply",
    "SessionState",
    "Tick",
    "event_stamp",
    "format_number",
    "format_numbers",
    "kraken_checksum",
    "okx_checksum",
    "row_market",
    "set_texts",
    "with_number_texts",
]


def format_number(value: float) -> str:
    """Shortest decimal text that reads back as ``value`` (no exponent), as venues write prices.

    Examples
    --------
    >>> format_number(0.00001), format_number(65000.5), format_number(3.0)
    ('0.00001', '65000.5', '3')
    """
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = np.format_float_positional(float(value), trim="-")
    elif text.endswith(".0"):
        text = text[:-2]
    return text


def format_numbers(values: pl.Series) -> pl.Series:
    """:func:`format_number` of a whole column at once (null stays null), for the replay's vectorised rendering.

    Polars writes the same shortest round-trip digits as ``repr``; only its ``.0`` suffix differs, and the rare
    exponent, NaN and infinity texts are rewritten by :func:`format_number` itself.

    Examples
    --------
    >>> format_numbers(pl.Series([0.00001, 65000.5, 3.0, None])).to_list()
    ['0.00001', '65000.5', '3', None]
    """
    text = values.cast(pl.Float64).cast(pl.String)
    odd = text.str.contains("[eNi]")
    text = text.str.strip_suffix(".0")
    if odd.any():
        where = odd.fill_null(False).arg_true()
        text = text.scatter(where, [format_number(v) for v in values.gather(where).to_list()])
    return text


def with_number_texts(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (quote columns ``bid``, ``bid_size``, ``ask``, ``ask_size``) plus the texts :meth:`Encoder.render`
    reads: ``bid_text``, ``bid_size_text``, ``ask_text``, ``ask_size_text``, null where the value is."""
    names = ("bid", "bid_size", "ask", "ask_size")
    return rows.with_columns(format_numbers(rows.get_column(name)).alias(f"{name}_text") for name in names)


def _iso_texts(digits: int, stamped: bool) -> pl.Expr:
    """:func:`_iso` of the ``ts_event`` column (``digits`` of 6 or 9), or its placeholder when ``stamped``."""
    if stamped:
        return pl.lit(_PLACEHOLDERS[_STAMP_US if digits == 6 else _STAMP_NS])
    return pl.col("ts_event").cast(pl.Datetime("ns")).dt.strftime(f"%Y-%m-%dT%H:%M:%S%.{digits}fZ")


def _concat(rows: pl.DataFrame, parts: list[str | pl.Expr]) -> pl.Series:
    """One text per row: literals and string columns joined (every part must be non-null)."""
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in parts]
    return rows.select(pl.concat_str(exprs)).to_series()


def _text(name: str, absent: str = "") -> pl.Expr:
    """A prepared number text column, ``absent`` where the value is null (``tick.<name> or absent``)."""
    return pl.col(name).fill_null(absent)


def _ms(stamped: bool) -> pl.Expr:
    """The ``ts_event`` column in integer milliseconds as text, or its placeholder when ``stamped``."""
    if stamped:
        return pl.lit(_PLACEHOLDERS[_STAMP_MS])
    return (pl.col("ts_event") // 1_000_000).cast(pl.String)


def _one_level(side: str, tail: str) -> pl.Expr:
    """``[["price","size"<tail>]]`` for a side that is present, ``[]`` otherwise (OKX and Bybit level lists)."""
    level = pl.concat_str(
        [pl.lit('[["'), pl.col(f"{side}_text"), pl.lit('","'), _text(f"{side}_size_text"), pl.lit(tail)]
    )
    return pl.when(pl.col(side).is_not_null()).then(level).otherwise(pl.lit("[]"))


def _with_number_texts(rows: pl.DataFrame, exprs: dict[str, pl.Expr]) -> pl.DataFrame:
    """``rows`` plus text columns of computed floats (:func:`format_numbers` of each expression)."""
    values = rows.select(**exprs)
    return rows.with_columns(format_numbers(values.get_column(name)).alias(name) for name in exprs)


def okx_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX order-book checksum: CRC32 of ``bid:size:ask:size:...`` over the best 25 levels, as a signed int32.

    Examples
    --------
    >>> okx_checksum([("3366.1", "7")], [("3366.8", "9")])  # crc32(b"3366.1:7:3366.8:9") as int32
    -2058547290
    """
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    crc = binascii.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def kraken_checksum(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]], precision: tuple[int, int] | None
) -> int:
    """Kraken v2 book checksum: unsigned CRC32 over the top 10 asks (lowest first) then top 10 bids (highest first).

    Every price and quantity is written at the pair's precision, the '.' removed and leading zeros stripped.

    Examples
    --------
    >>> kraken_checksum([(45283.5, 0.1)], [(45285.2, 0.001)], (1, 8))  # crc32(b"452852100000" b"452835" b"10000000")
    2383917627
    """
    parts: list[str] = []
    for levels in (sorted(asks)[:10], sorted(bids, reverse=True)[:10]):
        for price, qty in levels:
            for value, digits in (
                (price, precision[0] if precision else None),
                (qty, precision[1] if precision else None),
            ):
                text = f"{value:.{digits}f}" if digits is not None else format_number(value)
                parts.append(text.replace(".", "").lstrip("0"))
    return binascii.crc32("".join(parts).encode())


def row_market(symbol: str) -> str:
    """The adapter market family of a unified symbol: ``spot``, ``linear``, ``inverse`` or ``option``."""
    info = parse_symbol(symbol)
    if info.kind is InstrumentKind.SPOT:
        return "spot"
    if info.kind is InstrumentKind.OPTION:
        return "option"
    return "linear" if info.linear else "inverse"


@dataclass(slots=True)
class Tick:
    """One top-of-book update as the venue would publish it (texts prepared once, shared by all sessions)."""

    ts_event: int
    symbol: str
    venue_symbol: str
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None
    seq: int
    bid_text: str = ""
    bid_size_text: str = ""
    ask_text: str = ""
    ask_size_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def set_texts(tick: Tick) -> Tick:
    """Fill ``tick``'s number texts (``""`` where the value is absent); returns it."""
    tick.bid_text = format_number(tick.bid) if tick.bid is not None else ""
    tick.bid_size_text = format_number(tick.bid_size) if tick.bid_size is not None else ""
    tick.ask_text = format_number(tick.ask) if tick.ask is not None else ""
    tick.ask_size_text = format_number(tick.ask_size) if tick.ask_size is not None else ""
    return tick


@dataclass(slots=True)
class BookSnapshot:
    """Top-N levels of one instrument at one instant, from the ``BOOK`` table (level texts prepared once)."""

    ts_event: int
    symbol: str
    venue_symbol: str
    bids: list[tuple[str, str]]  # best first
    asks: list[tuple[str, str]]
    seq: int


@dataclass(slots=True)
class FundingTick:
    """One ``FUNDING`` row as a venue's funding stream would publish it."""

    ts_event: int
    symbol: str
    venue_symbol: str
    funding_rate: float
    predicted_rate: float | None
    next_funding_time: int | None
    mark_price: float | None
    index_price: float | None


@dataclass(slots=True)
class OptionTick:
    """One ``OPTION_QUOTES`` row as an option ticker would publish it (IVs as fractions, 0.5 = 50 %)."""

    ts_event: int
    symbol: str
    venue_symbol: str
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None
    bid_iv: float | None
    ask_iv: float | None
    mark_price: float | None
    mark_iv: float | None
    underlying_price: float | None


def percent_text(fraction: float) -> str:
    """Text of ``fraction`` in percent (as Deribit writes IVs) that reads back, divided by 100, as ``fraction``.

    The nearest float to ``fraction * 100`` is tried first, then its neighbours a few ulps away.

    Examples
    --------
    >>> percent_text(0.5123), float(percent_text(0.5123)) / 100 == 0.5123
    ('51.23', True)
    """
    center = fraction * 100.0
    candidate = center
    for step in range(16):
        candidate = center
        for _ in range(step // 2 + step % 2):
            candidate = math.nextafter(candidate, math.inf if step % 2 else -math.inf)
        if candidate / 100.0 == fraction:
            return format_number(candidate)
    return format_number(center)


def _opt(name: str, value: float | None, quoted: bool = True) -> str:
    """``,"name":"value"`` (or an unquoted JSON number) when ``value`` is known, else nothing."""
    if value is None:
        return ""
    text = format_number(value)
    return f',"{name}":"{text}"' if quoted else f',"{name}":{text}'


@dataclass(slots=True)
class SessionState:
    """What the simulator knows about one client connection."""

    subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (channel, venue symbol)
    synced: set[tuple[str, str]] = field(default_factory=set)  # book channels that got their snapshot
    sequence: int = 0  # per-connection message counter (Coinbase sequence_num)
    heartbeat_s: float | None = None  # application heartbeat period requested or implied
    heartbeat_counter: int = 0
    combined: bool = False  # Binance combined-stream connection: payloads wrapped in {"stream", "data"}


@dataclass(slots=True)
class Reply:
    """Result of a client request: messages to send back and subscription changes."""

    messages: list[str] = field(default_factory=list)
    subscribed: list[tuple[str, str]] = field(default_factory=list)
    unsubscribed: list[tuple[str, str]] = field(default_factory=list)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


@functools.lru_cache(maxsize=256)
def _iso_seconds(seconds: int) -> str:
    # per-message encoding (restamped replay: every message of a run has the same second) formats a second once
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _iso(ns: int, digits: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    base = _iso_seconds(seconds)
    if digits == 0:
        return base + "Z"
    return f"{base}.{str(frac).rjust(9, '0')[:digits]}Z"


# Event-time formats of a stamped render (Encoder.render_texts(..., stamped=True)): placeholder byte -> width of
# the text it stands for.  Integer milliseconds have 13 digits from 2001-09-09 to 2286-11-20; the ISO-8601 texts
# are as wide for any 4-digit year.  event_stamp() refuses a time whose texts are not these widths.
_STAMP_MS, _STAMP_US, _STAMP_NS = 1, 2, 3  # Binance/Bybit/OKX/Deribit ms; Kraken µs ISO; Coinbase ns ISO
_STAMP_WIDTHS = {_STAMP_MS: 13, _STAMP_US: 27, _STAMP_NS: 30}
_PLACEHOLDERS = {kind: chr(kind) * width for kind, width in _STAMP_WIDTHS.items()}


def event_stamp(now_ns: int) -> Stamp:
    """The texts a send at ``now_ns`` writes over a stamped render's placeholders, as :meth:`Encoder.encode` writes
    an event time of ``now_ns`` (ms integer, µs and ns ISO-8601)."""
    seconds, frac = divmod(now_ns, 1_000_000_000)
    base, digits = _iso_seconds(seconds), f"{frac:09d}"  # _iso(now_ns, 6) and _iso(now_ns, 9), formatted once
    texts = {_STAMP_MS: str(now_ns // 1_000_000), _STAMP_US: f"{base}.{digits[:6]}Z", _STAMP_NS: f"{base}.{digits}Z"}
    if len(texts[_STAMP_MS]) != 13 or len(base) != 19:
        raise ValueError(f"event time {now_ns} ns writes {texts}, not {_STAMP_WIDTHS} characters wide")
    return Stamp(texts, now_ns)


class Encoder:
    """Base of the venue encoders; one instance per simulator path (venue and market)."""

    venue: ClassVar[str] = ""
    default_channel: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()
    book_channels: ClassVar[tuple[str, ...]] = ()
    depth_channels: ClassVar[tuple[str, ...]] = ()  # channels replaying BOOK table snapshots
    diff_channels: ClassVar[tuple[str, ...]] = ()  # diff streams synced by a REST snapshot (no push on subscribe)
    funding_channels: ClassVar[tuple[str, ...]] = ()  # channels replaying FUNDING rows
    option_channels: ClassVar[tuple[str, ...]] = ()  # channels replaying OPTION_QUOTES rows
    # Top-of-book channels whose messages need no state kept by prepare(): the replay renders them for many
    # ticks at once (render) and each session only finishes the text (emit).
    rendered_channels: ClassVar[tuple[str, ...]] = ()
    snapshot_first: ClassVar[bool] = False  # a session's first message per channel and symbol is a snapshot

    def __init__(self, market: str) -> None:
        self.market = market
        self._books: dict[str, tuple[tuple[str, str] | None, tuple[str, str] | None]] = {}
        self._book_seq: dict[str, int] = {}
        self._book_prev: dict[str, int] = {}

    # -- requests -------------------------------------------------------------------------------------------
    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        """Handle one client message; unknown or malformed requests get the venue's error reply."""
        raise NotImplementedError

    # -- market data ----------------------------------------------------------------------------------------
    def prepare(self, tick: Tick) -> None:
        """Once per tick: number texts and any book state derived from it."""
        set_texts(tick)

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        """The data message for ``tick`` on ``channel`` for this session (``None`` to send nothing)."""
        raise NotImplementedError

    def render(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> list[str]:
        """Messages of a :attr:`rendered_channels` channel for many ticks at once, one per row of ``rows``.

        ``rows`` has the :class:`Tick` fields as columns (``ts_event``, ``symbol``, ``venue_symbol``, ``bid``,
        ``bid_size``, ``ask``, ``ask_size``, ``seq``) and the number texts (``bid_text``, ``bid_size_text``,
        ``ask_text``, ``ask_size_text``, :func:`format_numbers` of the values, null where the value is).  The
        texts equal what :meth:`encode` writes for a session that is past its first message on the channel,
        once :meth:`emit` has finished them; a test holds the two byte for byte.  When ``stamped``, every event
        time is left as a fixed-width placeholder (``ts_event`` is not read) for :func:`event_stamp`'s texts to
        fill in at send time, so a restamped replay renders ahead too.
        """
        return self.render_texts(channel, rows, stamped=stamped).to_list()  # type: ignore[no-any-return]

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        """:meth:`render`'s messages as one String column (the replay packs them into frames without a Python
        string per message)."""
        raise NotImplementedError(f"{self.venue} renders no {channel!r} messages")

    def emit(self, state: SessionState, channel: str, venue_symbol: str, text: str) -> str:
        """A rendered message as sent to one session (the per-connection parts filled in)."""
        return text

    def emit_plan(self, state: SessionState) -> str | None:
        """What :meth:`emit` does for this session, so the replay can frame rendered texts without calling it:
        ``"verbatim"`` (sent as rendered), ``"numbered"`` (the text's NUL mark replaced by ``state.sequence``,
        which counts the messages), ``None`` (something else: call :meth:`emit` per message)."""
        return "verbatim" if type(self).emit is Encoder.emit else None

    def encode_book(self, state: SessionState, channel: str, book: BookSnapshot) -> str | None:
        """The message for a stored book snapshot on a depth channel (``None`` where the venue has none)."""
        return None

    def encode_funding(self, state: SessionState, channel: str, row: FundingTick) -> str | None:
        """The message for a stored funding row on a funding channel (``None`` where the venue has none)."""
        return None

    def encode_option(self, state: SessionState, channel: str, row: OptionTick) -> str | None:
        """The message for a stored option quote on an option ticker channel (``None`` where none)."""
        return None

    def heartbeat(self, state: SessionState, now_ns: int) -> str | None:
        """An application heartbeat, for venues that send them."""
        return None

    def shutdown_notice(self, now_ns: int) -> str | None:
        """What the venue sends before a planned disconnect (service upgrade, 24-hour limit)."""
        return None

    def welcome(self, now_ns: int) -> str | None:
        """Message sent on connect, for venues that greet."""
        return None

    # -- derived one-level book (checksummed book channels) ------------------------------------------------
    def _book_step(self, tick: Tick) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Update the one-level book of ``tick.symbol``; returns the (bids, asks) delta as text pairs."""
        old_bid, old_ask = self._books.get(tick.symbol, (None, None))
        new_bid = (tick.bid_text, tick.bid_size_text) if tick.bid is not None else None
        new_ask = (tick.ask_text, tick.ask_size_text) if tick.ask is not None else None
        bids = _level_delta(old_bid, new_bid)
        asks = _level_delta(old_ask, new_ask)
        self._books[tick.symbol] = (new_bid, new_ask)
        return bids, asks

    def _book_levels(self, symbol: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bid, ask = self._books.get(symbol, (None, None))
        return ([bid] if bid else []), ([ask] if ask else [])


def _level_delta(old: tuple[str, str] | None, new: tuple[str, str] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if old is not None and (new is None or old[0] != new[0]):
        out.append((old[0], "0"))
    if new is not None:
        out.append(new)
    return out


# ---------------------------------------------------------------------------------------------------- Binance
class BinanceEncoder(Encoder):
    venue = "binance"
    default_channel = "bookTicker"
    channels = ("bookTicker", "depth5", "depth10", "depth20", "depth", "depth@100ms", "markPrice", "markPrice@1s")
    diff_channels = ("depth", "depth@100ms")
    funding_channels = ("markPrice", "markPrice@1s")
    rendered_channels = ("bookTicker",)

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        if channel != "bookTicker":
            return super().render_texts(channel, rows, stamped=stamped)
        bid, ask = pl.col("bid").is_not_null(), pl.col("ask").is_not_null()
        tail: list[str | pl.Expr] = [
            '","b":"',
            _text("bid_text", "0"),
            '","B":"',
            pl.when(bid).then(_text("bid_size_text")).otherwise(pl.lit("0")),
            '","a":"',
            _text("ask_text", "0"),
            '","A":"',
            pl.when(ask).then(_text("ask_size_text")).otherwise(pl.lit("0")),
            '"}',
        ]
        seq, sym = pl.col("seq").cast(pl.String), pl.col("venue_symbol")
        if self.market == "spot":
            return _concat(rows, ['{"u":', seq, ',"s":"', sym, *tail])
        ms = _ms(stamped)
        return _concat(rows, ['{"e":"bookTicker","u":', seq, ',"E":', ms, ',"T":', ms, ',"s":"', sym, *tail])

    def emit(self, state: SessionState, channel: str, venue_symbol: str, text: str) -> str:
        return self._wrap(state, channel, venue_symbol, text)

    def emit_plan(self, state: SessionState) -> str | None:
        return None if state.combined else "verbatim"

    def encode_funding(self, state: SessionState, channel: str, row: FundingTick) -> str | None:
        # USD-M markPriceUpdate: p mark, i index, P estimated settle price, r funding rate, T next funding time.
        # No predicted rate on Binance; P is sent as the mark (the store has no settle-price column).
        if self.market == "spot":
            return None
        ms = row.ts_event // 1_000_000
        next_ms = row.next_funding_time // 1_000_000 if row.next_funding_time is not None else 0
        payload = (
            f'{{"e":"markPriceUpdate","E":{ms},"s":"{row.venue_symbol}"{_opt("p", row.mark_price)}'
            f'{_opt("i", row.index_price)}{_opt("P", row.mark_price)},"r":"{format_number(row.funding_rate)}",'
            f'"T":{next_ms}}}'
        )
        return self._wrap(state, channel, row.venue_symbol, payload)

    depth_channels = ("depth5", "depth10", "depth20")

    def __init__(self, market: str) -> None:
        super().__init__(market)
        # diff depth stream: the one-level book each tick leaves, numbered by update ids per symbol
        self._deltas: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        self._update_id: dict[str, int] = {}  # last update id (u) per venue symbol
        self._first_id: dict[str, int] = {}  # U of the latest event per venue symbol
        self._prev_id: dict[str, int] = {}  # pu of the latest event (futures)

    def prepare(self, tick: Tick) -> None:
        super().prepare(tick)
        bids, asks = self._book_step(tick)
        self._deltas[tick.symbol] = (bids, asks)
        last = self._update_id.get(tick.venue_symbol, 1_000 * max(tick.seq, 1))
        # An event covers one update id per changed level (at least one).  Spot events chain by U = previous
        # u + 1.  USD-M events chain by pu = previous u; their U is the previous u, so that a REST snapshot taken
        # between two events (lastUpdateId = the earlier u) meets the docs' first-event rule U <= L <= u.
        self._prev_id[tick.venue_symbol] = last
        self._first_id[tick.venue_symbol] = last + 1 if self.market == "spot" else last
        self._update_id[tick.venue_symbol] = last + max(1, len(bids) + len(asks))

    def rest_depth(self, venue_symbol: str, symbol: str, limit: int) -> bytes:
        """Body of ``GET /api/v3/depth`` (spot) or ``/fapi/v1/depth`` (USD-M): the diff stream's current book."""
        bids, asks = self._book_levels(symbol)
        last = self._update_id.get(venue_symbol, 0)
        body: dict[str, Any] = {"lastUpdateId": last}
        if self.market != "spot":
            body["E"] = body["T"] = 0
        body["bids"] = [list(lv) for lv in bids[:limit]]
        body["asks"] = [list(lv) for lv in asks[:limit]]
        return orjson.dumps(body)

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        try:
            msg = orjson.loads(raw)
            method = msg["method"]
            req_id = msg.get("id")
            params = msg.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            reply.messages.append(_dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
            return reply
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            pairs = []
            for stream in params if isinstance(params, list) else []:
                name, _, channel = str(stream).partition("@")
                if channel not in self.channels:
                    reply.messages.append(
                        _dumps({"error": {"code": 2, "msg": f"Invalid request: {stream}"}, "id": req_id})
                    )
                    return reply
                pairs.append((channel, name.upper()))
            if method == "SUBSCRIBE":
                reply.subscribed.extend(pairs)
            else:
                reply.unsubscribed.extend(pairs)
            reply.messages.append(_dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            streams = sorted(f"{sym.lower()}@{ch}" for ch, sym in state.subscriptions)
            reply.messages.append(_dumps({"result": streams, "id": req_id}))
        else:
            reply.messages.append(_dumps({"error": {"code": 2, "msg": f"Unknown method {method}"}, "id": req_id}))
        return reply

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        ms = tick.ts_event // 1_000_000
        if channel in self.diff_channels:  # diff depth: no checksum on Binance books, nothing to corrupt
            bids, asks = self._deltas[tick.symbol]
            sym = tick.venue_symbol
            head = f'{{"e":"depthUpdate","E":{ms},'
            if self.market != "spot":
                head += f'"T":{ms},'
            ids = f'"U":{self._first_id[sym]},"u":{self._update_id[sym]}'
            if self.market != "spot":
                ids += f',"pu":{self._prev_id[sym]}'
            levels = f'"b":{_dumps([list(lv) for lv in bids])},"a":{_dumps([list(lv) for lv in asks])}'
            payload = f'{head}"s":"{sym}",{ids},{levels}}}'
            return self._wrap(state, channel, sym, payload)
        b, bq = (tick.bid_text, tick.bid_size_text) if tick.bid is not None else ("0", "0")
        a, aq = (tick.ask_text, tick.ask_size_text) if tick.ask is not None else ("0", "0")
        if self.market == "spot":
            out = f'{{"u":{tick.seq},"s":"{tick.venue_symbol}","b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}'
        else:
            out = (
                f'{{"e":"bookTicker","u":{tick.seq},"E":{ms},"T":{ms},"s":"{tick.venue_symbol}",'
                f'"b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}'
            )
        return self._wrap(state, channel, tick.venue_symbol, out)

    def _wrap(self, state: SessionState, channel: str, venue_symbol: str, payload: str) -> str:
        if not state.combined:
            return payload
        return f'{{"stream":"{venue_symbol.lower()}@{channel}","data":{payload}}}'

    def encode_book(self, state: SessionState, channel: str, book: BookSnapshot) -> str | None:
        # partial book depth streams: spot {"lastUpdateId", "bids", "asks"}; USD-M a depthUpdate event
        depth = int(channel.removeprefix("depth"))
        bids = _dumps([list(lv) for lv in book.bids[:depth]])
        asks = _dumps([list(lv) for lv in book.asks[:depth]])
        if self.market == "spot":
            payload = f'{{"lastUpdateId":{book.seq},"bids":{bids},"asks":{asks}}}'
        else:
            ms = book.ts_event // 1_000_000
            payload = (
                f'{{"e":"depthUpdate","E":{ms},"T":{ms},"s":"{book.venue_symbol}","U":{book.seq},"u":{book.seq},'
                f'"pu":{book.seq - 1},"b":{bids},"a":{asks}}}'
            )
        # a spot partial book names no symbol: only a combined-stream connection can tell whose book it is
        return self._wrap(state, channel, book.venue_symbol, payload)

    def shutdown_notice(self, now_ns: int) -> str | None:
        return _dumps({"e": "serverShutdown", "E": now_ns // 1_000_000})


# -------------------------------------------------------------------------------------------------------- OKX
class OkxEncoder(Encoder):
    venue = "okx"
    default_channel = "bbo-tbt"
    channels = ("bbo-tbt", "tickers", "books", "books5", "funding-rate")
    book_channels = ("books",)
    depth_channels = ("books5",)
    funding_channels = ("funding-rate",)
    rendered_channels = ("bbo-tbt", "tickers")

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        arg: list[str | pl.Expr] = [
            f'{{"arg":{{"channel":"{channel}","instId":"',
            pl.col("venue_symbol"),
            '"},"data":[',
        ]
        if channel == "bbo-tbt":
            asks, bids = _one_level("ask", '","0","1"]]'), _one_level("bid", '","0","1"]]')
            seq, ms = pl.col("seq").cast(pl.String), _ms(stamped)
            return _concat(rows, [*arg, '{"asks":', asks, ',"bids":', bids, ',"ts":"', ms, '","seqId":', seq, "}]}"])
        if channel != "tickers":
            return super().render_texts(channel, rows, stamped=stamped)
        inst_types = {s: self._inst_type(s) for s in rows.get_column("symbol").unique().to_list()}
        bid_or_ask = pl.coalesce(pl.col("bid_text"), pl.col("ask_text"), pl.lit(""))
        ticker: list[str | pl.Expr] = [
            '{"instType":"',
            pl.col("symbol").replace_strict(inst_types, return_dtype=pl.String),
            '","instId":"',
            pl.col("venue_symbol"),
            '","last":"',
            bid_or_ask,
            '","lastSz":"0","askPx":"',
            _text("ask_text"),
            '","askSz":"',
            _text("ask_size_text"),
            '","bidPx":"',
            _text("bid_text"),
            '","bidSz":"',
            _text("bid_size_text"),
            '","ts":"',
            _ms(stamped),
            '"}]}',
        ]
        return _concat(rows, [*arg, *ticker])

    def _inst_type(self, symbol: str) -> str:
        if parse_symbol(symbol).kind is InstrumentKind.FUTURE:
            return "FUTURES"
        return {"spot": "SPOT", "linear": "SWAP", "inverse": "SWAP", "option": "OPTION"}[row_market(symbol)]

    def encode_funding(self, state: SessionState, channel: str, row: FundingTick) -> str | None:
        # funding-rate push: fundingRate / fundingTime (the next settlement) / nextFundingRate (the predicted
        # rate, "" when OKX publishes none); OKX carries no mark or index price on this channel
        ms = row.ts_event // 1_000_000
        funding_ms = row.next_funding_time // 1_000_000 if row.next_funding_time is not None else 0
        data = {
            "fundingRate": format_number(row.funding_rate),
            "fundingTime": str(funding_ms) if funding_ms else "",
            "instId": row.venue_symbol,
            "instType": "SWAP",
            "method": "current_period",
            "nextFundingRate": format_number(row.predicted_rate) if row.predicted_rate is not None else "",
            "nextFundingTime": str(funding_ms + 8 * 3_600_000) if funding_ms else "",
            "ts": str(ms),
        }
        arg = f'{{"channel":"{channel}","instId":"{row.venue_symbol}"}}'
        return f'{{"arg":{arg},"data":[{_dumps(data)}]}}'

    def encode_book(self, state: SessionState, channel: str, book: BookSnapshot) -> str | None:
        data = {
            "asks": [[p, q, "0", "1"] for p, q in book.asks[:5]],
            "bids": [[p, q, "0", "1"] for p, q in book.bids[:5]],
            "instId": book.venue_symbol,
            "ts": str(book.ts_event // 1_000_000),
            "seqId": book.seq,
        }
        return f'{{"arg":{{"channel":"books5","instId":"{book.venue_symbol}"}},"data":[{_dumps(data)}]}}'

    def __init__(self, market: str) -> None:
        super().__init__(market)
        self._deltas: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        if raw in ("ping", b"ping"):
            reply.messages.append("pong")
            return reply
        try:
            msg = orjson.loads(raw)
            op = msg["op"]
            args = msg["args"]
            pairs = [(str(a["channel"]), str(a["instId"])) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            reply.messages.append(
                _dumps({"event": "error", "code": "60012", "msg": f"Invalid request: {raw!s:.100}", "connId": "sim"})
            )
            return reply
        req_id = msg.get("id")
        for channel, inst in pairs:
            if channel not in self.channels or op not in ("subscribe", "unsubscribe"):
                reply.messages.append(
                    _dumps(
                        {
                            "event": "error",
                            "code": "60018",
                            "msg": f"Wrong URL or channel:{channel},instId:{inst} doesn't exist",
                            "connId": "sim",
                        }
                    )
                )
                continue
            ack: dict[str, Any] = {"event": op, "arg": {"channel": channel, "instId": inst}, "connId": "sim"}
            if req_id is not None:
                ack = {"id": req_id, **ack}
            reply.messages.append(_dumps(ack))
            (reply.subscribed if op == "subscribe" else reply.unsubscribed).append((channel, inst))
        return reply

    def prepare(self, tick: Tick) -> None:
        super().prepare(tick)
        bids, asks = self._book_step(tick)
        self._deltas[tick.symbol] = (bids, asks)
        self._book_prev[tick.symbol] = self._book_seq.get(tick.symbol, -1)
        self._book_seq[tick.symbol] = tick.seq

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        ms = tick.ts_event // 1_000_000
        arg = f'{{"channel":"{channel}","instId":"{tick.venue_symbol}"}}'
        if channel == "bbo-tbt":
            bids = f'[["{tick.bid_text}","{tick.bid_size_text}","0","1"]]' if tick.bid is not None else "[]"
            asks = f'[["{tick.ask_text}","{tick.ask_size_text}","0","1"]]' if tick.ask is not None else "[]"
            return f'{{"arg":{arg},"data":[{{"asks":{asks},"bids":{bids},"ts":"{ms}","seqId":{tick.seq}}}]}}'
        if channel == "tickers":
            ticker: dict[str, str] = {
                "instType": self._inst_type(tick.symbol),
                "instId": tick.venue_symbol,
                "last": tick.bid_text or tick.ask_text,
                "lastSz": "0",
                "askPx": tick.ask_text,
                "askSz": tick.ask_size_text,
                "bidPx": tick.bid_text,
                "bidSz": tick.bid_size_text,
                "ts": str(ms),
            }
            return f'{{"arg":{arg},"data":[{_dumps(ticker)}]}}'
        # books: snapshot once per session, then deltas chained by prevSeqId -> seqId
        key = (channel, tick.venue_symbol)
        bids_book, asks_book = self._book_levels(tick.symbol)
        checksum = okx_checksum(bids_book, asks_book)
        if corrupt:
            checksum ^= 0x5A5A
        if key not in state.synced:
            state.synced.add(key)
            action, prev = "snapshot", -1
            delta_bids, delta_asks = bids_book, asks_book
        else:
            action, prev = "update", self._book_prev[tick.symbol]
            delta_bids, delta_asks = self._deltas[tick.symbol]
        data: dict[str, Any] = {
            "asks": [[p, s, "0", "1" if s != "0" else "0"] for p, s in delta_asks],
            "bids": [[p, s, "0", "1" if s != "0" else "0"] for p, s in delta_bids],
            "ts": str(ms),
            "checksum": checksum,
            "prevSeqId": prev,
            "seqId": tick.seq,
        }
        return f'{{"arg":{arg},"action":"{action}","data":[{_dumps(data)}]}}'

    def shutdown_notice(self, now_ns: int) -> str | None:
        return _dumps(
            {
                "event": "notice",
                "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": "sim",
            }
        )


# ------------------------------------------------------------------------------------------------------ Bybit
class BybitEncoder(Encoder):
    venue = "bybit"
    default_channel = "orderbook.1"
    channels = ("orderbook.1", "orderbook.50", "tickers")
    depth_channels = ("orderbook.50",)
    funding_channels = ("tickers",)
    rendered_channels = ("orderbook.1",)

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        if channel != "orderbook.1":
            return super().render_texts(channel, rows, stamped=stamped)
        sym, seq, ms = pl.col("venue_symbol"), pl.col("seq").cast(pl.String), _ms(stamped)
        b, a = _one_level("bid", '"]]'), _one_level("ask", '"]]')
        parts: list[str | pl.Expr] = [f'{{"topic":"{channel}.', sym, '","type":"snapshot","ts":', ms]
        parts += [',"data":{"s":"', sym, '","b":', b, ',"a":', a, ',"u":', seq, ',"seq":', seq, '},"cts":', ms, "}"]
        return _concat(rows, parts)

    def encode_funding(self, state: SessionState, channel: str, row: FundingTick) -> str | None:
        # linear tickers snapshot: fundingRate, nextFundingTime, markPrice, indexPrice (no predicted rate)
        ms = row.ts_event // 1_000_000
        next_ms = f',"nextFundingTime":"{row.next_funding_time // 1_000_000}"' if row.next_funding_time else ""
        data = (
            f'{{"symbol":"{row.venue_symbol}"{_opt("markPrice", row.mark_price)}{_opt("indexPrice", row.index_price)}'
            f',"fundingRate":"{format_number(row.funding_rate)}"{next_ms}}}'
        )
        return f'{{"topic":"{channel}.{row.venue_symbol}","type":"snapshot","data":{data},"cs":{ms},"ts":{ms}}}'

    def encode_book(self, state: SessionState, channel: str, book: BookSnapshot) -> str | None:
        ms = book.ts_event // 1_000_000
        data = {"s": book.venue_symbol, "b": book.bids[:50], "a": book.asks[:50], "u": book.seq, "seq": book.seq}
        return (
            f'{{"topic":"{channel}.{book.venue_symbol}","type":"snapshot","ts":{ms},"data":{_dumps(data)},"cts":{ms}}}'
        )

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        try:
            msg = orjson.loads(raw)
            op = msg["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            reply.messages.append(
                _dumps({"success": False, "ret_msg": "error:invalid request", "conn_id": "sim", "op": ""})
            )
            return reply
        req_id = msg.get("req_id")
        base: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": "sim"}
        if req_id is not None:
            base["req_id"] = req_id
        if op == "ping":
            reply.messages.append(_dumps({**base, "ret_msg": "pong", "op": "ping"}))
            return reply
        if op not in ("subscribe", "unsubscribe"):
            reply.messages.append(_dumps({**base, "success": False, "ret_msg": f"error:unknown op {op}", "op": op}))
            return reply
        pairs = []
        for topic in msg.get("args", []):
            channel, _, symbol = str(topic).rpartition(".")
            if channel not in self.channels:
                reply.messages.append(
                    _dumps({**base, "success": False, "ret_msg": f"error:handler not found,topic:{topic}", "op": op})
                )
                return reply
            pairs.append((channel, symbol))
        (reply.subscribed if op == "subscribe" else reply.unsubscribed).extend(pairs)
        reply.messages.append(_dumps({**base, "ret_msg": "subscribe" if op == "subscribe" else "", "op": op}))
        return reply

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        ms = tick.ts_event // 1_000_000
        b = f'[["{tick.bid_text}","{tick.bid_size_text}"]]' if tick.bid is not None else "[]"
        a = f'[["{tick.ask_text}","{tick.ask_size_text}"]]' if tick.ask is not None else "[]"
        return (
            f'{{"topic":"{channel}.{tick.venue_symbol}","type":"snapshot","ts":{ms},'
            f'"data":{{"s":"{tick.venue_symbol}","b":{b},"a":{a},"u":{tick.seq},"seq":{tick.seq}}},"cts":{ms}}}'
        )


# --------------------------------------------------------------------------------------------------- Coinbase
class CoinbaseEncoder(Encoder):
    venue = "coinbase"
    default_channel = "ticker"
    channels = ("ticker", "heartbeats")
    rendered_channels = ("ticker",)
    snapshot_first = True

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        # the connection's sequence_num is left as a NUL mark (never part of JSON text) for emit() to fill in
        if channel != "ticker":
            return super().render_texts(channel, rows, stamped=stamped)
        bid_or_ask = pl.coalesce(pl.col("bid_text"), pl.col("ask_text"), pl.lit(""))
        ask_or_bid = pl.coalesce(pl.col("ask_text"), pl.col("bid_text"), pl.lit(""))
        parts: list[str | pl.Expr] = [
            '{"channel":"ticker","client_id":"","timestamp":"',
            _iso_texts(9, stamped),
            '","sequence_num":\x00,"events":[{"type":"update","tickers":[{"type":"ticker","product_id":"',
            pl.col("venue_symbol"),
            '","price":"',
            bid_or_ask,
            '","volume_24_h":"0","low_24_h":"',
            bid_or_ask,
            '","high_24_h":"',
            ask_or_bid,
            '","low_52_w":"',
            bid_or_ask,
            '","high_52_w":"',
            ask_or_bid,
            '","price_percent_chg_24_h":"0","best_bid":"',
            _text("bid_text"),
            '","best_bid_quantity":"',
            _text("bid_size_text"),
            '","best_ask":"',
            _text("ask_text"),
            '","best_ask_quantity":"',
            _text("ask_size_text"),
            '"}]}]}',
        ]
        return _concat(rows, parts)

    def emit(self, state: SessionState, channel: str, venue_symbol: str, text: str) -> str:
        head, _, tail = text.partition("\x00")
        out = f"{head}{state.sequence}{tail}"
        state.sequence += 1
        return out

    def emit_plan(self, state: SessionState) -> str | None:
        return "numbered"

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        try:
            msg = orjson.loads(raw)
            kind = msg["type"]
            channel = msg["channel"]
            products = [str(p) for p in msg.get("product_ids", [])]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            reply.messages.append(_dumps({"type": "error", "message": "Failed to parse request"}))
            return reply
        if kind not in ("subscribe", "unsubscribe") or channel not in self.channels:
            reply.messages.append(_dumps({"type": "error", "message": f"Unknown channel or type {channel!r}"}))
            return reply
        pairs = [(channel, p) for p in products] if channel != "heartbeats" else [("heartbeats", "")]
        if kind == "subscribe":
            reply.subscribed.extend(pairs)
            current = state.subscriptions | set(pairs)
            if channel == "heartbeats":
                state.heartbeat_s = 1.0
        else:
            reply.unsubscribed.extend(pairs)
            current = state.subscriptions - set(pairs)
            if channel == "heartbeats":
                state.heartbeat_s = None
        by_channel: dict[str, list[str]] = {}
        for ch, product in sorted(current):
            by_channel.setdefault(ch, [])
            if product:
                by_channel[ch].append(product)
        reply.messages.append(self._envelope(state, "subscriptions", now_ns, [{"subscriptions": by_channel}]))
        return reply

    def _envelope(self, state: SessionState, channel: str, now_ns: int, events: list[Any]) -> str:
        out = _dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": _iso(now_ns, 9),
                "sequence_num": state.sequence,
                "events": events,
            }
        )
        state.sequence += 1
        return out

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        key = (channel, tick.venue_symbol)
        kind = "update" if key in state.synced else "snapshot"
        state.synced.add(key)
        ticker = {
            "type": "ticker",
            "product_id": tick.venue_symbol,
            "price": tick.bid_text or tick.ask_text,
            "volume_24_h": "0",
            "low_24_h": tick.bid_text or tick.ask_text,
            "high_24_h": tick.ask_text or tick.bid_text,
            "low_52_w": tick.bid_text or tick.ask_text,
            "high_52_w": tick.ask_text or tick.bid_text,
            "price_percent_chg_24_h": "0",
            "best_bid": tick.bid_text,
            "best_bid_quantity": tick.bid_size_text,
            "best_ask": tick.ask_text,
            "best_ask_quantity": tick.ask_size_text,
        }
        return self._envelope(state, "ticker", tick.ts_event, [{"type": kind, "tickers": [ticker]}])

    def heartbeat(self, state: SessionState, now_ns: int) -> str | None:
        if state.heartbeat_s is None:
            return None
        state.heartbeat_counter += 1
        seconds, frac = divmod(now_ns, 1_000_000_000)
        current = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        event = {"current_time": f"{current}.{frac:09d} +0000 UTC", "heartbeat_counter": state.heartbeat_counter}
        return self._envelope(state, "heartbeats", now_ns, [event])


# ----------------------------------------------------------------------------------------------------- Kraken
class KrakenEncoder(Encoder):
    venue = "kraken"
    default_channel = "ticker"
    channels = ("ticker", "book")
    book_channels = ("book",)
    rendered_channels = ("ticker",)
    snapshot_first = True

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        if channel != "ticker":
            return super().render_texts(channel, rows, stamped=stamped)
        # last/high are the bid's or the ask's own text; only the mid (vwap) is a new number to format
        bid, ask = pl.col("bid").fill_null(0.0), pl.col("ask").fill_null(0.0)
        rows = _with_number_texts(rows, {"_mid": (bid + ask) / 2}).with_columns(
            _last=pl.when(bid != 0.0).then(pl.col("bid_text")).otherwise(_text("ask_text", "0")),
            _high=pl.when(ask != 0.0).then(pl.col("ask_text")).otherwise(_text("bid_text", "0")),
        )
        rows = rows.with_columns(
            _vwap=pl.when((bid != 0.0) & (ask != 0.0)).then(pl.col("_mid")).otherwise(pl.col("_last"))
        )
        parts: list[str | pl.Expr] = [
            '{"channel":"ticker","type":"update","data":[{"symbol":"',
            pl.col("venue_symbol"),
            '","bid":',
            _text("bid_text", "0"),
            ',"bid_qty":',
            _text("bid_size_text", "0"),
            ',"ask":',
            _text("ask_text", "0"),
            ',"ask_qty":',
            _text("ask_size_text", "0"),
            ',"last":',
            pl.col("_last"),
            ',"volume":0,"vwap":',
            pl.col("_vwap"),
            ',"low":',
            pl.col("_last"),
            ',"high":',
            pl.col("_high"),
            ',"change":0,"change_pct":0,"timestamp":"',
            _iso_texts(6, stamped),
            '"}]}',
        ]
        return _concat(rows, parts)

    def __init__(self, market: str) -> None:
        super().__init__(market)
        self._deltas: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        try:
            from live.adapters.kraken import PRECISION

            self.precision: dict[str, tuple[int, int]] = dict(PRECISION)
        except ImportError:
            self.precision = {}

    def prepare(self, tick: Tick) -> None:
        super().prepare(tick)
        self._deltas[tick.symbol] = self._book_step(tick)

    def welcome(self, now_ns: int) -> str | None:
        status = {"api_version": "v2", "connection_id": 1, "system": "online", "version": "2.0.0"}
        return _dumps({"channel": "status", "type": "update", "data": [status]})

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        try:
            msg = orjson.loads(raw)
            method = msg["method"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            reply.messages.append(_dumps({"error": "Malformed request", "method": "", "success": False}))
            return reply
        req_id = msg.get("req_id")
        stamps = {"time_in": _iso(now_ns, 6), "time_out": _iso(now_ns, 6)}
        if method == "ping":
            out: dict[str, Any] = {"method": "pong"}
            if req_id is not None:
                out["req_id"] = req_id
            reply.messages.append(_dumps({**out, **stamps}))
            return reply
        if method not in ("subscribe", "unsubscribe"):
            reply.messages.append(_dumps({"error": f"Method not found: {method}", "method": method, "success": False}))
            return reply
        params = msg.get("params") or {}
        channel = params.get("channel")
        if channel not in self.channels:
            reply.messages.append(
                _dumps({"error": f"Channel {channel} not found", "method": method, "success": False, **stamps})
            )
            return reply
        state.heartbeat_s = 1.0
        for symbol in params.get("symbol", []):
            result: dict[str, Any] = {"channel": channel, "snapshot": True, "symbol": symbol}
            if channel == "book":
                result["depth"] = int(params.get("depth", 10))
            else:
                result["event_trigger"] = "bbo"
            ack: dict[str, Any] = {"method": method, "result": result, "success": True}
            if req_id is not None:
                ack["req_id"] = req_id
            reply.messages.append(_dumps({**ack, **stamps}))
            (reply.subscribed if method == "subscribe" else reply.unsubscribed).append((channel, str(symbol)))
        return reply

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        key = (channel, tick.venue_symbol)
        kind = "update" if key in state.synced else "snapshot"
        state.synced.add(key)
        if channel == "book":
            return self._book(tick, kind, corrupt)
        bid = tick.bid if tick.bid is not None else 0.0
        ask = tick.ask if tick.ask is not None else 0.0
        data = (
            f'{{"symbol":"{tick.venue_symbol}","bid":{tick.bid_text or "0"},"bid_qty":{tick.bid_size_text or "0"},'
            f'"ask":{tick.ask_text or "0"},"ask_qty":{tick.ask_size_text or "0"},"last":{format_number(bid or ask)},'
            f'"volume":0,"vwap":{format_number((bid + ask) / 2 if bid and ask else bid or ask)},'
            f'"low":{format_number(bid or ask)},"high":{format_number(ask or bid)},"change":0,"change_pct":0,'
            f'"timestamp":"{_iso(tick.ts_event, 6)}"}}'
        )
        return f'{{"channel":"ticker","type":"{kind}","data":[{data}]}}'

    def _book(self, tick: Tick, kind: str, corrupt: bool) -> str:
        if kind == "snapshot":
            bids, asks = self._book_levels(tick.symbol)
        else:
            bids, asks = self._deltas[tick.symbol]
        full_bids, full_asks = self._book_levels(tick.symbol)
        checksum = kraken_checksum(
            [(float(p), float(q)) for p, q in full_bids],
            [(float(p), float(q)) for p, q in full_asks],
            self.precision.get(tick.venue_symbol),
        )
        if corrupt:
            checksum ^= 0x5A5A
        data = (
            f'{{"symbol":"{tick.venue_symbol}","bids":[{_kraken_levels(bids)}],"asks":[{_kraken_levels(asks)}],'
            f'"checksum":{checksum},"timestamp":"{_iso(tick.ts_event, 6)}"}}'
        )
        return f'{{"channel":"book","type":"{kind}","data":[{data}]}}'

    def heartbeat(self, state: SessionState, now_ns: int) -> str | None:
        return '{"channel":"heartbeat"}' if state.heartbeat_s is not None else None


def _kraken_levels(levels: list[tuple[str, str]]) -> str:
    """v2 book levels as JSON objects with number values (the texts are already valid JSON numbers)."""
    return ",".join(f'{{"price":{price},"qty":{qty}}}' for price, qty in levels)


# ---------------------------------------------------------------------------------------------------- Deribit
class DeribitEncoder(Encoder):
    venue = "deribit"
    default_channel = "ticker"
    channels = ("ticker", "quote")
    option_channels = ("ticker",)
    rendered_channels = ("ticker", "quote")

    def render_texts(self, channel: str, rows: pl.DataFrame, *, stamped: bool = False) -> pl.Series:
        if channel not in self.rendered_channels:
            return super().render_texts(channel, rows, stamped=stamped)
        sym, ms = pl.col("venue_symbol"), _ms(stamped)
        quote: list[str | pl.Expr] = [
            '"best_bid_price":',
            _text("bid_text", "0"),
            ',"best_bid_amount":',
            _text("bid_size_text", "0"),
            ',"best_ask_price":',
            _text("ask_text", "0"),
            ',"best_ask_amount":',
            _text("ask_size_text", "0"),
        ]
        head: list[str | pl.Expr] = ['{"jsonrpc":"2.0","method":"subscription","params":{"channel":"']
        if channel == "quote":
            data = ['{"timestamp":', ms, ',"instrument_name":"', sym, '",', *quote, "}"]
            return _concat(rows, [*head, "quote.", sym, '","data":', *data, "}}"])
        bid, ask = pl.col("bid").fill_null(0.0), pl.col("ask").fill_null(0.0)
        mid = (
            pl.when((bid != 0.0) & (ask != 0.0))
            .then((bid + ask) / 2)
            .otherwise(pl.when(bid != 0.0).then(bid).otherwise(ask))
        )
        rows = _with_number_texts(rows, {"_mid": mid})
        m = pl.col("_mid")
        data = ['{"timestamp":', ms, ',"state":"open","instrument_name":"', sym, '",', *quote]
        data += [',"mark_price":', m, ',"index_price":', m, ',"last_price":', m, ',"min_price":0,"max_price":0']
        data += [',"open_interest":0,"settlement_price":', m, ',"stats":{"volume":0,"price_change":0,"low":', m]
        data += [',"high":', m, "}}"]
        return _concat(rows, [*head, "ticker.", sym, '.100ms","data":', *data, "}}"])

    def encode_option(self, state: SessionState, channel: str, row: OptionTick) -> str | None:
        # option ticker: prices in the base coin, IVs in percent, an absent side as price 0 / amount 0
        ms = row.ts_event // 1_000_000
        bid = format_number(row.bid) if row.bid is not None else "0"
        ask = format_number(row.ask) if row.ask is not None else "0"
        bid_amount = format_number(row.bid_size) if row.bid is not None and row.bid_size is not None else "0"
        ask_amount = format_number(row.ask_size) if row.ask is not None and row.ask_size is not None else "0"
        ivs = "".join(
            f',"{name}":{percent_text(value)}'
            for name, value in (("bid_iv", row.bid_iv), ("ask_iv", row.ask_iv), ("mark_iv", row.mark_iv))
            if value is not None
        )
        data = (
            f'{{"timestamp":{ms},"state":"open","instrument_name":"{row.venue_symbol}",'
            f'"best_bid_price":{bid},"best_bid_amount":{bid_amount},"best_ask_price":{ask},'
            f'"best_ask_amount":{ask_amount}{ivs}{_opt("mark_price", row.mark_price, quoted=False)}'
            f'{_opt("underlying_price", row.underlying_price, quoted=False)},"interest_rate":0,'
            f'"open_interest":0,"stats":{{"volume":0,"price_change":0}}}}'
        )
        name = f"ticker.{row.venue_symbol}.100ms"
        return f'{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"{name}","data":{data}}}}}'

    def on_request(self, state: SessionState, raw: str | bytes, now_ns: int) -> Reply:
        reply = Reply()
        stamps = {"usIn": now_ns // 1000, "usOut": now_ns // 1000, "usDiff": 0, "testnet": False}
        try:
            msg = orjson.loads(raw)
            method = msg["method"]
            req_id = msg.get("id")
            params = msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            reply.messages.append(
                _dumps({"jsonrpc": "2.0", "error": {"message": "Invalid request", "code": 11050}, **stamps})
            )
            return reply
        if method in ("public/subscribe", "public/unsubscribe"):
            pairs = []
            for name in params.get("channels", []):
                parts = str(name).split(".")
                if len(parts) < 2 or parts[0] not in self.channels:
                    reply.messages.append(
                        _dumps({"jsonrpc": "2.0", "id": req_id, "error": {"message": "invalid_params", "code": -32602}})
                    )
                    return reply
                pairs.append((parts[0], parts[1]))
            (reply.subscribed if method == "public/subscribe" else reply.unsubscribed).extend(pairs)
            result = list(params.get("channels", []))
            reply.messages.append(_dumps({"jsonrpc": "2.0", "id": req_id, "result": result, **stamps}))
        elif method == "public/set_heartbeat":
            state.heartbeat_s = float(params.get("interval", 10))
            reply.messages.append(_dumps({"jsonrpc": "2.0", "id": req_id, "result": "ok", **stamps}))
        elif method == "public/disable_heartbeat":
            state.heartbeat_s = None
            reply.messages.append(_dumps({"jsonrpc": "2.0", "id": req_id, "result": "ok", **stamps}))
        elif method == "public/test":
            reply.messages.append(_dumps({"jsonrpc": "2.0", "id": req_id, "result": {"version": "1.2.26"}, **stamps}))
        else:
            reply.messages.append(
                _dumps({"jsonrpc": "2.0", "id": req_id, "error": {"message": "Method not found", "code": -32601}})
            )
        return reply

    def encode(self, state: SessionState, channel: str, tick: Tick, *, corrupt: bool = False) -> str | None:
        ms = tick.ts_event // 1_000_000
        bid = tick.bid_text or "0"
        ask = tick.ask_text or "0"
        bid_amount = tick.bid_size_text or "0"
        ask_amount = tick.ask_size_text or "0"
        if channel == "quote":
            data = (
                f'{{"timestamp":{ms},"instrument_name":"{tick.venue_symbol}","best_bid_price":{bid},'
                f'"best_bid_amount":{bid_amount},"best_ask_price":{ask},"best_ask_amount":{ask_amount}}}'
            )
            name = f"quote.{tick.venue_symbol}"
        else:
            mid = format_number(
                ((tick.bid or 0.0) + (tick.ask or 0.0)) / 2 if tick.bid and tick.ask else (tick.bid or tick.ask or 0.0)
            )
            data = (
                f'{{"timestamp":{ms},"state":"open","instrument_name":"{tick.venue_symbol}",'
                f'"best_bid_price":{bid},"best_bid_amount":{bid_amount},'
                f'"best_ask_price":{ask},"best_ask_amount":{ask_amount},'
                f'"mark_price":{mid},"index_price":{mid},"last_price":{mid},"min_price":0,"max_price":0,'
                f'"open_interest":0,"settlement_price":{mid},'
                f'"stats":{{"volume":0,"price_change":0,"low":{mid},"high":{mid}}}}}'
            )
            name = f"ticker.{tick.venue_symbol}.100ms"
        return f'{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"{name}","data":{data}}}}}'

    def heartbeat(self, state: SessionState, now_ns: int) -> str | None:
        if state.heartbeat_s is None:
            return None
        return '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'


#: Encoder class per venue (CCXT id).
ENCODERS: dict[str, type[Encoder]] = {
    cls.venue: cls for cls in (BinanceEncoder, OkxEncoder, BybitEncoder, CoinbaseEncoder, KrakenEncoder, DeribitEncoder)
}
