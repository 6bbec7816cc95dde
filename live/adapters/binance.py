"""Binance spot and USD-M futures market streams.

Layouts follow the official docs:

* spot: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams (bookTicker, depth diff
  and partial depth, trade, aggTrade) and REST ``GET /api/v3/depth`` for the snapshot a diff stream syncs to;
* USD-M futures: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
  (bookTicker with ``E``/``T``, depthUpdate with ``pu``, aggTrade, markPriceUpdate carrying funding).

Messages arrive raw (``/ws/<stream>``) or wrapped by the combined endpoint (``{"stream": ..., "data": ...}``);
both are accepted, whatever the whitespace or key order, and so are the arrays all-market streams push
(``!markPrice@arr``: one event per symbol).  An error reply (``{"code": 2, "msg": ...}``) raises ParseError.
Spot ``bookTicker`` carries no event time: ``ts_event`` is then the receive time.  Event time is the futures
transaction time ``T`` when present (when the match engine changed the book), else ``E``.  The market
(``spot`` or ``linear`` for USD-M) is fixed per adapter because ``BTCUSDT`` names both.
"""

# ruff: noqa: N815  (wire structs keep the venue's field names so msgspec maps them without renames)
from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from arbkit.instruments import InstrumentKind, SymbolInfo
from live.adapters._base import (
    _INF,
    DECODE_ERRORS,
    Adapter,
    BookRow,
    BookUpdate,
    Level,
    ParseError,
    QuoteRow,
    Rows,
    level_quote,
)
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import (
    K_ABSENT,
    K_CONST,
    K_FLOAT_STR,
    K_INT_NUM,
    K_STR,
    K_SYMBOL,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["BinanceAdapter", "BinanceParseError"]

# Quote assets, longest first so that "FDUSD" wins over "USD" and "USDT" over "USD".
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB", "JPY")


class BinanceParseError(ParseError):
    venue = "binance"


class _Msg(msgspec.Struct):
    """Every Binance market-stream payload in one struct: fields absent from a message stay None."""

    e: str | None = None
    E: int | None = None
    T: int | None = None
    s: str | None = None
    u: int | None = None
    U: int | None = None
    pu: int | None = None
    b: str | int | list[tuple[str, str]] | None = None
    B: str | None = None
    a: str | int | list[tuple[str, str]] | None = None
    A: str | None = None
    p: str | None = None
    q: str | None = None
    t: int | None = None
    m: bool | None = None
    i: str | None = None
    P: str | None = None
    r: str | None = None
    lastUpdateId: int | None = None
    bids: list[tuple[str, str]] | None = None
    asks: list[tuple[str, str]] | None = None
    # a combined-stream wrapper the byte-prefix check missed (whitespace, another key order): re-read as one
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    # an error reply to a request: {"code": 2, "msg": "Invalid request: ..."}
    code: int | None = None
    msg: str | None = None


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: _Msg | list[_Msg] | None = None  # all-market streams (!markPrice@arr) push an array of events


class _BookTicker(msgspec.Struct):
    """bookTicker for the fast path: numbers decoded from their strings inside msgspec (``strict=False``)."""

    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    T: int | None = None
    E: int | None = None
    # keys that send the full path down another branch (combined wrapper, error reply): present, they fail here
    stream: None = None
    data: None = None
    code: None = None
    msg: None = None


class _BookTickerCombined(msgspec.Struct):
    data: _BookTicker


_decode_msg = msgspec.json.Decoder(_Msg).decode
_decode_any = msgspec.json.Decoder(_Msg | list[_Msg]).decode  # raw all-market streams push a bare array
_decode_env = msgspec.json.Decoder(_Envelope).decode
_decode_bt = msgspec.json.Decoder(_BookTicker, strict=False).decode
_decode_bt_combined = msgspec.json.Decoder(_BookTickerCombined, strict=False).decode


# bookTicker for the compiled reader: what the full path reads (``_Msg``) and the keys it would type-check or that
# would send it down another branch (depth snapshots, trades), which decline.
_PRICE = Leaf(K_FLOAT_STR, required=True)
_BOOK_TICKER = Obj(
    {
        "e": Leaf(K_CONST, nullable=True, consts=("bookTicker",)),
        "u": Leaf(K_INT_NUM, required=True, nonneg=False),
        "s": Leaf(K_SYMBOL, required=True),
        "b": _PRICE,
        "B": _PRICE,
        "a": _PRICE,
        "A": _PRICE,
        "E": Leaf(K_INT_NUM, nullable=True),
        "T": Leaf(K_INT_NUM, nullable=True),
        **{
            key: Leaf(K_ABSENT)
            for key in (
                *("U", "pu", "p", "q", "t", "m", "i", "P", "r", "lastUpdateId", "bids", "asks"),
                *("stream", "data", "code", "msg"),
            )
        },
    }
)
_BOOK_TICKER_PLAN = compile_plan(
    _BOOK_TICKER,
    Roles(("s",), ("b",), ("B",), ("a",), ("A",), ts=("T",), ts_fallback=("E",), ts_missing_ok=True, seq=("u",)),
    # the full path reads the combined envelope only when the bytes start exactly so
    alt=(b'{"stream":', Obj({"stream": Leaf(K_STR, nullable=True), "data": _BOOK_TICKER})),
)


def _is_partial(stream: str) -> bool:
    channel = stream.partition("@")[2].partition("@")[0]
    return channel in ("depth5", "depth10", "depth20")


class BinanceAdapter(Adapter):
    """Binance spot (``market="spot"``) and USD-M futures (``market="linear"``).

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("binance", "linear")
    >>> ad.unified_symbol("BTCUSDT"), ad.venue_symbol("ETH/USDT:USDT")
    ('BTC/USDT:USDT', 'ETHUSDT')
    >>> row = ad.parse_quote_tuple(b'{"e":"bookTicker","u":7,"E":1000,"T":999,"s":"BTCUSDT",'
    ...                            b'"b":"100","B":"1","a":"101","A":"2"}', ts_recv=5)
    >>> row[0], row[3], row[4:8], row[8]
    (999000000, 'BTC/USDT:USDT', (100.0, 1.0, 101.0, 2.0), 7)
    """

    exchange = "binance"
    markets = ("spot", "linear")
    channels = ("bookTicker", "depth", "depth@100ms", "depth5", "depth10", "depth20", "trade", "aggTrade", "markPrice")
    ParseError = BinanceParseError

    def __init__(self, market: str | None = None) -> None:
        super().__init__(market)
        self._rule = "binance_spot" if self.market == "spot" else "binance_futures"

    # -- symbols --------------------------------------------------------------------------------------------
    def _to_unified(self, venue_symbol: str) -> str:
        code, _, expiry = venue_symbol.partition("_")
        if not code.isalnum() or code.upper() != code:
            raise self.error(f"bad symbol {venue_symbol!r}")
        for quote in _QUOTES:
            if code.endswith(quote) and len(code) > len(quote):
                base = code[: -len(quote)]
                break
        else:
            raise self.error(f"unknown quote asset in {venue_symbol!r}")
        if self.market == "spot":
            if expiry:
                raise self.error(f"dated symbol {venue_symbol!r} on the spot market")
            return f"{base}/{quote}"
        if expiry:
            if len(expiry) != 6 or not expiry.isdigit():
                raise self.error(f"bad expiry in {venue_symbol!r}")
            return f"{base}/{quote}:{quote}-{expiry}"
        return f"{base}/{quote}:{quote}"

    def _to_venue(self, info: SymbolInfo) -> str:
        code = f"{info.base}{info.quote}"
        if self.market == "spot":
            if info.kind is not InstrumentKind.SPOT:
                raise self.error(f"{info} is not a spot symbol")
            return code
        if info.settle != info.quote or info.kind is InstrumentKind.OPTION or info.kind is InstrumentKind.SPOT:
            raise self.error(f"USD-M lists linear swaps and futures only, not {info}")
        if info.expiry is not None:
            return f"{code}_{info.expiry.strftime('%y%m%d')}"
        return code

    def _stream_symbol(self, stream: str) -> str:
        name = stream.partition("@")[0]
        return self.unified_symbol(name.upper())

    # -- subscriptions --------------------------------------------------------------------------------------
    def subscribe_message(self, channel: str, venue_symbols: Iterable[str], request_id: int = 1) -> bytes:
        """``{"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", ...], "id": 1}``.

        Examples
        --------
        >>> from live.adapters import get
        >>> get("binance").subscribe_message("depth@100ms", ["BTCUSDT"])
        b'{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}'
        """
        self._check_channel(channel)
        params = [f"{s.lower()}@{channel}" for s in venue_symbols]
        return orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": request_id})

    def snapshot_url(self, venue_symbol: str, limit: int = 1000, *, base: str) -> str:
        """REST depth snapshot URL the connector fetches to sync a diff stream (spot or USD-M).

        ``base`` is the REST host, always explicit (the venue's own from configuration, or the simulator's
        ``SimulatorHandle.rest_url``): no code path reaches a venue's host by default.

        Examples
        --------
        >>> from live.adapters import get
        >>> get("binance", "linear").snapshot_url("BTCUSDT", base="http://127.0.0.1:9/binance/linear")
        'http://127.0.0.1:9/binance/linear/fapi/v1/depth?symbol=BTCUSDT&limit=1000'
        """
        path = "/api/v3/depth" if self.market == "spot" else "/fapi/v1/depth"
        return f"{base.rstrip('/')}{path}?symbol={venue_symbol}&limit={limit}"

    # -- fast path ------------------------------------------------------------------------------------------
    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """One QUOTES tuple from a ``bookTicker`` message (raw or combined), else ``None``."""
        try:
            if raw[:10] == b'{"stream":':
                m = _decode_bt_combined(raw).data
            else:
                m = _decode_bt(raw)
        except DECODE_ERRORS:
            m = None
        if m is not None:
            bid, bid_size, ask, ask_size = m.b, m.B, m.a, m.A
            ts = m.T or m.E  # transaction time when sent (futures), else event time; spot sends neither
            if (
                0.0 < bid < _INF
                and 0.0 < ask < _INF
                and 0.0 <= bid_size < _INF
                and 0.0 <= ask_size < _INF
                and (ts is None or 0 < ts < 10**14)
            ):
                return (
                    ts_recv if ts is None else ts * 1_000_000,
                    ts_recv,
                    "binance",
                    self._unified.get(m.s) or self.unified_symbol(m.s),
                    bid,
                    bid_size,
                    ask,
                    ask_size,
                    m.u,
                    2 if bid > ask else 0,  # QuoteFlag.CROSSED
                )
        # another message type, an absent side ("0" / ""), or garbage: the full path decides (or raises)
        rows = self.parse_rows(raw, ts_recv)
        return rows.quotes[-1] if rows.quotes else None

    def parse_quote_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[QuoteRow] | None:
        """Raw-endpoint ``bookTicker`` messages in one pass (see :meth:`Adapter.parse_quote_batch`).

        Examples
        --------
        >>> from live.adapters import get
        >>> ad = get("binance")
        >>> raw = b'{"u":7,"s":"BTCUSDT","b":"100","B":"1","a":"101","A":"2"}'
        >>> ad.parse_quote_batch([raw, raw], ts_recv=5) is None  # a symbol is mapped on the full path first
        True
        >>> _ = ad.parse_quote_tuple(raw, ts_recv=5)
        >>> [row[3:9] for row in ad.parse_quote_batch([raw, raw], ts_recv=5)]
        [('BTC/USDT', 100.0, 1.0, 101.0, 2.0, 7), ('BTC/USDT', 100.0, 1.0, 101.0, 2.0, 7)]
        """
        unified = self._unified
        out: list[QuoteRow] = []
        append = out.append
        for raw in raws:  # decoded one by one: each struct is dropped before the next (cheaper than all at once)
            try:
                m = _decode_bt(raw)
            except DECODE_ERRORS:
                return None
            bid, bid_size, ask, ask_size = m.b, m.B, m.a, m.A
            ts = m.T or m.E
            symbol = unified.get(m.s)
            if (
                symbol is None
                or not (0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF)
                or not (ts is None or 0 < ts < 10**14)
            ):
                return None  # an unseen symbol (mapped once on the full path), an absent side, a bad time
            flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
            append(
                (
                    ts_recv if ts is None else ts * 1_000_000,
                    ts_recv,
                    "binance",
                    symbol,
                    bid,
                    bid_size,
                    ask,
                    ask_size,
                    m.u,
                    flags,
                )
            )
        return out

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``bookTicker`` messages (raw or combined-stream) read by the compiled kernel (see
        :meth:`Adapter.parse_quote_columns`).

        Examples
        --------
        >>> import numpy as np
        >>> from live.adapters import get
        >>> ad = get("binance")
        >>> raw = b'{"u":7,"s":"BTCUSDT","b":"100","B":"1","a":"101","A":"2"}'
        >>> _ = ad.parse_quote_tuple(raw, ts_recv=5)  # maps the symbol once
        >>> cols = ad.parse_quote_columns(raw * 2, np.array([0, len(raw)]), np.array([len(raw), 2 * len(raw)]), 5)
        >>> cols.rows() == ad.parse_quote_batch([raw, raw], ts_recv=5)
        True
        """
        return self._columns(_BOOK_TICKER_PLAN, buf, starts, ends, ts_recv)

    def _quote(
        self, symbol: str, ts: int | None, ts_recv: int, b: str, bs: str, a: str, as_: str, seq: int | None
    ) -> QuoteRow:
        bid = self.price(b)
        ask = self.price(a)
        return (
            self.timestamp_ms(ts, ts_recv),
            ts_recv,
            "binance",
            self.unified_symbol(symbol),
            bid,
            self.size(bs) if bid is not None else None,
            ask,
            self.size(as_) if ask is not None else None,
            seq,
            2 if bid is not None and ask is not None and bid > ask else 0,
        )

    # -- full path ------------------------------------------------------------------------------------------
    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        try:
            return self._parse_rows(raw, ts_recv)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed message ({type(exc).__name__}: {exc}): {bytes(raw[:200])!r}") from None

    def _parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        rows = Rows()
        if raw[:10] == b'{"stream":':
            self._envelope(rows, _decode_env(raw), ts_recv, raw)
            return rows
        m = _decode_any(raw)
        if isinstance(m, list):  # /ws/!markPrice@arr: one event per symbol
            for item in m:
                self._event(rows, item, ts_recv, None, raw)
        elif m.stream is not None or m.data:
            self._envelope(rows, _decode_env(raw), ts_recv, raw)
        else:
            self._event(rows, m, ts_recv, None, raw)
        return rows

    def _envelope(self, rows: Rows, env: _Envelope, ts_recv: int, raw: bytes) -> None:
        data = env.data
        if data is None:
            raise self.error("combined-stream message without data")
        for m in data if isinstance(data, list) else (data,):
            self._event(rows, m, ts_recv, env.stream, raw)

    def _event(self, rows: Rows, m: _Msg, ts_recv: int, stream: str | None, raw: bytes) -> None:
        """One event (bare or unwrapped from a combined stream) into ``rows``."""
        event = m.e
        if event is None:
            if m.lastUpdateId is not None:  # spot partial depth (stream) or REST snapshot without symbol
                if stream is None:
                    raise self.error("depth snapshot without a symbol: use parse_snapshot(raw, ts_recv, symbol)")
                self._snapshot(rows, self._stream_symbol(stream), m, ts_recv, complete=False)
            elif m.u is not None and isinstance(m.b, str):  # spot bookTicker
                self._book_ticker(rows, m, ts_recv)
            elif m.code is not None and m.msg is not None:  # error reply: the venue refused a request
                raise self.error(f"venue error {m.code}: {m.msg}")
            elif m.s is not None or m.u is not None or m.b is not None:
                raise self.error(f"unknown message {bytes(raw[:200])!r}")
            # else: subscription ack ({"result": null, "id": 1}), property reply, empty object
            return
        if event == "bookTicker":
            self._book_ticker(rows, m, ts_recv)
        elif event == "depthUpdate":
            self._depth(rows, m, ts_recv, stream)
        elif event in ("aggTrade", "trade"):
            self._trade(rows, m, ts_recv, event)
        elif event == "markPriceUpdate":
            self._mark_price(rows, m, ts_recv)
        elif event == "serverShutdown":
            pass  # maintenance notice: no market data (the connector hands over to a fresh connection)
        else:
            raise self.error(f"unsupported event {event!r}")

    def parse_snapshot(self, raw: bytes, ts_recv: int, venue_symbol: str) -> BookUpdate:
        """The REST ``GET depth`` snapshot (``lastUpdateId``, bids, asks) as a :class:`BookUpdate`.

        Binance's REST body names no symbol, so the caller passes the one it asked for.
        """
        try:
            m = _decode_msg(raw)
            if m.lastUpdateId is None:
                raise self.error("depth snapshot without lastUpdateId")
            rows = Rows()
            self._snapshot(rows, self.unified_symbol(venue_symbol), m, ts_recv, complete=True)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed depth snapshot ({exc})") from None
        assert rows.book_update is not None
        return rows.book_update

    def _book_ticker(self, rows: Rows, m: _Msg, ts_recv: int) -> None:
        if m.s is None or m.u is None or not isinstance(m.b, str) or not isinstance(m.a, str):
            raise self.error("bookTicker without s/u/b/a")
        if m.B is None or m.A is None:
            raise self.error("bookTicker without sizes")
        rows.quotes.append(self._quote(m.s, m.T or m.E, ts_recv, m.b, m.B, m.a, m.A, m.u))

    def _snapshot(self, rows: Rows, symbol: str, m: _Msg, ts_recv: int, *, complete: bool) -> None:
        bids = self.levels(m.bids or ())
        asks = self.levels(m.asks or ())
        # USD-M REST snapshots carry E/T (0 from some servers: no time); spot ones and partial streams none
        ts_event = self.timestamp_ms(m.T or m.E or None, ts_recv)
        self._emit_levels(rows, symbol, bids, asks, ts_event, ts_recv, m.lastUpdateId)
        update = BookUpdate(
            "binance",
            symbol,
            self._rule if complete else "replace",
            True,
            bids,
            asks,
            ts_event,
            ts_recv,
            seq=m.lastUpdateId,
            depth=None if complete else max(len(bids), len(asks)),
        )
        rows.book_updates.append(update)

    def _emit_levels(
        self,
        rows: Rows,
        symbol: str,
        bids: tuple[Level, ...],
        asks: tuple[Level, ...],
        ts_event: int,
        ts_recv: int,
        seq: int | None,
    ) -> None:
        """BOOK rows and the top-of-book quote of a self-contained partial book (levels sorted best first)."""
        bids_sorted = sorted((lv for lv in bids if lv[1] > 0.0), key=lambda lv: -lv[0])
        asks_sorted = sorted((lv for lv in asks if lv[1] > 0.0), key=lambda lv: lv[0])
        book: list[BookRow] = rows.book
        for i, lv in enumerate(bids_sorted):
            book.append((ts_event, ts_recv, "binance", symbol, "bid", i, lv[0], lv[1], seq, 0))
        for i, lv in enumerate(asks_sorted):
            book.append((ts_event, ts_recv, "binance", symbol, "ask", i, lv[0], lv[1], seq, 0))
        bid = bids_sorted[0] if bids_sorted else None
        ask = asks_sorted[0] if asks_sorted else None
        crossed = 2 if bid is not None and ask is not None and bid[0] > ask[0] else 0
        rows.quotes.append(level_quote(ts_event, ts_recv, "binance", symbol, bid, ask, seq, crossed))

    def _depth(self, rows: Rows, m: _Msg, ts_recv: int, stream: str | None) -> None:
        if m.s is None or m.U is None or m.u is None:
            raise self.error("depthUpdate without s/U/u")
        if not isinstance(m.b, list) or not isinstance(m.a, list):
            raise self.error("depthUpdate without level lists")
        symbol = self.unified_symbol(m.s)
        ts_event = self.timestamp_ms(m.T or m.E, ts_recv)
        bids = self.levels(m.b)
        asks = self.levels(m.a)
        # USD-M partial-book streams (depth5/10/20) are depthUpdate events too: self-contained books.
        partial = stream is not None and _is_partial(stream)
        if partial:
            self._emit_levels(rows, symbol, bids, asks, ts_event, ts_recv, m.u)
        update = BookUpdate(
            "binance",
            symbol,
            "replace" if partial else self._rule,
            partial,
            bids,
            asks,
            ts_event,
            ts_recv,
            seq=m.u,
            prev_seq=m.pu,
            first_seq=m.U,
            depth=max(len(bids), len(asks)) if partial else None,
        )
        rows.book_updates.append(update)

    def _trade(self, rows: Rows, m: _Msg, ts_recv: int, event: str) -> None:
        if m.s is None or m.p is None or m.q is None or m.m is None:
            raise self.error(f"{event} without s/p/q/m")
        trade_id = m.a if event == "aggTrade" else m.t
        if trade_id is None or isinstance(trade_id, list):
            raise self.error(f"{event} without an id")
        price = self.price(m.p)
        size = self.size(m.q)
        if price is None or size is None:
            raise self.error(f"{event} without a price")
        rows.trades.append(
            (
                self.timestamp_ms(m.T or m.E, ts_recv),
                ts_recv,
                "binance",
                self.unified_symbol(m.s),
                str(trade_id),
                "sell" if m.m else "buy",  # m: buyer is the maker, so the aggressor sold
                price,
                size,
                0,
            )
        )

    def _mark_price(self, rows: Rows, m: _Msg, ts_recv: int) -> None:
        if m.s is None or m.r is None:
            raise self.error("markPriceUpdate without s/r")
        rate = self.number(m.r)
        if rate is None:  # delivery contracts send r="" : no funding
            return
        mark = m.p
        rows.funding.append(
            (
                self.timestamp_ms(m.E, ts_recv),
                ts_recv,
                "binance",
                self.unified_symbol(m.s),
                rate,
                None,
                self.timestamp_ms(m.T, 0) or None,
                self.price(mark),
                self.price(m.i),
                0,
            )
        )
