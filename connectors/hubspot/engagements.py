"""HubSpot engagements (v3 objects calls, meetings, emails, notes, tasks) → activities, calls and tasks.

Mapping (as the seed's data model has it): meetings, emails and notes are `activities` (type meeting / email /
note); logged calls are `calls` (dialer detail: direction, disposition, numbers, recording) and also an
`activities` row of type call, so activity counts and weights see them; tasks are `tasks`. The deal, contact
and company an engagement is about come from its v4 associations (added by the enrich step) as
*_source_id columns, resolved to our ids by the post-sync reference step.

Never calls HubSpot and never touches the database.
"""
from __future__ import annotations

from typing import Any, Iterable

from connectors.hubspot import values as v
from connectors.hubspot.normalize import SOURCE, custom_fields, deleted_at, owner, primary_id
from core.sync.protocol import StreamContext

PROPERTIES = {
    "calls": ("hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_disposition", "hs_call_duration",
              "hs_call_from_number", "hs_call_to_number", "hs_call_recording_url", "hs_call_status"),
    "meetings": ("hs_meeting_title", "hs_meeting_body", "hs_meeting_start_time", "hs_meeting_end_time",
                 "hs_meeting_outcome"),
    "emails": ("hs_email_subject", "hs_email_text", "hs_email_direction"),
    "notes": ("hs_note_body",),
    "tasks": ("hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_task_completion_date",
              "hs_task_type"),
}
COMMON = ("hs_timestamp", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id")
_DIRECTION = {"INBOUND": "inbound", "OUTBOUND": "outbound", "INCOMING_EMAIL": "inbound", "EMAIL": "outbound",
              "FORWARDED_EMAIL": "outbound"}


def properties(object_type: str) -> tuple[str, ...]:
    return PROPERTIES[object_type] + COMMON


def _links(record: dict[str, Any]) -> dict[str, Any]:
    return {"deal_source_id": primary_id(record, "deals"), "contact_source_id": primary_id(record, "contacts"),
            "account_source_id": primary_id(record, "companies")}


def _base(record: dict[str, Any], ctx: StreamContext, object_type: str) -> dict[str, Any]:
    props = record.get("properties") or {}
    return {
        "source": SOURCE,
        "source_id": str(record["id"]),
        "source_created_at": v.timestamp(props.get("hs_createdate")) or v.timestamp(record.get("createdAt")),
        "source_updated_at": v.timestamp(props.get("hs_lastmodifieddate")) or v.timestamp(record.get("updatedAt")),
        "deleted_at": deleted_at(record),
        "custom_fields": custom_fields(props, ctx, object_type),
        "source_data": record,
        **_links(record),
    }


def _duration_seconds(ms: Any) -> int | None:
    value = v.number(ms)
    return int(value / 1000) if value is not None else None


def _activity(record, ctx, object_type: str, kind: str, subject, body, direction=None, duration=None):
    props = record.get("properties") or {}
    name, email = owner(ctx, props.get("hubspot_owner_id"))
    return {
        **_base(record, ctx, object_type),
        "activity_type": kind,
        "subject": v.text(subject),
        "body": v.text(body),
        "direction": _DIRECTION.get((v.text(direction) or "").upper()),
        "occurred_at": v.timestamp(props.get("hs_timestamp")),
        "duration_seconds": duration,
        "owner": name,
        "owner_email": email,
    }


def normalize_meeting(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    p = record.get("properties") or {}
    start, end = v.timestamp(p.get("hs_meeting_start_time")), v.timestamp(p.get("hs_meeting_end_time"))
    duration = int((end - start).total_seconds()) if start and end and end >= start else None
    return _activity(record, ctx, "meetings", "meeting", p.get("hs_meeting_title"), p.get("hs_meeting_body"),
                     duration=duration)


def normalize_email(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    p = record.get("properties") or {}
    return _activity(record, ctx, "emails", "email", p.get("hs_email_subject"), p.get("hs_email_text"),
                     direction=p.get("hs_email_direction"))


def normalize_note(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    p = record.get("properties") or {}
    body = v.text(p.get("hs_note_body"))
    return _activity(record, ctx, "notes", "note", (body or "")[:120] or None, body)


def normalize_call(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    p = record.get("properties") or {}
    name, email = owner(ctx, p.get("hubspot_owner_id"))
    return {
        **_base(record, ctx, "calls"),
        "title": v.text(p.get("hs_call_title")),
        "direction": _DIRECTION.get((v.text(p.get("hs_call_direction")) or "").upper()),
        "disposition": v.text(p.get("hs_call_disposition")),
        "occurred_at": v.timestamp(p.get("hs_timestamp")),
        "duration_seconds": _duration_seconds(p.get("hs_call_duration")),
        "from_number": v.text(p.get("hs_call_from_number")),
        "to_number": v.text(p.get("hs_call_to_number")),
        "recording_url": v.text(p.get("hs_call_recording_url")),
        "owner": name,
        "owner_email": email,
    }


def call_activity(record: dict[str, Any], ctx: StreamContext) -> Iterable[tuple[str, dict[str, Any]]]:
    p = record.get("properties") or {}
    yield "activities", _activity(record, ctx, "calls", "call", p.get("hs_call_title"), p.get("hs_call_body"),
                                  direction=p.get("hs_call_direction"),
                                  duration=_duration_seconds(p.get("hs_call_duration")))


def normalize_task(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    p = record.get("properties") or {}
    name, email = owner(ctx, p.get("hubspot_owner_id"))
    status = v.text(p.get("hs_task_status"))
    return {
        **_base(record, ctx, "tasks"),
        "title": v.text(p.get("hs_task_subject")),
        "description": v.text(p.get("hs_task_body")),
        "status": status.lower() if status else None,
        "priority": (v.text(p.get("hs_task_priority")) or "").lower() or None,
        "due_date": v.day(p.get("hs_timestamp")),
        "completed_at": v.timestamp(p.get("hs_task_completion_date")),
        "assignee": name,
        "assignee_email": email,
    }
