"""REST: the workspace, its connectors (connect, status, sync) and sync runs.

Connecting checks the credentials with the connector's own `check_auth` before anything is saved (a rejected
credential is 422 and leaves no row); credentials are stored encrypted through `core.connections` and never
appear in any response — only field names, account info and status do. A conversation connector's user
directory is fetched at connect time into `connections.metadata.users` (the first step of the two-step
connect); GET …/users lists it and POST …/tracked-users stores the chosen reps as `tracked_users`. Syncs run
in the background: 202 with a sync id to poll.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.routing import Route

from bot.sidecar.deps import Deps
from bot.sidecar.http import Call, endpoint
from core.connections import get_connection, save_connection, update_metadata
from core.errors import ConnectorError, InputError, PandoraError
from core.sync import registry
from core.sync.orchestrator import SyncEngine, sync_status
from core.sync.protocol import client_for
from core.workspaces import get_workspace

BASE = "/api/workspaces/{workspace_id}"
_SAFE_COLUMNS = ("connector_name, status, last_sync_at, last_sync_status, last_error, created_at, updated_at,"
                 " metadata->'account' AS account,"
                 " CASE WHEN jsonb_typeof(metadata->'tracked_users') = 'array'"
                 "      THEN jsonb_array_length(metadata->'tracked_users') END AS tracked_users,"
                 " CASE WHEN jsonb_typeof(metadata->'users') = 'array'"
                 "      THEN jsonb_array_length(metadata->'users') END AS directory_users")
_LAST_SYNC = ("SELECT id AS sync_id, status, trigger, counts, records_fetched, error, started_at, finished_at, duration_ms"
              " FROM sync_log WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s"
              " ORDER BY started_at DESC LIMIT 1")


def describe_connector(connector) -> dict[str, Any]:
    return {"name": connector.name, "label": connector.label,
            "credential_fields": [{"name": f.name, "label": f.label, "secret": f.secret, "required": f.required,
                                   "help": f.help} for f in connector.credential_fields],
            "user_directory": hasattr(connector, "list_users")}


def get_ws(deps: Deps, call: Call):
    with deps.db.connection() as conn:
        ws = get_workspace(conn, call.workspace_id)
    return 200, {"id": ws["id"], "name": ws["name"], "slug": ws["slug"], "created_at": ws["created_at"]}


def list_workspaces(deps: Deps, call: Call):
    """A key sees exactly one workspace: its own."""
    return 200, {"workspaces": [get_ws(deps, call)[1]]}


def list_connectors(deps: Deps, call: Call):
    with deps.db.connection() as conn:
        rows = conn.execute(
            f"SELECT {_SAFE_COLUMNS} FROM connections WHERE workspace_id = %(workspace_id)s ORDER BY connector_name",
            {"workspace_id": call.workspace_id},
        ).fetchall()
        for row in rows:
            row["last_sync"] = conn.execute(_LAST_SYNC, {"workspace_id": call.workspace_id,
                                                         "name": row["connector_name"]}).fetchone()
    connected = {r["connector_name"] for r in rows}
    available = [describe_connector(registry.get(n)) for n in registry.names() if n not in connected]
    return 200, {"connectors": rows, "available": available}


def connector_status(deps: Deps, call: Call):
    name = call.path["source"]
    with deps.db.connection() as conn:
        get_connection(conn, call.workspace_id, name)  # NotFound with the `pandora connect` hint
        row = conn.execute(
            f"SELECT {_SAFE_COLUMNS} FROM connections WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
            {"workspace_id": call.workspace_id, "name": name},
        ).fetchone()
        row["last_sync"] = conn.execute(_LAST_SYNC, {"workspace_id": call.workspace_id, "name": name}).fetchone()
    return 200, row


def _credentials(connector, body: dict[str, Any]) -> dict[str, str]:
    creds = body.get("credentials")
    if not isinstance(creds, dict):
        fields = ", ".join(f.name for f in connector.credential_fields)
        raise InputError(f"send the credentials as an object: {{\"credentials\": {{{fields}}}}}", field="credentials")
    known = {f.name: f for f in connector.credential_fields}
    for name in creds:
        if name not in known:
            raise InputError(f"{connector.label} has no credential field {name!r} (fields: {', '.join(known)})",
                             field=f"credentials.{name}")
    for name, value in creds.items():
        if not isinstance(value, str):
            raise InputError(f"credentials.{name} must be text", field=f"credentials.{name}")
    for f in connector.credential_fields:
        if f.required and not (creds.get(f.name) or "").strip():
            raise InputError(f"{connector.label} needs {f.label} (credentials.{f.name})", field=f"credentials.{f.name}")
    return {k: v.strip() for k, v in creds.items()}


def _directory(raw: list[Any] | None) -> list[dict[str, Any]]:
    """[{id, name, email}] with string ids, sorted by name: the metadata convention every reader expects."""
    users = [{"id": str(u["id"]), "name": u.get("name") or u.get("email") or str(u["id"]), "email": u.get("email")}
             for u in raw or [] if isinstance(u, dict) and u.get("id") not in (None, "")]
    return sorted(users, key=lambda u: (str(u["name"]).casefold(), u["id"]))


def _scrub(exc: PandoraError, creds: dict[str, str]) -> PandoraError:
    """A source may echo what it was sent into its error body: never let a credential back out that way."""
    for value in creds.values():
        if len(value) >= 4:
            exc.message = exc.message.replace(value, "•••")
    return exc


def connect(deps: Deps, call: Call):
    body = call.json_object()
    connector = registry.get(call.path["source"])
    creds = _credentials(connector, body)
    metadata = body.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise InputError("metadata must be a JSON object", field="metadata")
    extra: dict[str, Any] = {}
    directory_error = None
    try:
        client = client_for(connector, creds, metadata)
    except KeyError as exc:  # a connector that needs a setting in metadata (e.g. an instance URL)
        name = exc.args[0] if exc.args else "?"
        raise InputError(f"{connector.label} needs metadata.{name}", field=f"metadata.{name}") from None
    try:
        with client:
            extra["account"] = connector.check_auth(client)  # AuthError (→ 422) before anything is saved
            if callable(getattr(connector, "list_users", None)):
                try:
                    extra["users"] = _directory(connector.list_users(client))
                    extra["users_fetched_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                except ConnectorError as exc:  # the credentials work; only the directory failed
                    directory_error = _scrub(exc, creds).message
    except PandoraError as exc:
        raise _scrub(exc, creds) from None
    with deps.db.connection() as conn:
        row = save_connection(conn, deps.vault(), call.workspace_id, connector.name, creds, metadata={**metadata, **extra})
    base = BASE.format(workspace_id=call.workspace_id)
    users = extra.get("users")
    return 200, {"connector": connector.name, "status": row["status"], "account": extra["account"],
                 "directory_users": len(users) if users is not None else None, "directory_error": directory_error,
                 "next": f"POST {base}/connectors/{connector.name}/tracked-users" if users
                 else f"POST {base}/connectors/{connector.name}/sync"}


def list_directory(deps: Deps, call: Call):
    """The connector's stored user directory and who is tracked, to choose from."""
    with deps.db.connection() as conn:
        meta = get_connection(conn, call.workspace_id, call.path["source"])["metadata"]
    tracked = meta.get("tracked_users") if isinstance(meta.get("tracked_users"), list) else []
    return 200, {"connector": call.path["source"], "users": _directory(meta.get("users")),
                 "users_fetched_at": meta.get("users_fetched_at"), "tracked_users": tracked}


