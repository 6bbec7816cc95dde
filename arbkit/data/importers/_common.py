"""Shared machinery of the importers: opening (plain, gzip, zip), streaming CSV chunks with physical line
numbers, parsing text fields with per-field rejects, mapping symbols, and staging writes so a failed strict import
leaves the store as it was.

Row rules common to every importer: an empty line carries no data and is skipped (counted in
``ImportReport.rows_skipped``, never an error); a timestamp that would overflow int64 nanoseconds once converted is
a reject naming its field (it would otherwise wrap around to a plausible date); value rules (NaN, sign, crossed
quotes) are checked once, by :meth:`arbkit.data.store.Store.append_valid` as the rows are written."""

from __future__ import annotations

import bisect
import contextlib
import gzip
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from arbkit import schema
from arbkit.data.store import Store
from arbkit.instruments import Registry, SymbolError, UnknownInstrumentError, default_registry

#: How many rejects an :class:`ImportReport` keeps verbatim (all are counted).
MAX_REJECTS = 1_000


class ImportDataError(ValueError):
    """Bad input in a vendor file: names the file, the 1-based line (counting the header) and the field.

    ``line`` and ``field`` are ``None`` for faults of the whole file (a checksum mismatch, an unknown layout).
    """

    def __init__(self, file: str, line: int | None, field: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
        where = file + (f":{line}" if line is not None else "")
        what = f" field {field!r}:" if field is not None else ""
        super().__init__(f"{where}:{what} {reason}")


@dataclass(frozen=True, slots=True)
class Reject:
    """One skipped input row."""

    file: str
    line: int | None
    field: str | None
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did: files read, rows written per table, rows rejected (first :data:`MAX_REJECTS` kept).

    ``rows_skipped`` counts rows that carry nothing for any table (e.g. a ticker row without a funding rate);
    they are not errors.
    """

    files: list[str] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=dict)
    rows_rejected: int = 0
    rows_skipped: int = 0
    rejects: list[Reject] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "rows_written": dict(self.rows_written),
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "rejects": [[r.file, r.line, r.field, r.reason] for r in self.rejects],
        }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path) -> bool:
    """Check ``path`` against its ``.CHECKSUM`` sidecar (``<sha256>  <name>``); False when there is none."""
    sidecar = path.with_name(path.name + ".CHECKSUM")
    if not sidecar.exists():
        return False
    text = sidecar.read_text(encoding="ascii", errors="replace").split()
    if not text:
        raise ImportDataError(str(path), None, None, f"empty checksum file {sidecar.name}")
    want = text[0].lower()
    got = sha256_of(path)
    if got != want:
        raise ImportDataError(str(path), None, None, f"SHA-256 {got} does not match {sidecar.name} ({want})")
    return True


def base_name(path: Path) -> str:
    """File name without the compression and ``.csv`` suffixes."""
    name = path.name
    for suffix in (".gz", ".zip", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


@contextlib.contextmanager
def open_text_bytes(path: Path) -> Iterator[IO[bytes]]:
    """A binary stream of the CSV inside ``path`` (plain, ``.gz`` or a one-member ``.zip``), decompressed lazily."""
    name = path.name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise ImportDataError(str(path), None, None, f"zip holds {len(members)} files, expected one CSV")
            with archive.open(members[0]) as fh:
                yield fh
    elif name.endswith(".gz"):
        with gzip.open(path, "rb") as gz:
            yield gz  # type: ignore[misc]
    else:
        with path.open("rb") as fh:
            yield fh


def peek_first_line(stream: IO[bytes]) -> tuple[bytes, IO[bytes]]:
    """The first line, and a stream that still starts at the beginning."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
    head = buffered.peek(1 << 16)
    return head.split(b"\n", 1)[0].rstrip(b"\r"), buffered


@dataclass(slots=True)
class Chunk:
    """Up to ``chunk_rows`` raw rows as strings, with the global index of its first row."""

    frame: pl.DataFrame
    first_index: int


class CsvStream:
    """Streams a CSV as string columns in chunks; malformed rows (wrong column count) are recorded by line.

    Every column is read as text and parsed afterwards, so an unparsable field becomes a reject naming its line
    and field instead of aborting the whole file.
    """

    def __init__(self, stream: IO[bytes], names: Sequence[str], *, header: bool, chunk_rows: int) -> None:
        self.names = list(names)
        self.header_lines = 1 if header else 0
        self.chunk_rows = chunk_rows
        self.malformed: list[tuple[int, str]] = []  # (physical line, reason), kept for line numbering
        self.reported = 0  # malformed rows already passed to the sink
        self._stream = stream

    def _on_invalid(self, row: Any) -> str:
        number = row.number if row.number is not None else -1
        self.malformed.append((number, f"expected {row.expected_columns} columns, found {row.actual_columns}"))
        return "skip"

    def __iter__(self) -> Iterator[Chunk]:
        reader = pacsv.open_csv(
            self._stream,
            read_options=pacsv.ReadOptions(
                column_names=self.names,
                skip_rows=self.header_lines,
                use_threads=False,  # physical line numbers of malformed rows are only known single-threaded
                block_size=4 << 20,
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=self._on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(self.names, pa.string()), strings_can_be_null=False
            ),
        )
        pending: list[pa.RecordBatch] = []
        rows = 0
        index = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= self.chunk_rows:
                yield Chunk(_frame(pending), index)
                index += rows
                pending, rows = [], 0
        if pending:
            yield Chunk(_frame(pending), index)

    def line_of(self, index: int) -> int:
        """Physical 1-based line of the ``index``-th delivered row, skipping over malformed lines before it."""
        line = self.header_lines + index + 1
        bad = sorted(n for n, _ in self.malformed)
        # each malformed line at or before the candidate pushes the row one line further down
        passed = 0
        while True:
            count = bisect.bisect_right(bad, line)
            if count == passed:
                return line
            line += count - passed
            passed = count


def _frame(batches: list[pa.RecordBatch]) -> pl.DataFrame:
    out = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(out, pl.DataFrame)
    return out


_TRUE = ("true", "True", "TRUE", "1")
_FALSE = ("false", "False", "FALSE", "0")


def parse_fields(
    raw: pl.DataFrame, types: Mapping[str, type[pl.DataType] | pl.DataType]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse text columns to ``types``; return (typed frame, rejects ``(row, field, reason)``).

    Empty text is null (never 0).  Text that does not parse is a reject naming the field; columns not in
    ``types`` stay text.
    """
    exprs = []
    bad_exprs = []
    for name, dtype in types.items():
        text = pl.col(name)
        empty = text.str.len_bytes() == 0
        if dtype == pl.Boolean:
            parsed = pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False).otherwise(None)
        else:
            parsed = text.str.strip_chars().cast(dtype, strict=False)
        parsed = pl.when(empty).then(None).otherwise(parsed)
        exprs.append(parsed.alias(name))
        bad_exprs.append((parsed.is_null() & ~empty).alias(name))
    typed = raw.with_columns(exprs)
    bad = raw.select(bad_exprs)
    reasons = []
    for name in types:
        hit = bad.get_column(name)
        if hit.any():
            rows = hit.arg_true()
            dtype = types[name]
            reasons.append(
                pl.DataFrame(
                    {
                        "row": rows.cast(pl.UInt32),
                        "field": [name] * rows.len(),
                        "reason": [f"cannot parse {raw.get_column(name)[int(r)]!r} as {dtype}" for r in rows],
                    }
                )
            )
    if not reasons:
        return typed, _no_rejects()
    rejects = pl.concat(reasons).sort("row", maintain_order=True).unique("row", keep="first", maintain_order=True)
    return typed, rejects


def _no_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.UInt32, "field": pl.String, "reason": pl.String})


_UNITS = ((10**11, 1_000_000_000, "s"), (10**14, 1_000_000, "ms"), (10**17, 1_000, "us"))
_I64_MAX = 2**63 - 1


def _unit_expr(values: pl.Expr) -> pl.Expr:
    """Factor to nanoseconds of each epoch timestamp, from its own magnitude."""
    size = values.abs()
    out: pl.Expr = pl.lit(1)
    for bound, factor, _ in reversed(_UNITS):
        out = pl.when(size < bound).then(factor).otherwise(out)
    return out


def ns_multiplier(values: pl.Series) -> int:
    """Factor to nanoseconds for epoch timestamps, by magnitude: s, ms, us or ns (Binance spot moved to us in 2025).

    The unit is that of the median magnitude, so one corrupt value cannot change the unit of a whole file;
    :func:`timestamp_rejects` then rejects the values in another unit.
    """
    size = values.drop_nulls().abs().median()
    if size is None:
        return 1
    top = int(size)  # type: ignore[arg-type]
    for bound, factor, _ in _UNITS:
        if top < bound:
            return factor
    return 1


def timestamp_rejects(
    typed: pl.DataFrame, columns: Sequence[str], multiplier: int, *, same_unit: bool = False
) -> pl.DataFrame:
    """Rejects ``(row, field, reason)`` for epoch timestamps that overflow int64 nanoseconds once multiplied by
    ``multiplier`` (they would wrap around silently) or, with ``same_unit``, whose magnitude says another unit than
    the file's.  ``row`` is the ``__row`` column of ``typed``."""
    unit = {factor: name for _, factor, name in _UNITS}.get(multiplier, "ns")
    limit = _I64_MAX // multiplier
    parts = []
    for name in columns:
        col = pl.col(name)
        overflow = (col > limit) | (col < -limit)
        bad = overflow | (_unit_expr(col) != multiplier) if same_unit else overflow
        hit = typed.filter(bad.fill_null(False))
        if hit.height:
            reason = (
                pl.when(overflow)
                .then(pl.format("timestamp {} overflows int64 nanoseconds", col))
                .otherwise(pl.format("timestamp {} is not in the file's unit ({})", col, pl.lit(unit)))
            )
            parts.append(
                hit.select(
                    pl.col("__row").cast(pl.UInt32).alias("row"), pl.lit(name).alias("field"), reason.alias("reason")
                )
            )
    return merge_rejects(*parts).sort("row") if parts else _no_rejects()


def blank_rows(raw: pl.DataFrame) -> pl.Series:
    """Row indexes of empty lines (every field empty): they carry no data, so they are skipped, not rejected."""
    names = [c for c in raw.columns if c != "__row"]
    blank = pl.all_horizontal([pl.col(c).str.len_bytes() == 0 for c in names])
    return raw.select(pl.int_range(pl.len(), dtype=pl.UInt32).filter(blank).alias("row")).get_column("row")


class SymbolMapper:
    """Caches venue-symbol -> (exchange, unified symbol) lookups and checks them against the registry.

    ``resolve`` returns ``None`` plus the reason for symbols that cannot be mapped, so callers reject rows.
    Exchanges outside the registry's venues are accepted with any well-formed symbol (their data is still
    useful for research); for registry venues the instrument must resolve (e.g. Coinbase lists no swaps).
    """

    def __init__(self, registry: Registry | None, resolve: Callable[[str, str], tuple[str, str]]) -> None:
        self.registry = registry if registry is not None else default_registry()
        self._resolve = resolve
        self._cache: dict[tuple[str, str], tuple[str, str] | str] = {}

    def resolve(self, venue: str, symbol: str) -> tuple[str, str] | str:
        key = (venue, symbol)
        hit = self._cache.get(key)
        if hit is None:
            try:
                exchange, unified = self._resolve(venue, symbol)
                if exchange in self.registry.venues:
                    self.registry.get(exchange, unified)
                hit = (exchange, unified)
            except (SymbolError, UnknownInstrumentError) as exc:
                hit = f"unknown symbol {symbol!r} on {venue!r}: {exc}"
            self._cache[key] = hit
        return hit

    def map_frame(self, frame: pl.DataFrame, venue_col: str, symbol_col: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Add ``__exchange``/``__symbol``; rejects ``(row, field, reason)`` for unmappable symbols."""
        pairs = frame.select(venue_col, symbol_col).unique()
        venues: list[Any] = []
        symbols: list[Any] = []
        exchanges: list[str | None] = []
        unified: list[str | None] = []
        errors: list[str | None] = []
        for venue, symbol in pairs.iter_rows():
            out = self.resolve(str(venue), str(symbol))
            venues.append(venue)
            symbols.append(symbol)
            if isinstance(out, str):
                exchanges.append(None)
                unified.append(None)
                errors.append(out)
            else:
                exchanges.append(out[0])
                unified.append(out[1])
                errors.append(None)
        table = pl.DataFrame(
            {venue_col: venues, symbol_col: symbols, "__exchange": exchanges, "__symbol": unified, "__error": errors},
            schema={
                venue_col: frame.schema[venue_col],
                symbol_col: frame.schema[symbol_col],
                "__exchange": pl.String,
                "__symbol": pl.String,
                "__error": pl.String,
            },
        )
        joined = frame.join(table, on=[venue_col, symbol_col], how="left", maintain_order="left")
        err = joined.get_column("__error")
        rejects = _no_rejects()
        if err.is_not_null().any():
            rows = err.is_not_null().arg_true()
            rejects = pl.DataFrame(
                {"row": rows.cast(pl.UInt32), "field": [symbol_col] * rows.len(), "reason": err.gather(rows)}
            )
        return joined.drop("__error"), rejects


class Sink:
    """Collects rejects, enforces ``skip_bad`` and stages store writes so a strict failure rolls back."""

    def __init__(self, store: Store, report: ImportReport, *, skip_bad: bool, progress: Callable[[int], None] | None):
        self.store = store
        self.report = report
        self.skip_bad = skip_bad
        self.progress = progress
        self.written: list[Path] = []

    def reject(self, file: str, line: int | None, field: str | None, reason: str) -> None:
        if not self.skip_bad:
            raise ImportDataError(file, line, field, reason)
        self.report.rows_rejected += 1
        if len(self.report.rejects) < MAX_REJECTS:
            self.report.rejects.append(Reject(file, line, field, reason))

    def reject_rows(self, file: str, stream: CsvStream, chunk: Chunk, rows: pl.DataFrame) -> None:
        """``rows``: ``(row, field, reason)`` with chunk-relative rows, at most one per row."""
        for row, name, reason in rows.sort("row").iter_rows():
            self.reject(file, stream.line_of(chunk.first_index + int(row)), name, reason)

    def malformed(self, file: str, stream: CsvStream) -> None:
        for line, reason in stream.malformed[stream.reported :]:
            stream.reported += 1
            self.reject(file, line if line > 0 else None, None, f"malformed CSV row: {reason}")

    def write_rows(
        self,
        file: str,
        stream: CsvStream,
        chunk: Chunk,
        table: schema.Table,
        rows: pl.DataFrame,
        earlier: pl.DataFrame,
        field_of: Callable[[pl.DataFrame, pl.DataFrame], list[str]],
        *,
        all_or_nothing: bool = False,
    ) -> None:
        """Write the mapped ``rows`` (with their chunk row in ``__row``), validated once by the store, and report
        ``earlier`` (parse and symbol rejects) together with the store's value rejects, in line order.

        ``field_of(rows, rejects)`` names the CSV field of each value reject (``rejects`` rows index ``rows``).
        ``all_or_nothing``: the output rows of one input row (a book snapshot's levels) are written together or
        not at all.
        """
        origin = rows.get_column("__row")
        files, count, bad = self.store.append_valid(
            table.name, rows.drop("__row"), group=origin if all_or_nothing else None
        )
        self.written.extend(files)
        value_bad = pl.DataFrame(
            {
                "row": origin.gather(bad.get_column("row")).cast(pl.UInt32),
                "field": field_of(rows, bad),
                "reason": bad.get_column("reason"),
            },
            schema={"row": pl.UInt32, "field": pl.String, "reason": pl.String},
        )
        self.reject_rows(file, stream, chunk, merge_rejects(earlier, value_bad))
        if count:
            self.report.rows_written[table.name] = self.report.rows_written.get(table.name, 0) + count

    def finish_chunk(self, file: str, stream: CsvStream, chunk: Chunk) -> None:
        self.malformed(file, stream)
        if self.progress is not None:
            self.progress(chunk.frame.height)

    def rollback(self) -> None:
        self.store.remove_files(self.written)
        self.written.clear()


def run_import(
    paths: Sequence[Path | str],
    store: Store,
    import_file: Callable[[Path, Sink], None],
    *,
    skip_bad: bool,
    progress: Callable[[int], None] | None,
    compact: bool,
) -> ImportReport:
    """The driver both importers share: import each file through ``import_file``, roll every file written back on
    any failure, then compact the tables written."""
    report = ImportReport()
    sink = Sink(store, report, skip_bad=skip_bad, progress=progress)
    try:
        for raw_path in paths:
            path = Path(raw_path)
            report.files.append(str(path))
            import_file(path, sink)
    except BaseException:
        sink.rollback()
        raise
    if compact:
        for table in report.rows_written:
            store.compact(table)
    return report


def fields_of(fields: Mapping[str, str]) -> Callable[[pl.DataFrame, pl.DataFrame], list[str]]:
    """A ``field_of`` for :meth:`Sink.write_rows` naming CSV fields through a table-column -> field map."""

    def name(_rows: pl.DataFrame, bad: pl.DataFrame) -> list[str]:
        return [fields.get(c, c) for c in bad.get_column("column")]

    return name


def without_rows(frame: pl.DataFrame, *rejects: pl.DataFrame | pl.Series) -> pl.DataFrame:
    """``frame`` (with its chunk row in ``__row``) less the rows named by ``rejects`` (frames with a ``row``
    column, or series of rows)."""
    rows = [r if isinstance(r, pl.Series) else r.get_column("row") for r in rejects]
    drop = pl.concat(rows) if rows else pl.Series("row", [], dtype=pl.UInt32)
    return frame.filter(~pl.col("__row").is_in(drop.implode()))


def merge_rejects(*parts: pl.DataFrame) -> pl.DataFrame:
    """Rejects from successive stages, all relative to the original chunk rows: first one per row wins."""
    nonempty = [p for p in parts if p.height]
    if not nonempty:
        return _no_rejects()
    return pl.concat(nonempty).unique("row", keep="first", maintain_order=True)
