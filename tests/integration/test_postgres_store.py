"""PostgresStore and the migration runner against a real PostgreSQL (one schema per test)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from arbkit.schema import FILLS, OPPORTUNITIES, ORDERS, POSITIONS, SchemaError
from live.storage import (
    DAY_NS,
    MIGRATIONS_DIR,
    RISK_SNAPSHOTS,
    MigrationError,
    PostgresStore,
    StorageUnavailableError,
    create_pool,
    load_migrations,
    migrate,
)

pytestmark = pytest.mark.integration

T0 = 1_714_521_600 * 1_000_000_000  # 2024-05-01T00:00:00Z


def opportunities(n: int = 3, day_step: int = 1, profit: float = 1.25, ts_end_shift: int = 0) -> pl.DataFrame:
    ts = [T0 + i * day_step * DAY_NS + 17 for i in range(n)]
    return pl.DataFrame(
        {
            "id": [f"opp-{i}" for i in range(n)],
            "kind": ["cross_exchange"] * n,
            "ts_start": ts,
            "ts_end": [t + 1_000 + ts_end_shift for t in ts],
            "symbol": ["BTC/USDT"] * n,
            "legs": [
                [
                    {"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "price": 100.1, "size": 0.3},
                    {"exchange": "okx", "symbol": "BTC/USDT", "side": "sell", "price": 100.7, "size": 1e-7},
                ]
            ]
            * n,
            "buy_exchange": ["binance"] * n,
            "sell_exchange": ["okx"] * n,
            "buy_price": [100.1, None, 0.1 + 0.2][:n] + [1.0] * max(0, n - 3),
            "sell_price": [100.7] * n,
            "size": [0.3] * n,
            "profit": [profit] * n,
            "peak_profit": [2.5] * n,
            "profit_percentage": [0.0001] * n,
            "confidence": [0.9] * n,
            "rows": [4] * n,
            "status": ["active"] * n,
        },
    ).pipe(lambda f: f.with_columns(pl.col("legs").cast(OPPORTUNITIES.polars["legs"])))


def fills(n: int = 4) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "fill_id": [f"f{i}" for i in range(n)],
            "order_id": [f"o{i % 2}" for i in range(n)],
            "exchange": ["binance"] * n,
            "symbol": ["BTC/USDT"] * n,
            "side": ["buy", "sell"] * (n // 2) + ["buy"] * (n % 2),
            "quantity": [Decimal("0.1") + Decimal("0.2")] * n,
            "price": [Decimal("64000.123456789012345678")] * n,
            "fee": [Decimal("0.000000000000000001")] * n,
            "fee_currency": ["USDT"] * n,
            "liquidity": ["taker"] * n,
            "ts": [T0 + i * DAY_NS // 2 for i in range(n)],
        },
        schema=FILLS.polars,
    )


def orders() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": ["o0", "o1"],
            "client_order_id": ["c0", None],
            "exchange": ["binance", "okx"],
            "symbol": ["BTC/USDT", "ETH/USDT"],
            "side": ["buy", "sell"],
            "type": ["limit", "market"],
            "time_in_force": ["GTC", "IOC"],
            "quantity": [Decimal("0.3"), Decimal("2")],
            "price": [Decimal("64000.5"), None],
            "status": ["new", "filled"],
            "filled_quantity": [Decimal("0"), Decimal("2")],
            "average_price": [None, Decimal("3000.25")],
            "fees": [Decimal("0"), Decimal("0.006")],
            "created_at": [T0, T0 + 5],
            "updated_at": [T0, T0 + 9],
        },
        schema=ORDERS.polars,
    )


def positions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "exchange": ["binance", "okx"],
            "symbol": ["BTC/USDT", "ETH/USDT"],
            "quantity": [Decimal("0.3"), Decimal("-2")],
            "average_price": [Decimal("64000.5"), None],
            "realized_pnl": [Decimal("0.1") + Decimal("0.2"), Decimal("-1.5")],
            "unrealized_pnl": [None, Decimal("12.000000000000000001")],
            "updated_at": [T0, T0 + 1],
        },
        schema=POSITIONS.polars,
    )


def risk_snapshots() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0, T0 + 1],
            "equity": [Decimal("100000.01"), Decimal("99999.99")],
            "gross_notional": [5000.0, 5100.5],
            "net_notional": [-20.0, 0.1 + 0.2],
            "value_at_risk": [120.0, 121.5],
            "expected_shortfall": [None, 150.0],
            "leverage": [0.05, 0.051],
            "details": [None, '{"breaches": []}'],
        },
        schema=RISK_SNAPSHOTS.polars,
    )


async def _store(pool: object, schema: str) -> PostgresStore:
    await migrate(pool, schema)
    return PostgresStore(pool, schema)


@pytest.mark.parametrize("method", ["copy", "executemany"])
def test_every_table_round_trips_exactly(pg_dsn: str, pg_schema: str, method: str) -> None:
    async def run() -> None:
        async with create_pool(pg_dsn, max_size=2) as pool:
            store = await _store(pool, pg_schema)
            cases = [
                (store.write_opportunities, store.read_opportunities, opportunities(), OPPORTUNITIES),
                (store.write_fills, store.read_fills, fills(), FILLS),
                (store.write_orders, store.read_orders, orders(), ORDERS),
                (store.write_positions, store.read_positions, positions(), POSITIONS),
                (store.write_risk_snapshots, store.read_risk_snapshots, risk_snapshots(), RISK_SNAPSHOTS),
            ]
            for write, read, frame, table in cases:
                assert await write(frame, method=method) == frame.height
                back = await read()
                assert back.schema == table.polars, table.name
                assert_frame_equal(back, frame.sort(list(table.sort_key)))

    asyncio.run(run())


def test_numeric_is_exact(pg_dsn: str, pg_schema: str) -> None:
    async def run() -> None:
        async with create_pool(pg_dsn, max_size=1) as pool:
            store = await _store(pool, pg_schema)
            await store.write_fills(fills(1))
            back = await store.read_fills()
            assert back["quantity"].to_list() == [Decimal("0.3")]
            assert back["fee"].to_list() == [Decimal("1e-18")]
            async with pool.acquire() as conn:
                total = await conn.fetchval(f'SELECT quantity + fee FROM "{pg_schema}".fills')
            assert total == Decimal("0.300000000000000001")

    asyncio.run(run())


def test_partitions_are_created_per_day(pg_dsn: str, pg_schema: str) -> None:
    async def run() -> None:
        async with create_pool(pg_dsn, max_size=1) as pool:
            store = await _store(pool, pg_schema)
            await store.write_opportunities(opportunities(3, day_step=1))  # 3 days
            await store.write_fills(fills(4))  # ts every half day: 2 days
            await store.write_fills(fills(4))  # same days again: no new partition, duplicates ignored
            assert await store.partitions("opportunities") == [
                "opportunities_p20240501",
                "opportunities_p20240502",
                "opportunities_p20240503",
            ]
            assert await store.partitions("fills") == ["fills_p20240501", "fills_p20240502"]
            assert (await store.read_fills()).height == 4
            assert (await store.read_opportunities(start=T0 + DAY_NS, end=T0 + 2 * DAY_NS)).height == 1
            # a second store (another process) finds existing partitions without error
            other = PostgresStore(pool, pg_schema)
            await other.write_opportunities(opportunities(3))
            assert len(await other.partitions("opportunities")) == 3

    asyncio.run(run())


def test_opportunity_upsert_is_idempotent_and_never_goes_back(pg_dsn: str, pg_schema: str) -> None:
    async def run() -> None:
        async with create_pool(pg_dsn, max_size=1) as pool:
            store = await _store(pool, pg_schema)
            first = opportunities(3)
            for method in ("copy", "executemany", "copy"):  # at-least-once: the same batch delivered 3 times
                await store.write_opportunities(first, method=method)  # type: ignore[arg-type]
            assert_frame_equal(await store.read_opportunities(), first)
            later = opportunities(3, profit=9.0, ts_end_shift=500).with_columns(status=pl.lit("expired"))
            await store.write_opportunities(later)
            await store.write_opportunities(first)  # a stale redelivery must not overwrite the newer episode
            back = await store.read_opportunities()
            assert back["profit"].to_list() == [9.0] * 3
            assert back["status"].to_list() == ["expired"] * 3
            # duplicates inside one batch collapse to the newest row
            both = pl.concat([later.with_columns(profit=pl.lit(11.0), ts_end=pl.col("ts_end") + 1), later])
            await store.write_opportunities(both, method="copy")
            assert (await store.read_opportunities())["profit"].to_list() == [11.0] * 3

    asyncio.run(run())


def test_bad_frame_is_rejected_before_any_io() -> None:
    class NoPool:
        def acquire(self) -> None:
            raise AssertionError("the database was touched")

    async def run() -> None:
        store = PostgresStore(NoPool())
        bad = opportunities(2).with_columns(profit=pl.lit(float("nan")))
        with pytest.raises(SchemaError, match="'profit', row 0: NaN"):
            await store.write_opportunities(bad)
        with pytest.raises(SchemaError, match="required column is missing"):
            await store.write_fills(fills(2).drop("fee"))

    asyncio.run(run())


def test_migrations_are_idempotent_and_concurrent_safe(pg_dsn: str, pg_schema: str) -> None:
    versions = [m.version for m in load_migrations()]

    async def run() -> None:
        async with create_pool(pg_dsn, min_size=4, max_size=4) as pool:
            results = await asyncio.gather(*(migrate(pool, pg_schema) for _ in range(4)))
            assert sorted(results, key=len) == [[], [], [], versions]
            assert await migrate(pool, pg_schema) == []
            async with pool.acquire() as conn:
                rows = await conn.fetch(f'SELECT version FROM "{pg_schema}".schema_migrations ORDER BY version')
            assert [r["version"] for r in rows] == versions

    asyncio.run(run())


def test_edited_or_failing_migration(pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    for m in load_migrations():
        (tmp_path / f"{m.version:03d}_{m.name}.sql").write_text(m.sql)

    async def run() -> None:
        async with create_pool(pg_dsn, max_size=1) as pool:
            await migrate(pool, pg_schema, tmp_path)
            (tmp_path / "001_init.sql").write_text((MIGRATIONS_DIR / "001_init.sql").read_text() + "\n-- edited")
            with pytest.raises(MigrationError, match="changed after it was applied"):
                await migrate(pool, pg_schema, tmp_path)
            (tmp_path / "001_init.sql").write_text((MIGRATIONS_DIR / "001_init.sql").read_text())
            (tmp_path / "003_ok.sql").write_text("CREATE TABLE extra (x INT);")
            (tmp_path / "004_broken.sql").write_text("CREATE TABLE nope (;")
            with pytest.raises(asyncpg.PostgresSyntaxError):
                await migrate(pool, pg_schema, tmp_path)
            async with pool.acquire() as conn:  # the failure rolled back 003 too
                assert await conn.fetchval("SELECT to_regclass($1)", f'"{pg_schema}".extra') is None

    asyncio.run(run())


def test_lost_connection_raises_a_clear_error(pg_dsn: str, pg_schema: str) -> None:
    app = f"arbkit-lost-{pg_schema}"

    async def terminate() -> None:
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.05)

    async def run() -> None:
        conn = await asyncpg.connect(pg_dsn, server_settings={"application_name": app})
        try:
            store = await _store(conn, pg_schema)
            await store.write_orders(orders())
            await terminate()
            with pytest.raises(StorageUnavailableError, match="connection lost"):
                await store.read_orders()
        finally:
            await conn.close()
        # a pool replaces a connection the server closed while idle: the next call just works
        async with create_pool(pg_dsn, min_size=1, max_size=1, server_settings={"application_name": app}) as pool:
            store = PostgresStore(pool, pg_schema)
            await store.read_orders()
            await terminate()
            assert (await store.read_orders()).height == 2
        with pytest.raises(StorageUnavailableError, match="unavailable"):
            async with create_pool("postgresql://postgres@127.0.0.1:1/test", timeout=2):
                pass

    asyncio.run(run())
