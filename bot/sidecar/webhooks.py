"""Inbound webhooks, signed with the workspace's webhook secret (see `auth.verify_signature`).

- POST /webhooks/{workspace_id}/skills/{skill}: {"params"?, "callback_url"?} starts a skill run in the
  background (trigger 'webhook') and answers 202 {run_id}; with callback_url the result is POSTed there,
  signed the same way.
- POST /webhooks/{workspace_id}/events: {"entity": "activities" | "conversations" | …, "records": [...]}
  writes the records through the one upsert path (`core.db.upsert.upsert_rows`) with source 'webhook' and
  each record's `source_id`, then runs the post-sync pipeline incrementally so links, flags and scores
  follow. Records are checked first and a bad one is named (`records[3].amount`); nothing is written then.

Never writes entity rows any other way, and never lets a record choose its own source, id or workspace.
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from bot.sidecar.deps import Deps
from bot.sidecar.http import Call, endpoint
from bot.sidecar.runs import parse_run_body, run_later
from core.db.upsert import table_columns, upsert_rows
from core.errors import InputError
from core.pipeline import run_post_sync

SOURCE = "webhook"
ENTITIES = ("accounts", "contacts", "deals", "activities", "conversations", "tasks", "calls", "documents", "leads")
MAX_RECORDS = 1000
# Keys and bookkeeping a sender may not set: the write path owns them (and `source` is always 'webhook').
_RESERVED = frozenset({"id", "workspace_id", "row_hash", "created_at", "updated_at"})


def _records(conn, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    entity = body.get("entity")
    if entity not in ENTITIES:
        raise InputError(f"entity must be one of {', '.join(ENTITIES)} (got {entity!r})", field="entity")
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise InputError("records must be a non-empty list of objects", field="records")
    if len(records) > MAX_RECORDS:
        raise InputError(f"at most {MAX_RECORDS} records per call (got {len(records)}); send them in batches",
                         field="records")
    columns = table_columns(conn, entity)
    rows = []
    for i, record in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(record, dict):
            raise InputError(f"{where} must be an object", field=where)
        sid = record.get("source_id")
        if isinstance(sid, bool) or not isinstance(sid, (str, int)) or not str(sid).strip():
            raise InputError(f"{where}.source_id is required: the sender's own id for this record (text)",
                             field=f"{where}.source_id")
        for key in record:
            if key in _RESERVED or key == "source" and record[key] not in (None, SOURCE):
                raise InputError(f"{where}.{key} cannot be set by a webhook (Pandora assigns it)", field=f"{where}.{key}")
            if key not in columns:
                raise InputError(f"{where}.{key} is not a field of {entity}", field=f"{where}.{key}")
        rows.append({**record, "source": SOURCE, "source_id": str(sid).strip()})
    return entity, rows


def ingest_events(deps: Deps, call: Call):
    body = call.json_object()
    with deps.db.connection() as conn:
        entity, rows = _records(conn, body)
        try:
            result = upsert_rows(conn, entity, call.workspace_id, rows)
        except InputError as exc:  # the write path counts rows from 1 and names the column: name the record
            row, column = exc.details.get("row"), exc.details.get("field")
            if row is None:
                raise
            where = f"records[{row - 1}]" + (f".{column}" if column else "")
            raise InputError(f"{where}: {exc.message}", field=where) from None
    steps = run_post_sync(deps.db, call.workspace_id, incremental=True)
    return 200, {"entity": entity, "received": len(rows), **result.counts(), "steps": steps}


def trigger_skill(deps: Deps, call: Call):
    params, callback_url = parse_run_body(call.json_object())
    return 202, run_later(deps, call.workspace_id, call.path["skill"], params, callback_url, trigger="webhook")


def routes(deps: Deps, auth) -> list[Route]:
    def r(path: str, fn) -> Route:
        return Route(path, endpoint(lambda call: fn(deps, call), auth), methods=["POST"], name=fn.__name__)

    return [
        r("/webhooks/{workspace_id}/events", ingest_events),
        r("/webhooks/{workspace_id}/skills/{skill}", trigger_skill),
    ]
