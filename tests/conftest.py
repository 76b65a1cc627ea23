"""Test fixtures: a real PostgreSQL (the same embedded / DATABASE_URL logic as the app), one migrated template
database per session, and a fresh clone of it for every test that asks for `db`."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from core.credentials import Vault
from core.db import embedded
from core.db.database import Database, check_connect
from core.db.migrate import migrate_url
from core.settings import Settings

TEMPLATE = f"pandora_test_tpl_{os.getpid()}"


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of a maintenance database on the test server (may create databases)."""
    base = Settings.from_env()
    if base.database_url:
        return base.database_url
    return embedded.server_uri(base.pandora_home)


def _create_db(admin: psycopg.Connection, name: str, template: str | None = None) -> None:
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    admin.execute(stmt)


def _drop_db(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db(server_url):
    settings = Settings.from_env()
    with check_connect(server_url) as admin:
        # Leftovers of killed runs would pile up: drop every test database whose owning pytest is gone.
        for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pandora_test_%'").fetchall():
            owner = name.removeprefix("pandora_test_").removeprefix("tpl_").split("_")[0]
            if not (owner.isdigit() and _alive(int(owner))):
                _drop_db(admin, name)
        _create_db(admin, TEMPLATE)
    migrate_url(embedded.with_database(server_url, TEMPLATE), settings.migrations_dir)
    yield TEMPLATE
    with check_connect(server_url) as admin:
        _drop_db(admin, TEMPLATE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@pytest.fixture
def db_url(server_url, template_db) -> str:
    name = f"pandora_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with check_connect(server_url) as admin:
        _create_db(admin, name, template_db)
    yield embedded.with_database(server_url, name)
    with check_connect(server_url) as admin:
        _drop_db(admin, name)


@pytest.fixture(scope="module")
def module_db(server_url, template_db) -> Database:
    """One database for a whole test module. For modules whose tests each work in a workspace of their own
    (every statement filters on workspace_id): a clone per test would cost more than the tests themselves."""
    name = f"pandora_test_{os.getpid()}_m{uuid.uuid4().hex[:10]}"
    with check_connect(server_url) as admin:
        _create_db(admin, name, template_db)
    database = Database(embedded.with_database(server_url, name), min_size=1, max_size=4)
    yield database
    database.close()
    with check_connect(server_url) as admin:
        _drop_db(admin, name)


@pytest.fixture(scope="module")
def module_settings(module_db, tmp_path_factory) -> Settings:
    """Settings for `module_db` (its own PANDORA_HOME for the module)."""
    return Settings(database_url=module_db.url, pandora_home=tmp_path_factory.mktemp("home"),
                    secret_key="test-secret-key")


@pytest.fixture
def db(db_url) -> Database:
    database = Database(db_url, min_size=1, max_size=4)
    yield database
    database.close()


@pytest.fixture
def settings(db_url, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, pandora_home=tmp_path / "home", secret_key="test-secret-key")


@pytest.fixture
def vault(settings) -> Vault:
    return Vault.from_settings(settings)


@pytest.fixture
def workspace(db) -> dict:
    from core.workspaces import create_workspace

    with db.connection() as conn:
        return create_workspace(conn, f"Acme RevOps {uuid.uuid4().hex[:6]}")


@pytest.fixture
def slack():
    """A fresh fake Slack Web API (tests/fakes/slack_api.py) on loopback."""
    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_client(slack):
    """The real slack_sdk WebClient, with the bot token, pointed at the fake."""
    from slack_sdk import WebClient

    return WebClient(token=slack.bot_token, base_url=slack.url)


@pytest.fixture
def sleeps() -> list:
    """The waits a sync engine asked for (recorded, never slept)."""
    return []


@pytest.fixture
def engine(db, vault, sleeps):
    """A sync engine over the test database whose retries and rate-limit waits go to `sleeps`."""
    from core.sync.orchestrator import SyncEngine

    return SyncEngine(db, vault, sleep=sleeps.append)