def set_tracked_users(deps: Deps, call: Call):
    """Step two of a conversation connect: {"user_ids": [...]} picked from the stored directory."""
    body = call.json_object()
    ids = body.get("user_ids")
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        raise InputError("user_ids must be a list of ids from the connector's user directory", field="user_ids")
    name = call.path["source"]
    with deps.db.connection() as conn:
        directory = {u["id"]: u for u in _directory(get_connection(conn, call.workspace_id, name)["metadata"].get("users"))}
        unknown = [str(i) for i in ids if str(i) not in directory]
        if unknown:
            raise InputError(f"not in {name}'s user directory: {', '.join(unknown[:5])} (list it with GET "
                             f"{BASE.format(workspace_id=call.workspace_id)}/connectors/{name}/users, or reconnect "
                             "to refresh it)", field="user_ids")
        tracked = [directory[i] for i in dict.fromkeys(str(i) for i in ids)]
        update_metadata(conn, call.workspace_id, name, {"tracked_users": tracked})
    return 200, {"connector": name, "tracked_users": tracked}


def start_sync(deps: Deps, call: Call):
    body = call.json_object()
    full = body.get("full", False)
    if not isinstance(full, bool):
        raise InputError("full must be true or false", field="full")
    engine = SyncEngine(deps.db, deps.vault())
    handle = engine.start(call.workspace_id, call.path["source"], trigger="api", full=full, background=True)
    deps.jobs.track(handle.thread)
    return 202, {"sync_id": handle.sync_id, "status": "running", "connector": call.path["source"],
                 "status_url": f"{BASE.format(workspace_id=call.workspace_id)}/syncs/{handle.sync_id}"}


def get_sync(deps: Deps, call: Call):
    try:
        sync_id = uuid.UUID(call.path["sync_id"])
    except ValueError:
        raise InputError(f"{call.path['sync_id']!r} is not a sync id", field="sync_id") from None
    return 200, sync_status(deps.db, call.workspace_id, sync_id)


def routes(deps: Deps, auth) -> list[Route]:
    def r(path: str, fn, method: str) -> Route:
        return Route(path, endpoint(lambda call: fn(deps, call), auth), methods=[method], name=fn.__name__)

    return [
        r("/api/workspaces", list_workspaces, "GET"),
        r(BASE, get_ws, "GET"),
        r(f"{BASE}/connectors", list_connectors, "GET"),
        r(f"{BASE}/connectors/{{source}}/status", connector_status, "GET"),
        r(f"{BASE}/connectors/{{source}}/connect", connect, "POST"),
        r(f"{BASE}/connectors/{{source}}/users", list_directory, "GET"),
        r(f"{BASE}/connectors/{{source}}/tracked-users", set_tracked_users, "POST"),
        r(f"{BASE}/connectors/{{source}}/sync", start_sync, "POST"),
        r(f"{BASE}/syncs/{{sync_id}}", get_sync, "GET"),
    ]
