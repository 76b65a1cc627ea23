"""Tasks (Monday.com items, CRM tasks): the filtered list with the deal's and the account's names. Read-only.

`overdue` compares `due_date` with the database's CURRENT_DATE (its session time zone)."""
from __future__ import annotations

from typing import Any

import psycopg

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, ranges, run_query

SPEC = QuerySpec(
    entity="tasks",
    alias="t",
    from_sql="tasks t"
             " LEFT JOIN deals dl ON dl.workspace_id = t.workspace_id AND dl.id = t.deal_id"
             " LEFT JOIN accounts acc ON acc.workspace_id = t.workspace_id AND acc.id = t.account_id",
    select="""t.id, t.title, t.description, t.status, t.priority, t.due_date, t.completed_at, t.assignee,
        t.assignee_email, t.project, t.url, t.contact_id, t.account_id, acc.name AS account_name, t.deal_id,
        dl.name AS deal_name, t.custom_fields, t.source, t.source_id, t.source_created_at, t.source_updated_at,
        t.created_at, t.updated_at, t.deleted_at""",
    filters={
        **common_filters("t"),
        "status": Filter("eq", "t.status", "ci"),
        "priority": Filter("eq", "t.priority", "ci"),
        "assignee": Filter("eq", "t.assignee", "ci"),
        "assignee_email": Filter("eq", "t.assignee_email", "ci"),
        "project": Filter("eq", "t.project", "ci"),
        "deal_id": Filter("eq", "t.deal_id", "uuid"),
        "account_id": Filter("eq", "t.account_id", "uuid"),
        "contact_id": Filter("eq", "t.contact_id", "uuid"),
        "linked": Filter("present", "t.deal_id"),
        "has_account": Filter("present", "t.account_id"),
        "completed": Filter("present", "t.completed_at"),
        "overdue": Filter("flag", "t.completed_at IS NULL AND t.due_date IS NOT NULL AND t.due_date < CURRENT_DATE"),
        **ranges("due", "t.due_date", "date"),
        "search": Filter("text", ("t.title", "t.description")),
    },
    sorts={
        "due_date": Sort("t.due_date", "date"),
        "completed_at": Sort("t.completed_at", "timestamp"),
        "title": Sort("lower(t.title)", "text"),
        "created": Sort("COALESCE(t.source_created_at, t.created_at)", "timestamp"),
    },
    default_sort="due_date",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of tasks; see SPEC.filters / SPEC.sorts for the names (default: due date, soonest first)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)
