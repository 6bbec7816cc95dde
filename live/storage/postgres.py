"""PostgreSQL store for the engine's records: opportunities, orders, fills, positions and risk snapshots.

Every write is validated against its `arbkit.schema` table *before* a connection is taken, so a bad frame raises
`arbkit.schema.SchemaError` and never reaches the database.  Reads return frames with the table's exact Polars
schema (checked by `arbkit.schema.validate`).

Layout (see ``migrations/``)
----------------------------
* Timestamps are ``BIGINT`` nanoseconds, money ``NUMERIC(38, 18)`` (exact: ``0.1 + 0.2`` reads back as
  ``Decimal("0.3")``), opportunity ``legs`` ``JSONB``.
* ``opportunities`` (by ``ts_start``) and ``fills`` (by ``ts``) are range-partitioned by UTC day; the partition
  for each day being written is created on demand (``opportunities_p20240501``), under an advisory lock so
  concurrent writers never race.  When the ``timescaledb`` extension was present at migration time they are
  hypertables instead and no partitions are created here.

Delivery semantics
------------------
The bus delivers at least once, so every write is an idempotent upsert keyed by the table's primary key:
opportunities by ``id`` (an episode re-delivered with a later ``ts_end`` updates the row; an older copy never
overwrites a newer one), orders by ``order_id`` (newer ``updated_at`` wins), positions by ``(exchange, symbol)``,
fills by ``fill_id`` (duplicates ignored), risk snapshots by ``ts``.  Batches of at least ``copy_threshold`` rows
go through binary ``COPY`` into a temporary staging table followed by one ``INSERT ... ON CONFLICT``; smaller
ones use ``executemany``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import polars as pl
import pyarrow as pa

from arbkit.schema import FILLS, OPPORTUNITIES, ORDERS, POSITIONS, Column, Table, validate
from live.storage._pool import acquire, guard, quote_ident

__all__ = ["DAY_NS", "RISK_SNAPSHOTS", "PostgresStore", "WriteMethod"]

DAY_NS = 86_400 * 1_000_000_000
_MONEY = pa.decimal128(38, 18)
WriteMethod = Literal["auto", "copy", "executemany"]

RISK_SNAPSHOTS = Table(
    "risk_snapshots",
    (
        Column("ts", pa.int64(), False, "positive"),
        Column("equity", _MONEY),
        Column("gross_notional", pa.float64(), False, "non_negative"),
        Column("net_notional", pa.float64(), False, "finite"),
        Column("value_at_risk", pa.float64(), False, "non_negative"),
        Column("expected_shortfall", pa.float64(), True, "non_negative"),
        Column("leverage", pa.float64(), False, "non_negative"),
        Column("details", pa.string(), True),  # free-form JSON (limits in force, breaches)
    ),
    sort_key=("ts",),
)
"""Risk snapshots: one row per evaluation of the book (the store's own table; not a research table)."""


@dataclass(frozen=True, slots=True)
class _Spec:
    table: Table
    key: tuple[str, ...]
    partition_by: str | None = None
    # upsert rule: None = ignore duplicates; otherwise update when this column does not go backwards
    newer: str | None = None
    update: bool = True


_SPECS = {
    "opportunities": _Spec(OPPORTUNITIES, ("id", "ts_start"), "ts_start", "ts_end"),
    "fills": _Spec(FILLS, ("fill_id", "ts"), "ts", update=False),
    "orders": _Spec(ORDERS, ("order_id",), None, "updated_at"),
    "positions": _Spec(POSITIONS, ("exchange", "symbol"), None, "updated_at"),
    "risk_snapshots": _Spec(RISK_SNAPSHOTS, ("ts",), None, None),
}


class PostgresStore:
    """Typed reads and idempotent writes of the engine's records on a caller-owned ``asyncpg`` pool.

    Parameters
    ----------
    pool
        An ``asyncpg.Pool`` (see `live.storage.create_pool`) or a single connection.
    schema
        PostgreSQL schema holding the tables, already migrated with `live.storage.migrate`.
    copy_threshold
        Batches with at least this many rows are written with ``COPY``; smaller ones with ``executemany``.

    Examples
    --------
    >>> async def main(pool) -> None:  # doctest: +SKIP
    ...     store = PostgresStore(pool, schema="public")
    ...     await store.write_fills(fills)
    ...     frame = await store.read_fills(start=t0, end=t1)
    """

    def __init__(self, pool: Any, schema: str = "public", *, copy_threshold: int = 64) -> None:
        self._pool = pool
        self.schema = schema
        self.copy_threshold = copy_threshold
        self._partitions: set[str] = set()
        self._partitioned: dict[str, bool] = {}

    # ------------------------------------------------------------------ writes
    async def write_opportunities(self, frame: pl.DataFrame, *, method: WriteMethod = "auto") -> int:
        """Upsert opportunities by ``id``; a copy with an older ``ts_end`` than the stored row is ignored.

        Returns the number of rows in the batch.  Raises `arbkit.schema.SchemaError` before any I/O if the
        frame does not match `arbkit.schema.OPPORTUNITIES`.
        """
        return await self._write("opportunities", frame, method)

    async def write_fills(self, frame: pl.DataFrame, *, method: WriteMethod = "auto") -> int:
        """Insert fills; a fill already stored (same ``fill_id`` and ``ts``) is ignored."""
        return await self._write("fills", frame, method)

    async def write_orders(self, frame: pl.DataFrame, *, method: WriteMethod = "auto") -> int:
        """Upsert orders by ``order_id``; the row with the newest ``updated_at`` wins."""
        return await self._write("orders", frame, method)

    async def write_positions(self, frame: pl.DataFrame, *, method: WriteMethod = "auto") -> int:
        """Upsert positions by ``(exchange, symbol)``; the row with the newest ``updated_at`` wins."""
        return await self._write("positions", frame, method)

    async def write_risk_snapshots(self, frame: pl.DataFrame, *, method: WriteMethod = "auto") -> int:
        """Upsert risk snapshots by ``ts`` (see `RISK_SNAPSHOTS`)."""
        return await self._write("risk_snapshots", frame, method)

    # ------------------------------------------------------------------ reads
    async def read_opportunities(
        self, *, start: int | None = None, end: int | None = None, kind: str | None = None
    ) -> pl.DataFrame:
        """Opportunities with ``start <= ts_start < end`` (ns; either bound optional), sorted by the table key."""
        return await self._read("opportunities", "ts_start", start, end, {"kind": kind})

    async def read_fills(
        self, *, start: int | None = None, end: int | None = None, order_id: str | None = None
    ) -> pl.DataFrame:
        """Fills with ``start <= ts < end``, optionally of one order."""
        return await self._read("fills", "ts", start, end, {"order_id": order_id})

    async def read_orders(self, *, status: str | None = None) -> pl.DataFrame:
        """Orders, optionally with one ``status``, sorted by ``created_at``."""
        return await self._read("orders", None, None, None, {"status": status})

    async def read_positions(self) -> pl.DataFrame:
        """Every position, sorted by ``(exchange, symbol)``."""
        return await self._read("positions", None, None, None, {})

    async def read_risk_snapshots(self, *, start: int | None = None, end: int | None = None) -> pl.DataFrame:
        """Risk snapshots with ``start <= ts < end``."""
        return await self._read("risk_snapshots", "ts", start, end, {})

    async def partitions(self, table: Literal["opportunities", "fills"]) -> list[str]:
        """Names of the day partitions of ``table`` (from ``pg_inherits``), sorted."""
        async with guard(), acquire(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = $1::regclass ORDER BY c.relname",
                f"{quote_ident(self.schema)}.{quote_ident(table)}",
            )
        return [str(r["relname"]) for r in rows]

    # ------------------------------------------------------------------ plumbing
    def _qualified(self, name: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(name)}"

    async def _write(self, name: str, frame: pl.DataFrame, method: WriteMethod) -> int:
        spec = _SPECS[name]
        frame = validate(frame, spec.table)  # before any I/O: bad input never reaches the database
        if frame.height == 0:
            return 0
        if spec.update:  # one row per key, or ON CONFLICT DO UPDATE would touch a row twice
            if spec.newer is not None:
                frame = frame.sort(spec.newer, maintain_order=True)
            frame = frame.unique(subset=list(spec.key), keep="last", maintain_order=True)
        records = _to_records(frame, spec.table)
        use_copy = method == "copy" or (method == "auto" and frame.height >= self.copy_threshold)
        async with guard(), acquire(self._pool) as conn:
            if spec.partition_by is not None:
                await self._ensure_partitions(conn, name, frame.get_column(spec.partition_by))
            async with conn.transaction():
                if use_copy:
                    stage = f"_arbkit_stage_{name}"
                    await conn.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {quote_ident(stage)} "
                        f"(LIKE {self._qualified(name)}) ON COMMIT DELETE ROWS"
                    )
                    await conn.copy_records_to_table(stage, records=records, columns=spec.table.names)
                    cols = ", ".join(quote_ident(c) for c in spec.table.names)
                    await conn.execute(self._upsert_sql(spec, f"SELECT {cols} FROM {quote_ident(stage)}"))
                else:
                    placeholders = ", ".join(f"${i + 1}" for i in range(len(spec.table.names)))
                    await conn.executemany(self._upsert_sql(spec, f"VALUES ({placeholders})"), records)
        return frame.height

    def _upsert_sql(self, spec: _Spec, source: str) -> str:
        cols = ", ".join(quote_ident(c) for c in spec.table.names)
        target = self._qualified(spec.table.name)
        sql = f"INSERT INTO {target} ({cols}) {source} ON CONFLICT ({', '.join(spec.key)}) "
        if not spec.update:
            return sql + "DO NOTHING"
        sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in spec.table.names if c not in spec.key)
        sql += f"DO UPDATE SET {sets}"
        if spec.newer is not None:
            sql += f" WHERE {target}.{quote_ident(spec.newer)} <= EXCLUDED.{quote_ident(spec.newer)}"
        return sql

    async def _ensure_partitions(self, conn: Any, name: str, ts: pl.Series) -> None:
        if name not in self._partitioned:
            kind = await conn.fetchval(
                "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1 AND c.relname = $2",
                self.schema,
                name,
            )
            self._partitioned[name] = kind == "p"  # 'r' = plain table or TimescaleDB hypertable
        if not self._partitioned[name]:
            return
        days = (ts // DAY_NS).unique().sort().to_list()
        for day in days:
            part = f"{name}_p{(dt.datetime(1970, 1, 1) + dt.timedelta(days=int(day))):%Y%m%d}"
            if part in self._partitions:
                continue
            async with conn.transaction():
                # serialize creators of the same partition across processes; IF NOT EXISTS makes it idempotent
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}.{part}")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._qualified(part)} PARTITION OF {self._qualified(name)} "
                    f"FOR VALUES FROM ({int(day) * DAY_NS}) TO ({(int(day) + 1) * DAY_NS})"
                )
            self._partitions.add(part)

    async def _read(
        self, name: str, ts_column: str | None, start: int | None, end: int | None, equal: dict[str, str | None]
    ) -> pl.DataFrame:
        table = _SPECS[name].table
        where: list[str] = []
        args: list[object] = []
        if ts_column is not None and start is not None:
            args.append(start)
            where.append(f"{quote_ident(ts_column)} >= ${len(args)}")
        if ts_column is not None and end is not None:
            args.append(end)
            where.append(f"{quote_ident(ts_column)} < ${len(args)}")
        for column, value in equal.items():
            if value is not None:
                args.append(value)
                where.append(f"{quote_ident(column)} = ${len(args)}")
        cols = ", ".join(quote_ident(c) for c in table.names)
        sql = f"SELECT {cols} FROM {self._qualified(name)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if table.sort_key:
            sql += " ORDER BY " + ", ".join(quote_ident(c) for c in table.sort_key)
        async with guard(), acquire(self._pool) as conn:
            rows = await conn.fetch(sql, *args)
        return _from_records(rows, table)


def _to_records(frame: pl.DataFrame, table: Table) -> list[tuple[Any, ...]]:
    if "legs" in table.names:
        legs = [orjson.dumps(v).decode() for v in frame.get_column("legs").to_list()]
        frame = frame.with_columns(pl.Series("legs", legs, dtype=pl.String))
    return frame.rows()


def _from_records(rows: Sequence[Any], table: Table) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {c: [r[i] for r in rows] for i, c in enumerate(table.names)}
    if "legs" in columns:
        columns["legs"] = [orjson.loads(v) for v in columns["legs"]]
    arrow = pa.table({c: pa.array(v, type=table.column(c).type) for c, v in columns.items()}, schema=table.arrow)
    frame = pl.from_arrow(arrow)
    assert isinstance(frame, pl.DataFrame)
    return validate(frame, table)
