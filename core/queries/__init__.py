"""The query layer: one read-only module per entity (deals, contacts, accounts, activities, conversations,
tasks, documents), each a `query(conn, workspace_id, *, filters, sort, direction, limit, offset, cursor)` over a
whitelist of filters and sorts (`<module>.SPEC`) plus a few helpers skills need. Skills and the REST API read
through it; nothing here writes. The shared builder, `Page` and the filter kinds live in `base`."""
from __future__ import annotations

from core.queries.base import DEFAULT_LIMIT, MAX_LIMIT, Page

MODULES = ("deals", "contacts", "accounts", "activities", "conversations", "tasks", "documents")

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MODULES", "Page"]
