"""monday.com column values → Python values, and which column of a board plays which task role.

A column value arrives as `{id, type, text, value}` where `value` is a JSON-encoded string (or null) and `text`
the display text. `parse_value` decodes the types a task needs — status (label, index, changed_at), date (date
plus optional UTC time), people (`personsAndTeams`), timeline (from/to), numbers, link (url/text), text,
long text, checkbox, email, phone, board relation and mirror (`display_value`) — and falls back to the display
text for any other type. It never raises: a value that does not parse is returned as its text, flagged, so one
odd cell can never fail a sync.

`BoardRoles` picks, once per board, the status / priority / due date / assignee / description / deal columns:
the connection's metadata (`status_column`, `priority_column`, `due_column`, `assignee_column`,
`deal_column`: a column id or title) wins, else the column titles decide ("Status", "Priority", "Due date",
"Owner"/"Assignee", "Deal"/"Opportunity"), else the first column of the right type.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

DONE_LABELS = {"done", "completed", "complete"}
_PRIORITY = re.compile(r"priorit", re.I)
_DUE = re.compile(r"due|deadline|end date|target", re.I)
_ASSIGNEE = re.compile(r"owner|assign|person|people|responsible|rep\b", re.I)
_DEAL = re.compile(r"\b(deal|opportunit(y|ies)|opp)\b", re.I)
_STATUS = re.compile(r"^status$", re.I)
_DEAL_TITLE = re.compile(r"^(deal|opportunity|opp)( name)?$", re.I)


@dataclass
class Parsed:
    """One decoded cell: `value` is what custom_fields keeps; `ok` is False when the raw JSON did not parse."""

    value: Any
    text: str | None
    ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _loads(raw: Any) -> Any:
    if raw is None or isinstance(raw, (dict, list, int, float)):
        return raw
    return json.loads(raw)


def parse_datetime(value: Any) -> datetime | None:
    """An ISO timestamp from monday ("2026-05-01T07:25:37Z", "…37.000Z") as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _number(raw: Any) -> int | float | None:
    if raw in (None, ""):
        return None
    number = float(str(raw).replace(",", ""))
    return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number


def parse_value(cell: dict[str, Any], column: dict[str, Any] | None = None) -> Parsed:
    """Decode one column value; see the module docstring. `column` is the board's column (labels, done ids)."""
    kind = str(cell.get("type") or (column or {}).get("type") or "")
    text = cell.get("text") if isinstance(cell.get("text"), str) else None
    text = text if text else (cell.get("display_value") or None)
    try:
        raw = _loads(cell.get("value"))
    except (TypeError, ValueError):
        return Parsed(text, text, ok=False)
    try:
        return _parse(kind, raw, text, cell, column or {})
    except (TypeError, ValueError, KeyError, AttributeError):
        return Parsed(text, text, ok=False)


def _parse(kind: str, raw: Any, text: str | None, cell: dict[str, Any], column: dict[str, Any]) -> Parsed:
    if kind in ("status", "color"):
        if raw is None and not text:
            return Parsed(None, None)
        raw = raw or {}
        index = raw.get("index")
        label = text or (column.get("labels") or {}).get(str(index))
        done_ids = {str(i) for i in column.get("done") or []}
        done = (index is not None and str(index) in done_ids) or (label or "").strip().casefold() in DONE_LABELS
        return Parsed(label, label, extra={"index": index, "done": done,
                                           "changed_at": parse_datetime(raw.get("changed_at"))})
    if kind == "date":
        if not raw:
            return Parsed(None, text)
        day = parse_date(raw.get("date"))
        if day is None:
            return Parsed(text, text, ok=False)
        moment = None
        if raw.get("time"):  # monday stores the time of a date column in UTC
            moment = parse_datetime(f"{day.isoformat()}T{raw['time']}Z")
        return Parsed(moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else day.isoformat(), text,
                      extra={"date": day, "datetime": moment})
    if kind in ("people", "multiple-person", "person"):
        people = [{"id": str(p["id"]), "kind": p.get("kind") or "person"}
                  for p in (raw or {}).get("personsAndTeams") or [] if isinstance(p, dict) and p.get("id") is not None]
        return Parsed(text, text, extra={"people": people})
    if kind == "timeline":
        if not raw:
            return Parsed(None, text)
        start, end = parse_date(raw.get("from")), parse_date(raw.get("to"))
        if start is None and end is None:
            return Parsed(text, text, ok=False)
        return Parsed({"from": start.isoformat() if start else None, "to": end.isoformat() if end else None}, text,
                      extra={"to": end})
    if kind == "numbers" or kind == "numeric":
        return Parsed(_number(raw if raw is not None else text), text)
    if kind == "link":
        if not raw:
            return Parsed(None, text)
        url = raw.get("url") or None
        return Parsed({"url": url, "text": raw.get("text") or None} if url else None, text, extra={"url": url})
    if kind in ("text", "name"):
        value = raw if isinstance(raw, str) else text
        return Parsed(value or None, text)
    if kind == "long_text" or kind == "long-text":
        value = (raw or {}).get("text") if isinstance(raw, dict) else raw
        return Parsed(value or text or None, text)
    if kind in ("checkbox", "boolean"):
        checked = (raw or {}).get("checked")
        return Parsed(str(checked).lower() == "true" if checked is not None else False, text)
    if kind == "email":
        return Parsed((raw or {}).get("email") or text or None, text)
    if kind == "phone":
        return Parsed((raw or {}).get("phone") or text or None, text)
    if kind in ("board_relation", "board-relation", "mirror", "lookup", "dependency"):
        shown = cell.get("display_value") or text or None
        linked = (raw or {}).get("linkedPulseIds") or []
        ids = cell.get("linked_item_ids") or [str(p.get("linkedPulseId")) for p in linked if isinstance(p, dict)]
        return Parsed(shown, shown, extra={"linked_ids": [str(i) for i in ids or []]})
    return Parsed(text or None, text)  # tags, dropdown, location, rating, formula…: their display text


