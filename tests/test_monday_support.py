"""Shared setup for the monday.com tests: the seeded fake API, the connector pointed at it (small pages), a
connected workspace, and an `engine` whose waits move the fake's clock (a complexity-budget wait really lets the
budget reset and an old cursor really expire), recorded in `sleeps` and never slept.

Every test works in a workspace of its own, so the module shares one database (`db`, `vault` and `workspace`
are rebound to `module_db`): a clone per test would cost more than the tests themselves."""
from __future__ import annotations

import pytest

from connectors.monday.connector import MondayConnector
from core.connections import save_connection
from core.credentials import Vault
from core.sync import registry
from core.sync.orchestrator import SyncEngine
from tests.fakes.monday_api import BOARD, FakeMonday
from tests.support import new_workspace, rows

TOKEN = "monday-test-token"
FAST = {"per_second": 100_000}


@pytest.fixture
def db(module_db):
    return module_db


@pytest.fixture
def vault(module_settings):
    return Vault.from_settings(module_settings)


@pytest.fixture
def workspace(module_db):
    return new_workspace(module_db, "Monday")


@pytest.fixture
def monday():
    with FakeMonday(TOKEN) as fake:
        fake.seed_fixture_board()
        yield fake


@pytest.fixture
def connector(monday):
    from connectors import load_all

    load_all()
    c = MondayConnector(monday.url, page_size=2, board_page_size=2, user_page_size=1, activity_page_size=2)
    with registry.registered(c):
        yield c


@pytest.fixture
def engine(db, vault, sleeps, monday):
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        monday.advance(seconds)

    return SyncEngine(db, vault, sleep=sleep)


def connect(db, vault, workspace, token: str = TOKEN, **metadata) -> None:
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "monday", {"api_token": token},
                        metadata={"rate_limit": FAST, **metadata})


def tasks(db, workspace) -> dict[str, dict]:
    return {r["source_id"]: r for r in rows(db, workspace, "SELECT * FROM tasks WHERE workspace_id = %s"
                                            " AND source = 'monday'")}


def task_count(db, workspace) -> tuple[int, int]:
    [row] = rows(db, workspace, "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM tasks"
                 " WHERE workspace_id = %s AND source = 'monday'")
    return row["n"], row["d"]


__all__ = ["BOARD", "FAST", "TOKEN", "connect", "task_count", "tasks"]
