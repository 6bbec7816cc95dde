"""The tick store: hive-partitioned Parquet that live recording appends to and the backtester scans.

Layout
------
::

    ROOT/kind=quotes/exchange=binance/date=2024-05-01/part-000000.parquet
    ROOT/kind=quotes/exchange=binance/date=2024-05-01/part-000001.parquet   (one more live append)
    ROOT/kind=labels/date=2024-05-01/part-000000.parquet                     (no exchange column: no exchange=)

* ``kind`` is the table name (:data:`arbkit.schema.TABLES`); tables without an ``exchange`` column (labels,
  opportunities) are partitioned by ``date=`` only.
* The day is the UTC date of ``ts_recv`` for market tables (what the engine knew, so a recorded day replays as one
  partition) and of ``ts_start`` for labels and opportunities.
* Every file is sorted by ``(symbol, time)`` and written in row groups of :data:`ROW_GROUP_ROWS` rows, so the
  row-group statistics of ``symbol`` and of the clock prune a filtered scan without per-symbol partitions (which
  would make thousands of tiny files).  Files keep every column of the table, ``exchange`` included: the
  constant column costs a few bytes after dictionary encoding and makes each file self-describing.
* :meth:`Store.append` adds one new file per touched partition (``part-<seq>.parquet``), written to a hidden
  temporary file and published with an atomic hard link, so a concurrent reader never sees half a file and two
  writers never take the same sequence number.  :meth:`Store.compact` merges a partition's parts into one
  sorted file.

Reads are lazy (:func:`polars.scan_parquet` over the pruned file list) and return rows ordered by
``(symbol, time, exchange)``, ties kept in the order they were appended, so a scan is deterministic whatever
the number of parts.

Examples
--------
>>> import tempfile
>>> import polars as pl
>>> store = Store(tempfile.mkdtemp())
>>> quotes = pl.DataFrame({
...     "ts_event": [1, 2, 3], "ts_recv": [10, 20, 30], "exchange": ["binance", "binance", "okx"],
...     "symbol": ["BTC/USDT", "ETH/USDT", "BTC/USDT"], "bid": [100.0, 10.0, 101.0],
...     "bid_size": [1.0, 1.0, 1.0], "ask": [100.5, 10.1, 101.5], "ask_size": [1.0, 1.0, 1.0]})
>>> store.append("quotes", quotes)
3
>>> store.scan("quotes", symbol="BTC/USDT").select("exchange", "ts_recv", "bid").collect().rows()
[('binance', 10, 100.0), ('okx', 30, 101.0)]
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arbkit import schema

__all__ = [
    "PARTITION_CLOCK",
    "ROW_GROUP_ROWS",
    "CompactSummary",
    "Store",
    "StoreError",
    "StoreInfo",
    "TableInfo",
]

#: Rows per Parquet row group.  A day of one venue's quotes for 20 symbols is a few million rows; 64k-row groups
#: give each symbol several groups (fine-grained pruning by symbol and time) while keeping the footer small.
ROW_GROUP_ROWS = 65_536

#: The column whose UTC date names a table's ``date=`` partition.
PARTITION_CLOCK: dict[str, str] = {
    "quotes": "ts_recv",
    "trades": "ts_recv",
    "book": "ts_recv",
    "funding": "ts_recv",
    "option_quotes": "ts_recv",
    "labels": "ts_start",
    "opportunities": "ts_start",
}

_NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_PARTITION_VALUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class StoreError(ValueError):
    """A store operation that cannot proceed: unknown table, bad partition value, or a file with a wrong schema."""


@dataclass(frozen=True, slots=True)
class CompactSummary:
    """What :meth:`Store.compact` did: partitions merged and files before/after, over the tables it visited."""

    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TableInfo:
    """One table's contents: read from the Parquet footers plus the distinct symbols."""

    table: str
    exchanges: list[str]
    symbols: list[str]
    rows: int
    ts_min: int | None
    ts_max: int | None
    files: int
    bytes: int
    days: list[dt.date] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["days"] = [d.isoformat() for d in self.days]
        return out


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """Per-table summaries of a store (see :meth:`Store.info`)."""

    root: str
    tables: dict[str, TableInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "tables": {k: v.to_dict() for k, v in self.tables.items()}}


