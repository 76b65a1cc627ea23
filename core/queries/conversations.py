"""Conversations (recorded meetings from Gong, Fireflies): the filtered list with the deal's and the account's
names. Transcripts are never listed (they can be long; `has_transcript` says whether one is cached). Read-only.

`linked` is about the deal (linked=False: no deal_id), `has_account` about the account, so conversations
without deals are `{"internal": False, "has_account": True, "linked": False}`.
"""
from __future__ import annotations

from typing import Any

import psycopg

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, ranges, run_query

# Any participant whose email or name contains the term.
_PARTICIPANT = """EXISTS (SELECT 1 FROM jsonb_array_elements(
        CASE jsonb_typeof(cv.participants) WHEN 'array' THEN cv.participants ELSE '[]'::jsonb END) p
     WHERE p->>'email' ILIKE {v} OR p->>'name' ILIKE {v})"""

SPEC = QuerySpec(
    entity="conversations",
    alias="cv",
    from_sql="conversations cv"
             " LEFT JOIN deals dl ON dl.workspace_id = cv.workspace_id AND dl.id = cv.deal_id"
             " LEFT JOIN accounts acc ON acc.workspace_id = cv.workspace_id AND acc.id = cv.account_id",
    select="""cv.id, cv.title, cv.started_at, cv.duration_seconds, cv.organizer_email, cv.owner, cv.participants,
        cv.call_url, cv.summary, cv.transcript IS NOT NULL AS has_transcript, cv.contact_id, cv.account_id,
        acc.name AS account_name, cv.deal_id, dl.name AS deal_name, cv.link_method, cv.linked_at, cv.is_internal,
        cv.internal_classification_reason, cv.custom_fields, cv.source, cv.source_id, cv.source_created_at,
        cv.source_updated_at, cv.created_at, cv.updated_at, cv.deleted_at""",
    filters={
        **common_filters("cv"),
        "linked": Filter("present", "cv.deal_id"),
        "has_account": Filter("present", "cv.account_id"),
        "internal": Filter("bool", "cv.is_internal"),
        "participant": Filter("text", (_PARTICIPANT,)),
        "organizer_email": Filter("eq", "cv.organizer_email", "ci"),
        "owner": Filter("eq", "cv.owner", "ci"),
        "deal_id": Filter("eq", "cv.deal_id", "uuid"),
        "account_id": Filter("eq", "cv.account_id", "uuid"),
        "contact_id": Filter("eq", "cv.contact_id", "uuid"),
        "link_method": Filter("eq", "cv.link_method", "ci"),
        "has_transcript": Filter("present", "cv.transcript"),
        **ranges("started", "cv.started_at", "timestamp"),
        **ranges("duration", "cv.duration_seconds", "int", "min", "max"),
        "search": Filter("text", ("cv.title", "cv.summary")),
    },
    sorts={
        "started_at": Sort("cv.started_at", "timestamp"),
        "duration": Sort("cv.duration_seconds", "int"),
        "title": Sort("lower(cv.title)", "text"),
        "created": Sort("COALESCE(cv.source_created_at, cv.created_at)", "timestamp"),
    },
    default_sort="started_at",
    default_direction="desc",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of conversations; see SPEC.filters / SPEC.sorts for the names (default: newest first)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)
