"""Tardis.dev downloadable CSV files -> store tables.

Supported data types (detected from the header, cross-checked with the conventional file name
``<exchange>_<data_type>_<YYYY-MM-DD>_<SYMBOL>.csv.gz`` when it has one):

==========================  ==================  ====================================================================
data type                   table               mapping
==========================  ==================  ====================================================================
``quotes``                  quotes              bid/ask price and amount; an empty side stays null (never 0)
``book_snapshot_N``         book                ``asks[i]``/``bids[i]`` -> one row per side and level; empty levels
                                                (a book shallower than N) are dropped
``trades``                  trades              ``id`` -> trade_id, ``side`` (taker side; ``unknown`` -> null)
``derivative_ticker``       funding             rows without a funding rate carry no funding and are skipped
                                                (counted in ``rows_skipped``)
``options_chain``           option_quotes       IVs are percent in the file, fractions in the table
==========================  ==================  ====================================================================

Timestamps are microseconds since the epoch in every Tardis file (``timestamp`` = venue time -> ``ts_event``,
``local_timestamp`` = Tardis arrival time -> ``ts_recv``).  Exchange ids map to CCXT ids and venue symbols to
unified ones (:data:`arbkit.data.importers._symbols.TARDIS_EXCHANGES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from arbkit import schema
from arbkit.data.importers._common import (
    CsvStream,
    ImportDataError,
    ImportReport,
    Sink,
    SymbolMapper,
    base_name,
    blank_rows,
    fields_of,
    merge_rejects,
    open_text_bytes,
    parse_fields,
    peek_first_line,
    run_import,
    timestamp_rejects,
    without_rows,
)
from arbkit.data.importers._symbols import TARDIS_EXCHANGES, tardis_venue, unify
from arbkit.data.store import Store
from arbkit.instruments import Registry, parse_symbol

__all__ = ["TARDIS_DATA_TYPES", "import_tardis"]

_KEYS = ["exchange", "symbol", "timestamp", "local_timestamp"]
_HEADERS: dict[str, list[str]] = {
    "quotes": [*_KEYS, "ask_amount", "ask_price", "bid_price", "bid_amount"],
    "trades": [*_KEYS, "id", "side", "price", "amount"],
    "derivative_ticker": [
        *_KEYS, "funding_timestamp", "funding_rate", "predicted_funding_rate", "open_interest", "last_price",
        "index_price", "mark_price",
    ],
    "options_chain": [
        *_KEYS, "type", "strike_price", "expiration", "open_interest", "last_price", "bid_price", "bid_amount",
        "bid_iv", "ask_price", "ask_amount", "ask_iv", "mark_price", "mark_iv", "underlying_index",
        "underlying_price", "delta", "gamma", "vega", "theta", "rho",
    ],
}  # fmt: skip

#: Data types this importer reads.
TARDIS_DATA_TYPES: tuple[str, ...] = ("quotes", "trades", "book_snapshot_N", "derivative_ticker", "options_chain")

_US = 1_000
_NAME_RE = re.compile(r"^(?P<exchange>[a-z0-9-]+)_(?P<type>[a-z0-9_A-Z]+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<symbol>.+)$")
_OPTION_TYPES = {"call": "C", "put": "P", "c": "C", "p": "P", "C": "C", "P": "P"}


def _book_header(depth: int) -> list[str]:
    out = list(_KEYS)
    for i in range(depth):
        out += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return out


def _detect(path: Path, header: list[str]) -> tuple[str, int]:
    """(data type, book depth) from the header; the file name, when conventional, must agree."""
    kind: str | None = None
    depth = 0
    for name, columns in _HEADERS.items():
        if header == columns:
            kind = name
    if kind is None and len(header) > 4 and (len(header) - 4) % 4 == 0:
        depth = (len(header) - 4) // 4
        if header == _book_header(depth):
            kind = "book_snapshot"
    if kind is None:
        if header[:4] == _KEYS and "is_snapshot" in header:
            raise ImportDataError(str(path), 1, None, "incremental_book_L2 files are not supported yet")
        raise ImportDataError(str(path), 1, None, f"not a supported Tardis CSV header: {','.join(header[:12])}")
    m = _NAME_RE.match(base_name(path))
    if m is not None:
        named = m["type"]
        expected = f"book_snapshot_{depth}" if kind == "book_snapshot" else kind
        if named != expected and named in (*_HEADERS, *(f"book_snapshot_{n}" for n in (5, 10, 25))):
            raise ImportDataError(str(path), None, None, f"file name says {named!r} but the header is {expected!r}")
    return kind, depth


def _resolver(exchange: str | None, market: str | None, symbol: str | None) -> Callable[[str, str], tuple[str, str]]:
    def resolve(venue_id: str, venue_symbol: str) -> tuple[str, str]:
        if venue_id in TARDIS_EXCHANGES:
            ccxt_id, hint = tardis_venue(venue_id)
        elif exchange is not None:
            ccxt_id, hint = exchange, "auto"  # an id we do not know: read symbols in the override venue's style
        else:
            tardis_venue(venue_id)  # raises, naming the known ids
            raise AssertionError  # pragma: no cover
        if symbol is not None:
            parse_symbol(symbol)
            return exchange or ccxt_id, symbol
        return exchange or ccxt_id, unify(ccxt_id, venue_symbol, market or hint)

    return resolve


def _quotes(f: pl.DataFrame) -> pl.DataFrame:
    return f.select(
        pl.col("timestamp").mul(_US).alias("ts_event"),
        pl.col("local_timestamp").mul(_US).alias("ts_recv"),
        pl.col("__exchange").alias("exchange"),
        pl.col("__symbol").alias("symbol"),
        pl.col("bid_price").alias("bid"),
        pl.col("bid_amount").alias("bid_size"),
        pl.col("ask_price").alias("ask"),
        pl.col("ask_amount").alias("ask_size"),
        pl.lit(None, pl.Int64).alias("seq"),
        pl.lit(0, pl.UInt16).alias("flags"),
        "__row",
    )


def _trades(f: pl.DataFrame) -> pl.DataFrame:
    side = pl.col("side").str.to_lowercase()
    return f.select(
        pl.col("timestamp").mul(_US).alias("ts_event"),
        pl.col("local_timestamp").mul(_US).alias("ts_recv"),
        pl.col("__exchange").alias("exchange"),
        pl.col("__symbol").alias("symbol"),
        pl.when(pl.col("id").str.len_bytes() > 0).then(pl.col("id")).otherwise(None).alias("trade_id"),
        pl.when(side.is_in(["", "unknown"])).then(None).otherwise(side).alias("side"),
        pl.col("price"),
        pl.col("amount").alias("size"),
        pl.lit(0, pl.UInt16).alias("flags"),
        "__row",
    )


def _book(f: pl.DataFrame, depth: int) -> pl.DataFrame:
    keys = [
        pl.col("timestamp").mul(_US).alias("ts_event"),
        pl.col("local_timestamp").mul(_US).alias("ts_recv"),
        pl.col("__exchange").alias("exchange"),
        pl.col("__symbol").alias("symbol"),
    ]
    parts = []
    for level in range(depth):
        for side, prefix in (("ask", "asks"), ("bid", "bids")):
            parts.append(
                f.select(
                    *keys,
                    pl.lit(side).alias("side"),
                    pl.lit(level, pl.UInt16).alias("level"),
                    pl.col(f"{prefix}[{level}].price").alias("price"),
                    pl.col(f"{prefix}[{level}].amount").alias("size"),
                    pl.lit(None, pl.Int64).alias("seq"),
                    pl.lit(0, pl.UInt16).alias("flags"),
                    "__row",
                )
            )
    long = pl.concat(parts)
    # a level absent on both fields means the book is shallower than N: not a row; half a level is a reject
    long = long.filter(pl.col("price").is_not_null() | pl.col("size").is_not_null())
    return long.sort(["__row", "side", "level"], descending=[False, True, False], maintain_order=True)


def _funding(f: pl.DataFrame) -> pl.DataFrame:
    return f.filter(pl.col("funding_rate").is_not_null()).select(
        pl.col("timestamp").mul(_US).alias("ts_event"),
        pl.col("local_timestamp").mul(_US).alias("ts_recv"),
        pl.col("__exchange").alias("exchange"),
        pl.col("__symbol").alias("symbol"),
        pl.col("funding_rate"),
        pl.col("predicted_funding_rate").alias("predicted_rate"),
        pl.col("funding_timestamp").mul(_US).alias("next_funding_time"),
        pl.col("mark_price"),
        pl.col("index_price"),
        pl.lit(0, pl.UInt16).alias("flags"),
        "__row",
    )


def _underlying(symbol: str) -> str:
    info = parse_symbol(symbol)
    return f"{info.base}/{info.quote}"


def _options(f: pl.DataFrame) -> pl.DataFrame:
    pct = 0.01
    return f.select(
        pl.col("timestamp").mul(_US).alias("ts_event"),
        pl.col("local_timestamp").mul(_US).alias("ts_recv"),
        pl.col("__exchange").alias("exchange"),
        pl.col("__symbol").alias("symbol"),
        pl.col("__symbol").map_elements(_underlying, return_dtype=pl.String).alias("underlying"),
        pl.col("expiration").mul(_US).alias("expiry"),
        pl.col("strike_price").alias("strike"),
        pl.col("type").replace_strict(_OPTION_TYPES, default=None, return_dtype=pl.String).alias("option_type"),
        pl.col("bid_price").alias("bid"),
        pl.col("bid_amount").alias("bid_size"),
        pl.col("ask_price").alias("ask"),
        pl.col("ask_amount").alias("ask_size"),
        (pl.col("bid_iv") * pct).alias("bid_iv"),
        (pl.col("ask_iv") * pct).alias("ask_iv"),
        pl.col("mark_price"),
        (pl.col("mark_iv") * pct).alias("mark_iv"),
        pl.col("underlying_price"),
        pl.lit(0, pl.UInt16).alias("flags"),
        "__row",
    )


_TABLE = {
    "quotes": schema.QUOTES,
    "trades": schema.TRADES,
    "book_snapshot": schema.BOOK,
    "derivative_ticker": schema.FUNDING,
    "options_chain": schema.OPTION_QUOTES,
}

# schema column -> CSV field, so a reject names the field of the file
_FIELD = {
    "quotes": {"ts_event": "timestamp", "ts_recv": "local_timestamp", "bid": "bid_price", "bid_size": "bid_amount",
               "ask": "ask_price", "ask_size": "ask_amount"},
    "trades": {"ts_event": "timestamp", "ts_recv": "local_timestamp", "trade_id": "id", "size": "amount"},
    "book_snapshot": {"ts_event": "timestamp", "ts_recv": "local_timestamp"},
    "derivative_ticker": {"ts_event": "timestamp", "ts_recv": "local_timestamp", "predicted_rate":
                          "predicted_funding_rate", "next_funding_time": "funding_timestamp"},
    "options_chain": {"ts_event": "timestamp", "ts_recv": "local_timestamp", "expiry": "expiration",
                      "strike": "strike_price", "option_type": "type", "bid": "bid_price", "bid_size": "bid_amount",
                      "ask": "ask_price", "ask_size": "ask_amount"},
}  # fmt: skip

_TIMESTAMPS = ("timestamp", "local_timestamp", "funding_timestamp", "expiration")
_TEXT_FIELDS = {"exchange", "symbol", "id", "side", "type", "underlying_index"}


def _types(header: list[str]) -> dict[str, type[pl.DataType]]:
    out: dict[str, type[pl.DataType]] = {}
    for name in header:
        if name in _TEXT_FIELDS:
            continue
        out[name] = pl.Int64 if name in _TIMESTAMPS else pl.Float64
    return out


def import_tardis(
    paths: Sequence[Path | str],
    store: Store,
    *,
    exchange: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    skip_bad: bool = False,
    chunk_rows: int = 500_000,
    progress: Callable[[int], None] | None = None,
    registry: Registry | None = None,
    compact: bool = True,
) -> ImportReport:
    """Import Tardis.dev CSV exports (plain, ``.gz`` or ``.zip``) into ``store``, streaming in chunks.

    Parameters
    ----------
    paths
        Files to import, in order.
    store
        Destination store.
    exchange, market, symbol
        Overrides: CCXT exchange id to store rows under, market hint for concatenated symbols (``spot``,
        ``linear``, ``inverse``), and a unified symbol for every row.
    skip_bad
        ``False`` (default): the first bad row raises :class:`ImportDataError` naming file, line and field, and
        everything this call wrote is removed again.  ``True``: bad rows are skipped and counted in the report;
        every good row is kept.
    chunk_rows
        Rows parsed and written per step (bounds memory).
    progress
        Called after each chunk with the number of input rows it held.
    registry
        Instruments to check symbols against (:func:`arbkit.instruments.default_registry` by default).
    compact
        Merge the parts this import appended (one per chunk and partition) into one file per partition.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "q.csv").write_text(
    ...     "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\\n"
    ...     "binance-futures,BTCUSDT,1598918403696000,1598918403810979,1.7,11657.08,11657.07,10.9\\n")
    >>> report = import_tardis([d / "q.csv"], Store(d / "store"))
    >>> report.rows_written
    {'quotes': 1}
    >>> Store(d / "store").scan("quotes").select("exchange", "symbol", "ts_recv").collect().row(0)
    ('binance', 'BTC/USDT:USDT', 1598918403810979000)
    """
    mapper = SymbolMapper(registry, _resolver(exchange, market, symbol))
    return run_import(
        paths,
        store,
        lambda path, sink: _import_file(path, sink, mapper, chunk_rows),
        skip_bad=skip_bad,
        progress=progress,
        compact=compact,
    )


def _import_file(path: Path, sink: Sink, mapper: SymbolMapper, chunk_rows: int) -> None:
    file = str(path)
    with open_text_bytes(path) as fh:
        first, stream = peek_first_line(fh)
        header = first.decode("utf-8", errors="replace").lstrip("\ufeff").split(",")
        kind, depth = _detect(path, header)
        table = _TABLE[kind]
        fields = _FIELD[kind]
        csv = CsvStream(stream, header, header=True, chunk_rows=chunk_rows)
        types = _types(header)
        for chunk in csv:
            sink.malformed(file, csv)
            raw = chunk.frame.with_row_index("__row")
            blank = blank_rows(raw)
            sink.report.rows_skipped += blank.len()
            typed, parse_bad = parse_fields(raw, types)
            typed, map_bad = mapper.map_frame(typed, "exchange", "symbol")
            time_bad = timestamp_rejects(typed, [c for c in _TIMESTAMPS if c in types], _US)
            pre_bad = merge_rejects(parse_bad, map_bad, time_bad).filter(~pl.col("row").is_in(blank.implode()))
            good = without_rows(typed, pre_bad, blank)
            if kind == "quotes":
                rows = _quotes(good)
            elif kind == "trades":
                rows = _trades(good)
            elif kind == "book_snapshot":
                rows = _book(good, depth)
            elif kind == "derivative_ticker":
                rows = _funding(good)
                sink.report.rows_skipped += good.height - rows.height
            else:
                rows = _options(good)
            field_of = _book_fields if kind == "book_snapshot" else fields_of(fields)
            sink.write_rows(file, csv, chunk, table, rows, pre_bad, field_of, all_or_nothing=kind == "book_snapshot")
            sink.finish_chunk(file, csv, chunk)


def _book_fields(rows: pl.DataFrame, bad: pl.DataFrame) -> list[str]:
    """Name the CSV field (``bids[3].price``) of a bad book level."""
    sides = rows.get_column("side").gather(bad.get_column("row"))
    levels = rows.get_column("level").gather(bad.get_column("row"))
    fields = _FIELD["book_snapshot"]
    return [
        f"{'asks' if s == 'ask' else 'bids'}[{lv}].{'price' if c == 'price' else 'amount'}" if c in ("price", "size")
        else fields.get(c, c)
        for s, lv, c in zip(sides, levels, bad.get_column("column"), strict=True)
    ]  # fmt: skip