@dataclass(frozen=True, slots=True)
class _Part:
    path: Path
    exchange: str | None
    day: dt.date
    seq: int


def _table(name: str) -> schema.Table:
    if name not in PARTITION_CLOCK:
        raise StoreError(f"table {name!r} is not stored as Parquet (stored tables: {', '.join(PARTITION_CLOCK)})")
    return schema.TABLES[name]


def _has_exchange(table: schema.Table) -> bool:
    return "exchange" in table.names


def _sort_key(table: schema.Table, clock: str) -> list[str]:
    key = ["symbol", clock]
    if _has_exchange(table):
        key.append("exchange")
    return key


def _to_ns(value: int | dt.datetime | dt.date | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be int nanoseconds or a datetime, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # naive datetimes are UTC, like every timestamp in arbkit
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, dt.date):
        return (value - _EPOCH).days * _NS_PER_DAY
    raise TypeError(f"{name} must be int nanoseconds or a datetime, got {type(value).__name__}")


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(dict.fromkeys(value))  # duplicates would list a partition twice


def _check_partition_value(value: str, what: str) -> str:
    if not _PARTITION_VALUE_RE.match(value):
        raise StoreError(f"{what} {value!r} cannot name a partition directory (letters, digits, '_', '.', '-')")
    return value


def _same_schema(found: pa.Schema, want: pa.Schema) -> str | None:
    """Reason the file schema differs from the table (names, order and types; nullability is not compared)."""
    if found.names != want.names:
        return f"columns {found.names} != table columns {want.names}"
    for f, w in zip(found, want, strict=True):
        if not f.type.equals(w.type):
            return f"column {f.name!r} has type {f.type}, table wants {w.type}"
    return None


