from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from handlers import store


async def test_migrations_apply_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await store.migrate(conn) == []  # the session fixture already applied them
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == list(range(1, len(store.migration_files()) + 1))
    finally:
        await conn.close()


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    with pytest.raises(store.MigrationError, match="without gaps"):
        store.migration_files(tmp_path)


def test_migration_file_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "1_a.sql").write_text("SELECT 1")
    with pytest.raises(store.MigrationError, match="NNNN_name"):
        store.migration_files(tmp_path)
