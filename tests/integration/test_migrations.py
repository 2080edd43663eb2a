"""Alembic migrations of the integration database: empty to head, idempotent, matching the ORM.

Each test that takes ``db_url`` runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from servicegrid.integration.db import Base, alembic_config, upgrade_to_head
from tests.integration.conftest import running, sync_url


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(db_url: str) -> str | None:
    engine = sa.create_engine(sync_url(db_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_there_is_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_upgrade_creates_the_schema_on_an_empty_database(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = sa.create_engine(sync_url(db_url))
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == {
            "services",
            "workflows",
            "executions",
            "execution_steps",
            "integration_workers",
            "alembic_version",
        }
        columns = {column["name"] for column in inspector.get_columns("services")}
        assert columns == {
            "id",
            "name",
            "description",
            "endpoint",
            "status",
            "metadata",
            "actions",
            "created_at",
            "updated_at",
        }
        [unique] = inspector.get_unique_constraints("services")
        assert unique["column_names"] == ["name"]
    finally:
        engine.dispose()
    assert current_revision(db_url) == head_revision()


def test_upgrade_is_idempotent(db_url: str) -> None:
    upgrade_to_head(db_url)
    upgrade_to_head(db_url)
    assert current_revision(db_url) == head_revision()


def test_sync_urls_migrate_too(db_url: str) -> None:
    upgrade_to_head(sync_url(db_url))
    assert current_revision(db_url) == head_revision()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = sa.create_engine(sync_url(db_url))
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


async def test_app_start_migrates_and_restart_keeps_head(db_url: str) -> None:
    assert current_revision(db_url) is None
    async with running(db_url) as client:
        assert (await client.get("/api/health")).status_code == 200
    assert current_revision(db_url) == head_revision()
    async with running(db_url) as client:
        assert (await client.get("/api/services")).status_code == 200
    assert current_revision(db_url) == head_revision()
