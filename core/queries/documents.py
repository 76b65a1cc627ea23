"""Documents (Google Drive files: proposals, contracts, decks): the filtered list with the deal's and the
account's names. Content is never listed (fetched on demand; `has_content` says whether it is cached).
Read-only."""
from __future__ import annotations

from typing import Any

import psycopg

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, ranges, run_query

_MODIFIED = "COALESCE(doc.source_updated_at, doc.updated_at)"

SPEC = QuerySpec(
    entity="documents",
    alias="doc",
    from_sql="documents doc"
             " LEFT JOIN deals dl ON dl.workspace_id = doc.workspace_id AND dl.id = doc.deal_id"
             " LEFT JOIN accounts acc ON acc.workspace_id = doc.workspace_id AND acc.id = doc.account_id",
    select=f"""doc.id, doc.title, doc.mime_type, doc.doc_type, doc.url, doc.folder_path, doc.size_bytes, doc.owner,
        doc.owner_email, doc.account_id, acc.name AS account_name, doc.deal_id, dl.name AS deal_name,
        doc.content IS NOT NULL AS has_content, doc.content_fetched_at, {_MODIFIED} AS modified_at,
        doc.custom_fields, doc.source, doc.source_id, doc.source_created_at, doc.source_updated_at,
        doc.created_at, doc.updated_at, doc.deleted_at""",
    filters={
        **common_filters("doc"),
        "doc_type": Filter("eq", "doc.doc_type", "ci"),
        "mime_type": Filter("eq", "doc.mime_type", "ci"),
        "owner": Filter("eq", "doc.owner", "ci"),
        "owner_email": Filter("eq", "doc.owner_email", "ci"),
        "deal_id": Filter("eq", "doc.deal_id", "uuid"),
        "account_id": Filter("eq", "doc.account_id", "uuid"),
        "linked": Filter("present", "doc.deal_id"),
        "has_account": Filter("present", "doc.account_id"),
        "has_content": Filter("present", "doc.content"),
        **ranges("modified", _MODIFIED, "timestamp"),
        **ranges("size", "doc.size_bytes", "int", "min", "max"),
        "search": Filter("text", ("doc.title", "doc.folder_path")),
    },
    sorts={
        "modified": Sort(_MODIFIED, "timestamp"),
        "title": Sort("lower(doc.title)", "text"),
        "size": Sort("doc.size_bytes", "int"),
        "created": Sort("COALESCE(doc.source_created_at, doc.created_at)", "timestamp"),
    },
    default_sort="modified",
    default_direction="desc",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of documents; see SPEC.filters / SPEC.sorts for the names (default: last modified first)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)
