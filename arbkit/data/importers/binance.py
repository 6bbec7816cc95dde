"""Binance public data (data.binance.vision) CSVs -> store tables.

==================  ===========  =======================================================================================
file                table        columns
==================  ===========  =======================================================================================
``bookTicker``      quotes       ``update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,
                                 event_time`` (USD-M / COIN-M futures, with a header); ``transaction_time`` -> ts_event,
                                 ``event_time`` -> ts_recv (the files hold no local receive time), ``update_id`` -> seq
``aggTrades``       trades       ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
                                 is_buyer_maker`` (+ ``is_best_match`` in spot files, which have no header); the
                                 aggressor is the seller when the buyer is the maker
==================  ===========  =======================================================================================

The files carry no symbol column: the symbol and data type come from the conventional name
``<SYMBOL>-<type>-<YYYY-MM-DD>.<csv|zip>`` (or an override).  The market comes from the download path
(``.../spot/...``, ``.../futures/um/...``, ``.../futures/cm/...``), else from the layout (a headerless 8-column
aggTrades file is spot; ``BTCUSD_PERP``-style symbols are COIN-M), else the ``market`` override.  Timestamps are
converted to nanoseconds with the unit detected per file by magnitude: Binance spot files switched from
milliseconds to microseconds for data from 2025-01-01.  The unit is that of the file's first timestamps (their
median), and a timestamp in another unit is a reject, so one corrupt value cannot rescale a whole file.  A
``.zip`` with a ``.CHECKSUM`` sidecar is verified (SHA-256) before it is read.
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
    ns_multiplier,
    open_text_bytes,
    parse_fields,
    peek_first_line,
    run_import,
    timestamp_rejects,
    verify_checksum,
    without_rows,
)
from arbkit.data.importers._symbols import unify
from arbkit.data.store import Store
from arbkit.instruments import Registry, parse_symbol

__all__ = ["BINANCE_DATA_TYPES", "import_binance"]

_BOOK_TICKER = [
    "update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty", "transaction_time", "event_time",
]  # fmt: skip
_AGG_TRADES = [
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
]  # fmt: skip
_SPOT_AGG_TRADES = [*_AGG_TRADES, "is_best_match"]

#: Data types this importer reads.
BINANCE_DATA_TYPES: tuple[str, ...] = ("bookTicker", "aggTrades")

_NAME_RE = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<type>[A-Za-z]+)-(?P<date>\d{4}-\d{2}(?:-\d{2})?)$")
_MARKETS = {"spot": "spot", "um": "linear", "usdm": "linear", "linear": "linear", "cm": "inverse",
            "coinm": "inverse", "inverse": "inverse"}  # fmt: skip


def _market_from_path(path: Path) -> str | None:
    parts = [p.lower() for p in path.parts[:-1]]
    if "spot" in parts:
        return "spot"
    if "futures" in parts:
        i = parts.index("futures")
        if i + 1 < len(parts) and parts[i + 1] in ("um", "cm"):
            return _MARKETS[parts[i + 1]]
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def import_binance(
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
    """Import Binance public-data CSVs (``bookTicker``, ``aggTrades``; plain, ``.gz`` or ``.zip``) into ``store``.

    Parameters are those of :func:`arbkit.data.importers.import_tardis`; ``market`` is ``spot``, ``um``/``linear``
    (USD-M) or ``cm``/``inverse`` (COIN-M), ``symbol`` a unified symbol used instead of the file name's.  A
    checksum mismatch always raises :class:`ImportDataError` (a corrupt download is not a bad row).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "ETHUSDT-aggTrades-2024-01-01.csv").write_text(
    ...     "1,2281.5,0.5,10,11,1704067200123,True,True\\n2,2281.6,1.0,12,12,1704067200456,False,True\\n")
    >>> import_binance([d / "ETHUSDT-aggTrades-2024-01-01.csv"], Store(d / "s")).rows_written
    {'trades': 2}
    >>> Store(d / "s").scan("trades").select("symbol", "side", "ts_event").collect().rows()
    [('ETH/USDT', 'sell', 1704067200123000000), ('ETH/USDT', 'buy', 1704067200456000000)]
    """
    if market is not None and market not in _MARKETS:
        raise ValueError(f"unknown Binance market {market!r} (use one of {', '.join(_MARKETS)})")
    return run_import(
        paths,
        store,
        lambda path, sink: _import_file(path, sink, registry, exchange or "binance", market, symbol, chunk_rows),
        skip_bad=skip_bad,
        progress=progress,
        compact=compact,
    )


def _import_file(
    path: Path,
    sink: Sink,
    registry: Registry | None,
    exchange: str,
    market: str | None,
    symbol: str | None,
    chunk_rows: int,
) -> None:
    file = str(path)
    if path.name.endswith(".zip"):
        verify_checksum(path)
    name = _NAME_RE.match(base_name(path))
    if symbol is None and name is None:
        raise ImportDataError(file, None, None, "no symbol: name the file SYMBOL-type-DATE.csv or pass symbol=")
    venue_symbol = name["symbol"] if name is not None else ""
    with open_text_bytes(path) as fh:
        first, stream = peek_first_line(fh)
        fields = first.decode("utf-8", errors="replace").lstrip("\ufeff").split(",")
        header = not _is_number(fields[0].strip())
        columns = [f.strip() for f in fields] if header else None
        if columns is None:
            count = len(fields)
            columns = {7: _BOOK_TICKER if name is not None and name["type"] == "bookTicker" else _AGG_TRADES,
                       8: _SPOT_AGG_TRADES}.get(count)  # fmt: skip
            if columns is None:
                raise ImportDataError(file, 1, None, f"unknown headerless layout with {count} columns")
        if columns == _BOOK_TICKER:
            kind, table, clock = "bookTicker", schema.QUOTES, "transaction_time"
        elif columns in (_AGG_TRADES, _SPOT_AGG_TRADES):
            kind, table, clock = "aggTrades", schema.TRADES, "transact_time"
        else:
            raise ImportDataError(file, 1, None, f"not a bookTicker or aggTrades header: {','.join(columns)}")
        if name is not None and name["type"] != kind:
            raise ImportDataError(file, None, None, f"file name says {name['type']!r} but the layout is {kind!r}")
        hint = _MARKETS[market] if market is not None else _market_from_path(path)
        if hint is None:
            if columns == _SPOT_AGG_TRADES:
                hint = "spot"
            else:
                hint = "inverse" if "_" in venue_symbol else "linear"
        unified = symbol
        try:
            if unified is None:
                unified = unify("binance", venue_symbol, hint)
            else:
                parse_symbol(unified)
        except ValueError as exc:
            raise ImportDataError(file, None, "symbol", f"unknown symbol {venue_symbol or symbol!r}: {exc}") from None
        mapper = SymbolMapper(registry, lambda _venue, _symbol: (exchange, str(unified)))
        resolved = mapper.resolve(exchange, unified)
        if isinstance(resolved, str):
            raise ImportDataError(file, None, "symbol", resolved)

        csv = CsvStream(stream, columns, header=header, chunk_rows=chunk_rows)
        types: dict[str, type[pl.DataType]] = {c: pl.Int64 for c in columns if c.endswith(("_id", "_time"))}
        types |= {c: pl.Float64 for c in columns if c.endswith(("_price", "_qty")) or c in ("price", "quantity")}
        types |= {c: pl.Boolean for c in columns if c.startswith("is_")}
        multiplier: int | None = None
        for chunk in csv:
            sink.malformed(file, csv)
            raw = chunk.frame.with_row_index("__row")
            blank = blank_rows(raw)
            sink.report.rows_skipped += blank.len()
            typed, parse_bad = parse_fields(raw, types)
            if multiplier is None and typed.get_column(clock).is_not_null().any():
                multiplier = ns_multiplier(typed.get_column(clock))  # the file's unit, from its first timestamps
            unit = multiplier if multiplier is not None else 1
            time_bad = timestamp_rejects(typed, [c for c in columns if c.endswith("_time")], unit, same_unit=True)
            pre_bad = merge_rejects(parse_bad, time_bad).filter(~pl.col("row").is_in(blank.implode()))
            good = without_rows(typed, pre_bad, blank)
            base = [pl.lit(exchange).alias("exchange"), pl.lit(unified).alias("symbol")]
            if kind == "bookTicker":
                rows = good.select(
                    (pl.col("transaction_time") * unit).alias("ts_event"),
                    (pl.col("event_time") * unit).alias("ts_recv"),
                    *base,
                    pl.col("best_bid_price").alias("bid"),
                    pl.col("best_bid_qty").alias("bid_size"),
                    pl.col("best_ask_price").alias("ask"),
                    pl.col("best_ask_qty").alias("ask_size"),
                    pl.col("update_id").alias("seq"),
                    pl.lit(0, pl.UInt16).alias("flags"),
                    "__row",
                )
                field_of = {"ts_event": "transaction_time", "ts_recv": "event_time", "bid": "best_bid_price",
                            "bid_size": "best_bid_qty", "ask": "best_ask_price", "ask_size": "best_ask_qty",
                            "seq": "update_id"}  # fmt: skip
            else:
                ts = pl.col("transact_time") * unit
                rows = good.select(
                    ts.alias("ts_event"),
                    ts.alias("ts_recv"),
                    *base,
                    pl.col("agg_trade_id").cast(pl.String).alias("trade_id"),
                    pl.when(pl.col("is_buyer_maker"))
                    .then(pl.lit("sell"))
                    .when(~pl.col("is_buyer_maker"))
                    .then(pl.lit("buy"))
                    .alias("side"),
                    pl.col("price"),
                    pl.col("quantity").alias("size"),
                    pl.lit(0, pl.UInt16).alias("flags"),
                    "__row",
                )
                field_of = {"ts_event": "transact_time", "ts_recv": "transact_time", "trade_id": "agg_trade_id",
                            "size": "quantity", "side": "is_buyer_maker"}  # fmt: skip
            sink.write_rows(file, csv, chunk, table, rows, pre_bad, fields_of(field_of))
            sink.finish_chunk(file, csv, chunk)
