"""Planner settings for a few statements: for plans the planner cannot price (JSON array elements it cannot
count, GIN searches with thousands of keys), a step turns a plan kind off around the one statement that needs it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import tuple_row


@contextmanager
def planner(conn: psycopg.Connection, **settings: str) -> Iterator[None]:
    """`settings` (e.g. enable_nestloop="off") for the statements of the block, in this transaction only, then
    back to what they were. After a failed statement the transaction is lost anyway: nothing is put back, so
    the statement's own error is the one raised."""
    if not settings:
        yield
        return
    names = list(settings)
    previous = conn.cursor(row_factory=tuple_row).execute(
        "SELECT " + ", ".join("current_setting(%s)" for _ in names), names).fetchone()
    _set(conn, settings)
    try:
        yield
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            _set(conn, dict(zip(names, previous)))


def _set(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    conn.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                 [v for pair in settings.items() for v in pair])