class Store:
    """A directory of hive-partitioned Parquet files holding arbkit's market and label tables.

    Parameters
    ----------
    root
        The store directory; created on first write.

    Notes
    -----
    All methods are safe with concurrent readers.  Concurrent appenders to one partition are safe (each takes
    a distinct sequence number); :meth:`write` and :meth:`compact` must not run concurrently with other writers
    of the same partition, and a reader may briefly see both the old and the new file while they publish.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._schema_ok: dict[Path, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ----------------------------------------------------------------------------------------------- paths
    def _table_dir(self, table: str) -> Path:
        return self.root / f"kind={table}"

    def _partition_dir(self, table: schema.Table, exchange: str | None, day: dt.date) -> Path:
        base = self._table_dir(table.name)
        if exchange is not None:
            base = base / f"exchange={_check_partition_value(exchange, 'exchange')}"
        return base / f"date={day.isoformat()}"

    def _parts(self, table: schema.Table, exchanges: list[str] | None = None) -> list[_Part]:
        """Every published file of the table, in (exchange, day, seq) order; hidden temporaries are skipped."""
        base = self._table_dir(table.name)
        if not base.is_dir():
            return []
        if _has_exchange(table):
            if exchanges is None:
                ex_dirs = [(p.name.split("=", 1)[1], p) for p in base.iterdir() if p.name.startswith("exchange=")]
            else:
                ex_dirs = [(e, base / f"exchange={e}") for e in exchanges if _PARTITION_VALUE_RE.match(e)]
            groups: list[tuple[str | None, Path]] = [(e, p) for e, p in sorted(ex_dirs) if p.is_dir()]
        else:
            groups = [(None, base)]
        out: list[_Part] = []
        for exchange, ex_dir in groups:
            for day_dir in sorted(ex_dir.iterdir()):
                if not (day_dir.is_dir() and day_dir.name.startswith("date=")):
                    continue
                try:
                    day = dt.date.fromisoformat(day_dir.name.split("=", 1)[1])
                except ValueError:
                    continue
                parts = []
                for f in day_dir.iterdir():
                    m = _PART_RE.match(f.name)
                    if m is not None:
                        parts.append(_Part(f, exchange, day, int(m.group(1))))
                out.extend(sorted(parts, key=lambda p: p.seq))
        return out

    def _check_file(self, table: schema.Table, path: Path) -> None:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._schema_ok.get(path) == stamp:
            return
        try:
            found = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path}: not a readable Parquet file: {exc}") from exc
        reason = _same_schema(found, table.arrow)
        if reason is not None:
            raise StoreError(f"{path}: schema does not match table {table.name!r}: {reason}")
        self._schema_ok[path] = stamp

    # ----------------------------------------------------------------------------------------------- write
    def _split_partitions(
        self, table: schema.Table, frame: pl.DataFrame
    ) -> Iterable[tuple[str | None, dt.date, pl.DataFrame]]:
        clock = PARTITION_CLOCK[table.name]
        keyed = frame.with_columns((pl.col(clock) // _NS_PER_DAY).alias("__day"))
        keys = ["exchange", "__day"] if _has_exchange(table) else ["__day"]
        for key, part in keyed.group_by(keys, maintain_order=True):
            day = _EPOCH + dt.timedelta(days=int(key[-1]))  # type: ignore[arg-type]
            exchange = str(key[0]) if _has_exchange(table) else None
            yield exchange, day, part.drop("__day")

    def _publish(self, table: schema.Table, directory: Path, frame: pl.DataFrame) -> Path:
        """Sort, write to a hidden temporary file and hard-link it to the next free ``part-<seq>.parquet``."""
        clock = PARTITION_CLOCK[table.name]
        frame = frame.sort(_sort_key(table, clock), maintain_order=True)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".tmp-{uuid.uuid4().hex}.parquet"
        arrow = frame.to_arrow().cast(table.arrow)
        try:
            pq.write_table(
                arrow,
                tmp,
                row_group_size=ROW_GROUP_ROWS,
                compression="zstd",
                write_statistics=True,
                sorting_columns=[pq.SortingColumn(table.names.index(c)) for c in ("symbol", clock)],
            )
            seqs = [int(m.group(1)) for f in directory.iterdir() if (m := _PART_RE.match(f.name))]
            seq = max(seqs, default=-1) + 1
            while True:
                target = directory / f"part-{seq:06d}.parquet"
                try:
                    os.link(tmp, target)  # atomic, and fails instead of overwriting a concurrent writer's part
                except FileExistsError:
                    seq += 1
                    continue
                return target
        finally:
            tmp.unlink(missing_ok=True)

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """Validate ``frame`` and add it as one new file per touched ``(exchange, date)`` partition.

        Returns the number of rows written.  Raises :class:`arbkit.schema.SchemaError` (nothing written) when the
        frame does not match the table.
        """
        spec = _table(table)
        valid = schema.validate(frame, spec)
        if valid.height == 0:
            return 0
        for exchange, day, part in self._split_partitions(spec, valid):
            self._publish(spec, self._partition_dir(spec, exchange, day), part)
        return valid.height

    def append_files(self, table: str, frame: pl.DataFrame) -> list[Path]:
        """:meth:`append`, returning the files it published so a caller (an importer) can roll them back."""
        spec = _table(table)
        return self._publish_all(spec, schema.validate(frame, spec))

    def append_valid(
        self, table: str, frame: pl.DataFrame, *, group: pl.Series | None = None
    ) -> tuple[list[Path], int, pl.DataFrame]:
        """Validate ``frame`` once and append only its valid rows (the importers' ``skip_bad`` path).

        Returns ``(files published, rows written, rejects)``; ``rejects`` has the columns ``row`` (index into
        ``frame``), ``column`` and ``reason``, the first violation of each invalid row.  ``group`` (one key per
        row) makes groups all-or-nothing: a row whose group holds an invalid row is not written either, and has no
        reject of its own (a book snapshot's levels).  Missing or extra columns and types that do not fit the
        table still raise :class:`arbkit.schema.SchemaError` with nothing written.
        """
        spec = _table(table)
        valid, rejects = schema.split_valid(frame, spec)
        if group is not None and rejects.height:
            if group.len() != frame.height:
                raise ValueError(f"group has {group.len()} keys for {frame.height} rows")
            bad_rows = rejects.get_column("row")
            bad_groups = group.gather(bad_rows).implode()
            kept = group.filter(~pl.int_range(group.len(), dtype=pl.UInt32, eager=True).is_in(bad_rows.implode()))
            valid = valid.filter(~kept.is_in(bad_groups))
        return self._publish_all(spec, valid), valid.height, rejects

    def _publish_all(self, spec: schema.Table, valid: pl.DataFrame) -> list[Path]:
        if valid.height == 0:
            return []
        return [
            self._publish(spec, self._partition_dir(spec, exchange, day), part)
            for exchange, day, part in self._split_partitions(spec, valid)
        ]

    def remove_files(self, paths: Iterable[Path]) -> None:
        """Delete published part files of this store (the undo of :meth:`append_files`)."""
        root = self.root.resolve()
        for path in paths:
            path = Path(path)
            if root not in path.resolve().parents or not _PART_RE.match(path.name):
                raise StoreError(f"{path} is not a part file of {self.root}")
            path.unlink(missing_ok=True)
            self._schema_ok.pop(path, None)

    def write(self, table: str, frame: pl.DataFrame) -> int:
        """Validate ``frame`` and replace every partition it touches with its rows (one sorted file each).

        Partitions the frame does not touch are left alone.  Returns the number of rows written.
        """
        spec = _table(table)
        valid = schema.validate(frame, spec)
        for exchange, day, part in self._split_partitions(spec, valid):
            directory = self._partition_dir(spec, exchange, day)
            old = [f for f in directory.iterdir() if _PART_RE.match(f.name)] if directory.is_dir() else []
            new = self._publish(spec, directory, part)
            for f in old:
                if f != new:
                    f.unlink(missing_ok=True)
        return valid.height

    def compact(self, table: str | None = None) -> CompactSummary:
        """Merge each partition holding several parts into one file sorted by ``(symbol, time)``.

        Row order within equal keys is kept (parts are merged in sequence order), so a scan returns the same rows
        in the same order before and after compaction.
        """
        names = [table] if table is not None else self.tables()
        partitions = files_before = files_after = rows = 0
        for name in names:
            spec = _table(name)
            by_dir: dict[Path, list[_Part]] = {}
            for part in self._parts(spec):
                by_dir.setdefault(part.path.parent, []).append(part)
            for directory, parts in by_dir.items():
                files_before += len(parts)
                if len(parts) == 1:
                    files_after += 1
                    continue
                for p in parts:
                    self._check_file(spec, p.path)
                merged = pl.concat([pl.read_parquet(p.path) for p in parts], how="vertical")
                new = self._publish(spec, directory, merged)
                for p in parts:
                    p.path.unlink(missing_ok=True)
                    self._schema_ok.pop(p.path, None)
                partitions += 1
                files_after += 1
                rows += merged.height
                assert new.exists()
        return CompactSummary(partitions, files_before, files_after, rows)

    # ------------------------------------------------------------------------------------------------ read
    def scan(
        self,
        table: str,
        *,
        exchange: str | Sequence[str] | None = None,
        symbol: str | Sequence[str] | None = None,
        start: int | dt.datetime | None = None,
        end: int | dt.datetime | None = None,
        columns: Sequence[str] | None = None,
        clock: str | None = None,
        sort: bool = True,
    ) -> pl.LazyFrame:
        """Lazily read a table, keeping rows with ``start <= clock < end``.

        Parameters
        ----------
        table
            Table name, e.g. ``"quotes"``.
        exchange, symbol
            One value or several; ``None`` keeps all.  Exchanges prune directories, symbols prune row groups.
        start, end
            Half-open time range as int nanoseconds or datetimes (naive datetimes are UTC).  Day partitions
            outside the range are never opened.
        columns
            Columns to return (all by default), in the order given.
        clock
            The time column the range and the order refer to: ``"ts_recv"`` (market tables' default),
            ``"ts_event"``, or ``"ts_start"`` (labels' and opportunities' default).  Partitions are dated by the
            partition clock, so with another clock the pruning keeps one extra day on each side.
        sort
            ``False`` skips the sort (the costliest part of a scan): rows come file by file in ``(exchange, day,
            append)`` order, each file in its stored ``(symbol, clock)`` order.  A stable sort by clock then gives
            the same order of equal keys as the sorted scan does.

        Returns
        -------
        polars.LazyFrame
            Rows ordered by ``(symbol, clock, exchange)``, equal keys in append order (unless ``sort=False``); an
            empty frame with the table's schema when nothing is stored.

        Examples
        --------
        >>> import tempfile
        >>> Store(tempfile.mkdtemp()).scan("trades").collect().shape
        (0, 9)
        """
        spec = _table(table)
        part_clock = PARTITION_CLOCK[table]
        if clock is None or (clock == "ts_recv" and "ts_recv" not in spec.names):
            clock = part_clock
        if clock not in spec.names or spec.column(clock).type != pa.int64():
            raise StoreError(f"clock {clock!r} is not a timestamp column of table {table!r}")
        if columns is not None:
            unknown = [c for c in columns if c not in spec.names]
            if unknown:
                raise StoreError(f"table {table!r} has no column {unknown[0]!r}")
        lo = _to_ns(start, "start")
        hi = _to_ns(end, "end")
        exchanges = _as_list(exchange)
        symbols = _as_list(symbol)
        if exchanges is not None and not _has_exchange(spec):
            raise StoreError(f"table {table!r} has no exchange column to filter on")

        slack = 0 if clock == part_clock else 1
        first_day = None if lo is None else _EPOCH + dt.timedelta(days=lo // _NS_PER_DAY - slack)
        last_day = None if hi is None else _EPOCH + dt.timedelta(days=(hi - 1) // _NS_PER_DAY + slack)
        files = []
        for part in self._parts(spec, exchanges):
            if first_day is not None and part.day < first_day:
                continue
            if last_day is not None and part.day > last_day:
                continue
            self._check_file(spec, part.path)
            files.append(str(part.path))

        if not files:
            frame = schema.empty(spec).lazy()
        else:
            frame = pl.scan_parquet(files, hive_partitioning=False, schema=spec.polars)
        predicates = []
        if symbols is not None:
            predicates.append(pl.col("symbol").is_in(symbols))
        if lo is not None:
            predicates.append(pl.col(clock) >= lo)
        if hi is not None:
            predicates.append(pl.col(clock) < hi)
        if exchanges is not None:
            predicates.append(pl.col("exchange").is_in(exchanges))
        if predicates:
            frame = frame.filter(pl.all_horizontal(predicates))
        if sort:
            frame = frame.sort(_sort_key(spec, clock), maintain_order=True)
        if columns is not None:
            frame = frame.select(list(columns))
        return frame

    # ------------------------------------------------------------------------------------------ inventory
    def tables(self) -> list[str]:
        """Stored tables that hold at least one file, in :data:`PARTITION_CLOCK` order."""
        return [name for name in PARTITION_CLOCK if self._parts(schema.TABLES[name])]

    def days(self, table: str) -> list[dt.date]:
        """The UTC days the table has data for, ascending."""
        return sorted({p.day for p in self._parts(_table(table))})

    def info(self) -> StoreInfo:
        """Rows, files, bytes, exchanges, symbols, days and the clock's min/max per table.

        Row counts and time bounds come from the Parquet footers; symbols from reading the (dictionary-encoded)
        ``symbol`` column.
        """
        out: dict[str, TableInfo] = {}
        for name in self.tables():
            spec = schema.TABLES[name]
            clock = PARTITION_CLOCK[name]
            parts = self._parts(spec)
            rows = size = 0
            ts_min: int | None = None
            ts_max: int | None = None
            index = spec.names.index(clock)
            for part in parts:
                self._check_file(spec, part.path)
                size += part.path.stat().st_size
                meta = pq.read_metadata(part.path)
                rows += meta.num_rows
                for g in range(meta.num_row_groups):
                    stats = meta.row_group(g).column(index).statistics
                    if stats is None or not stats.has_min_max:
                        continue
                    ts_min = stats.min if ts_min is None else min(ts_min, stats.min)
                    ts_max = stats.max if ts_max is None else max(ts_max, stats.max)
            symbols = (
                pl.scan_parquet([str(p.path) for p in parts], hive_partitioning=False)
                .select(pl.col("symbol").unique())
                .collect()
                .get_column("symbol")
                .sort()
                .to_list()
            )
            exchanges = sorted({p.exchange for p in parts if p.exchange is not None})
            out[name] = TableInfo(
                table=name,
                exchanges=exchanges,
                symbols=symbols,
                rows=rows,
                ts_min=ts_min,
                ts_max=ts_max,
                files=len(parts),
                bytes=size,
                days=sorted({p.day for p in parts}),
            )
        return StoreInfo(str(self.root), out)
