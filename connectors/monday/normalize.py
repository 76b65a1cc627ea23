"""A monday.com item → a `tasks` row.

Typed columns: title (item name), status (the status column's label), priority, due_date (the due date column,
else the timeline's end), completed_at, assignee / assignee_email (the first person of the assignee column,
resolved through the users directory fetched once per sync), description (the first long-text column),
project (the board's name, a subitem's its parent board's; the group is kept in custom_fields["group"]), url,
deal_source_id,
source_created_at / source_updated_at, deleted_at. Everything else goes to `custom_fields` under the column's
title (a title used twice gets " [column id]"), with the special keys `group`, `assignees` (when several),
`deal_name` / `deal_crm` (read by the deal-linking step), `parent_item` (a subitem's parent item id: the
deal-linking step gives a subitem naming no deal of its own its parent's deal). `source_data` is the raw item
plus its board.

Done: the status label's index is one of the column's `done_colors` or the label reads "Done"; completed_at is
then the status value's `changed_at` (when monday last set that status), else the item's `updated_at`.
Archived or deleted items (`state`) get `deleted_at` (their `updated_at`, else now); an active item clears it,
so a restored item comes back. A cell that does not parse keeps its display text in custom_fields and is listed
in custom_fields["unparsed_columns"]; it never fails the sync.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.monday.columns import BoardRoles, Parsed, parse_datetime, parse_value
from connectors.monday.deals import DealRef, deal_reference, is_crm_deal_url

GONE = {"archived", "deleted"}
RESERVED = {"group", "assignees", "deal_name", "deal_crm", "unparsed_columns", "due_at", "parent_item"}


class Board:
    """One board as normalize needs it: its name, its columns by id and the column roles; a subitems board
    also its parent board (`parent_board`), whose name its tasks carry as their project."""

    def __init__(self, info: dict[str, Any], metadata: dict[str, Any]):
        self.id = str(info["id"])
        self.name = info.get("name")
        parent = info.get("parent_board") if isinstance(info.get("parent_board"), dict) else {}
        self.project = parent.get("name") or self.name
        columns = [c for c in info.get("columns") or [] if isinstance(c, dict) and c.get("id") is not None]
        self.columns = {str(c["id"]): c for c in columns}
        self.roles = BoardRoles.pick(columns, metadata)


def users_by_id(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(u["id"]): u for u in metadata.get("users") or [] if isinstance(u, dict) and u.get("id") is not None}


def _deal(cell: dict[str, Any], parsed: Parsed) -> DealRef | None:
    if cell.get("type") == "link":
        url = parsed.extra.get("url")
        return deal_reference(url) if is_crm_deal_url(url) else deal_reference((parsed.value or {}).get("text"))
    value = parsed.value
    if isinstance(value, str) and "," in value and cell.get("type") in ("board_relation", "mirror"):
        value = value.split(",")[0]  # several linked items: the first names the deal
    return deal_reference(value if isinstance(value, str) else parsed.text)


def normalize_item(item: dict[str, Any], board: Board, users: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if item.get("id") in (None, ""):
        return None
    roles = board.roles
    row: dict[str, Any] = {"status": None, "priority": None, "due_date": None, "completed_at": None,
                           "assignee": None, "assignee_email": None, "description": None, "deal_source_id": None}
    custom: dict[str, Any] = {}
    unparsed: list[str] = []
    deal: DealRef | None = None
    crm_link: DealRef | None = None
    status: Parsed | None = None
    timeline_end = None
    for cell in item.get("column_values") or []:
        if not isinstance(cell, dict) or cell.get("id") is None:
            continue
        col_id = str(cell["id"])
        column = board.columns.get(col_id, {})
        parsed = parse_value(cell, column)
        if not parsed.ok:
            unparsed.append(column.get("title") or col_id)
        if col_id == roles.status and parsed.ok:
            status, row["status"] = parsed, parsed.value
        elif col_id == roles.priority:
            row["priority"] = parsed.value if isinstance(parsed.value, str) else parsed.text
        elif col_id == roles.due and parsed.ok and parsed.extra.get("date"):
            row["due_date"] = parsed.extra["date"]
            if parsed.extra.get("datetime"):
                custom["due_at"] = parsed.value
        elif col_id == roles.assignee and parsed.ok:
            _assign(row, custom, parsed, users)
        elif col_id == roles.description and parsed.value:
            row["description"] = parsed.value
        elif col_id == roles.deal:
            deal = _deal(cell, parsed) or deal
            if parsed.value not in (None, "", [], {}):  # the cell as written, next to what it was read as
                custom[_key(custom, column.get("title") or col_id, col_id)] = parsed.value
        else:
            if col_id == roles.timeline and parsed.ok:
                timeline_end = parsed.extra.get("to")
            if cell.get("type") == "link" and is_crm_deal_url(parsed.extra.get("url")):
                crm_link = crm_link or deal_reference(parsed.extra["url"])
            if parsed.value not in (None, "", [], {}):
                custom[_key(custom, column.get("title") or col_id, col_id)] = parsed.value
    if row["due_date"] is None and timeline_end is not None:
        row["due_date"] = timeline_end
    if crm_link is not None and (deal is None or deal.crm is None):  # a CRM link names the record exactly
        deal = DealRef(crm_link.crm, crm_link.source_id, deal.name if deal else None)
    if deal is not None:
        row["deal_source_id"] = deal.source_id
        custom.update({k: v for k, v in (("deal_crm", deal.crm), ("deal_name", deal.name)) if v})
    if unparsed:
        custom["unparsed_columns"] = unparsed
    group = item.get("group") if isinstance(item.get("group"), dict) else {}
    if group.get("title"):
        custom["group"] = group["title"]
    parent = item.get("parent_item") if isinstance(item.get("parent_item"), dict) else {}
    if parent.get("id") not in (None, ""):
        custom["parent_item"] = str(parent["id"])
    updated = parse_datetime(item.get("updated_at"))
    if status is not None and status.extra.get("done"):
        row["completed_at"] = status.extra.get("changed_at") or updated
    state = str(item.get("state") or "active").lower()
    return {
        "source": "monday",
        "source_id": str(item["id"]),
        "title": item.get("name"),
        **row,
        "project": board.project,
        "url": item.get("url") or None,
        "source_data": {**item, "board": {"id": board.id, "name": board.name}},
        "custom_fields": custom,
        "source_created_at": parse_datetime(item.get("created_at")),
        "source_updated_at": updated,
        "deleted_at": (updated or datetime.now(timezone.utc)) if state in GONE else None,
    }


def _assign(row: dict[str, Any], custom: dict[str, Any], parsed: Parsed, users: dict[str, dict[str, Any]]) -> None:
    people = [p for p in parsed.extra.get("people") or [] if p.get("kind") == "person"]
    named = [users.get(p["id"], {"id": p["id"]}) for p in people]
    if named:
        first = named[0]
        row["assignee"] = first.get("name") or (parsed.text.split(",")[0].strip() if parsed.text else None)
        row["assignee_email"] = (first.get("email") or "").lower() or None
    elif parsed.text:
        row["assignee"] = parsed.text.split(",")[0].strip()  # a team, or a person outside the directory
    if len(named) > 1 or (parsed.extra.get("people") and len(parsed.extra["people"]) > len(people)):
        custom["assignees"] = parsed.text


def _key(custom: dict[str, Any], title: str, col_id: str) -> str:
    return title if title not in custom and title not in RESERVED else f"{title} [{col_id}]"