def column_settings(column: dict[str, Any]) -> dict[str, Any]:
    """The compact column description kept in connection metadata: id, title, type, for status columns the
    labels by index and the indexes that mean done (`done_colors` in `settings_str`), and for a subitems column
    the subitems board it shows (`board_ids`, from `boardIds`)."""
    out = {"id": str(column.get("id")), "title": column.get("title") or str(column.get("id")),
           "type": column.get("type")}
    if column.get("type") not in ("subtasks", "status", "color"):
        return out
    try:
        settings = json.loads(column.get("settings_str") or "{}")
    except (TypeError, ValueError):
        settings = {}
    if not isinstance(settings, dict):
        settings = {}
    if column.get("type") == "subtasks":
        ids = settings.get("boardIds")
        out["board_ids"] = [str(i) for i in ids if i not in (None, "")] if isinstance(ids, list) else []
    else:
        labels = settings.get("labels")
        if isinstance(labels, dict):
            out["labels"] = {str(k): v for k, v in labels.items()}
        elif isinstance(labels, list):  # newer boards: [{"id", "label"}]
            out["labels"] = {str(x.get("id")): x.get("label") for x in labels if isinstance(x, dict)}
        done = settings.get("done_colors")
        if isinstance(done, list):
            out["done"] = [str(i) for i in done]
    return out


def _find(columns: list[dict[str, Any]], wanted: Any) -> str | None:
    if not wanted:
        return None
    wanted = str(wanted).strip().casefold()
    for c in columns:
        if str(c["id"]).casefold() == wanted or str(c.get("title") or "").strip().casefold() == wanted:
            return c["id"]
    return None


def _first(columns: list[dict[str, Any]], types: tuple[str, ...], title: re.Pattern | None = None,
           exclude: set[str] | None = None) -> str | None:
    for c in columns:
        if c.get("type") in types and c["id"] not in (exclude or set()) \
                and (title is None or title.search(str(c.get("title") or ""))):
            return c["id"]
    return None


@dataclass
class BoardRoles:
    """Which column feeds which task field on one board (None = no such column)."""

    status: str | None = None
    priority: str | None = None
    due: str | None = None
    timeline: str | None = None
    assignee: str | None = None
    description: str | None = None
    deal: str | None = None

    @classmethod
    def pick(cls, columns: list[dict[str, Any]], metadata: dict[str, Any]) -> "BoardRoles":
        status_types = ("status", "color")
        priority = _find(columns, metadata.get("priority_column")) \
            or _first(columns, status_types + ("dropdown",), _PRIORITY)
        status = _find(columns, metadata.get("status_column")) or _first(columns, status_types, _STATUS) \
            or _first(columns, status_types, exclude={priority} if priority else None)
        due = _find(columns, metadata.get("due_column")) or _first(columns, ("date",), _DUE) \
            or _first(columns, ("date",))
        people = ("people", "multiple-person", "person")
        assignee = _find(columns, metadata.get("assignee_column")) or _first(columns, people, _ASSIGNEE) \
            or _first(columns, people)
        named = ("text", "board_relation", "mirror", "dropdown", "long_text")
        deal = _find(columns, metadata.get("deal_column")) \
            or next((c["id"] for c in columns if c.get("type") in named + ("link",)
                     and _DEAL_TITLE.match(str(c.get("title") or "").strip())), None) \
            or _first(columns, named, _DEAL) or _first(columns, ("link",), _DEAL)
        return cls(status=status, priority=priority, due=due, timeline=_first(columns, ("timeline",)),
                   assignee=assignee, description=_first(columns, ("long_text",), exclude={deal} if deal else None),
                   deal=deal)
