"""Migration runner: numbered SQL files applied once, in order, atomically, one process at a time."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live.storage._errors import MigrationError
from live.storage._pool import acquire as _acquire
from live.storage._pool import guard, quote_ident

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
# pg_advisory_xact_lock key space shared by every arbkit process: (class id, hash of the schema name)
_LOCK_CLASS = 0x4152424B  # "ARBK"


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: ``version`` from its number, ``checksum`` (SHA-256) of its text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The ``NNN_name.sql`` files of ``directory`` sorted by version; other names raise `MigrationError`."""
    out: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNN_lower_snake.sql")
        out.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}: {versions}")
    return sorted(out, key=lambda m: m.version)


async def migrate(pool: Any, schema: str = "public", directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the migrations of ``directory`` not yet recorded in ``<schema>.schema_migrations``.

    Everything runs in one transaction holding a transaction-level advisory lock keyed by the schema, so two
    processes migrating at once serialize: the second waits, then finds nothing left to do.  A failing file
    rolls back every migration of the call.  An applied migration whose file changed since raises
    `MigrationError` (edit history by adding a new file, never by rewriting one).

    Parameters
    ----------
    pool
        An ``asyncpg.Pool`` (or a single ``asyncpg.Connection``).
    schema
        Target schema, created if absent; migrations run with ``search_path`` set to it.

    Returns
    -------
    list[int]
        Versions applied by this call, in order (empty when the schema was up to date).
    """
    migrations = load_migrations(directory)
    name = quote_ident(schema)
    async with guard(), _acquire(pool) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", _LOCK_CLASS, schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        await conn.execute(f"SET LOCAL search_path TO {name}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {int(r["version"]): str(r["checksum"]) for r in await conn.fetch("SELECT * FROM schema_migrations")}
        done: list[int] = []
        for m in migrations:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise MigrationError(f"migration {m.version:03d}_{m.name} changed after it was applied")
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            done.append(m.version)
        return done
