"""The router's housekeeping commands: `connect`, `sync`, `status`, `import`, `context`, `quota`.

Each handler takes (db, settings, workspace_id, args, *, source, progress) and returns a `Reply`; user
mistakes are raised as PandoraErrors, which `bot.router.route` turns into ok=False replies. Commands that
need a form in Slack (`connect`, `context`, `quota`) ask for it with `Reply.modal` and say in the text how to
do the same from a shell. Nothing here talks to Slack; every query filters on the workspace first.
"""
from __future__ import annotations

import json
from typing import Any

from bot.render.blocks import (context, divider, fields_blocks, header, mrkdwn_escape as esc, reply_from_blocks,
                               section, split_text)
from bot.reply import Progress, Reply
from core.context import SECTIONS, get_context
from core.credentials import Vault
from core.errors import InputError, NotFound, PandoraError
from core.quotas import check_quota_config, list_quotas
from core.sync import registry as connectors
from core.sync.orchestrator import SyncEngine
from skills.format import money

ENTITIES = ("accounts", "contacts", "deals", "leads", "activities", "conversations", "calls", "tasks", "documents")
POLL_SECONDS = 0.5


def _load_connectors() -> None:
    from connectors import load_all

    load_all()


def _connector(name: str | None, command: str):
    _load_connectors()
    available = ", ".join(connectors.names()) or "none are installed yet"
    if not name:
        raise InputError(f"{command} which source? Available: {available} (e.g. `{command} hubspot`)", field="source")
    return connectors.get(name.lower())  # NotFound lists the registered connectors


def _modal(modal: str, text: str, shell: str | None, data: dict[str, Any] | None = None) -> Reply:
    """Ask the Slack layer to open a form; the text is what the CLI and REST show instead."""
    how = f"From a shell: {shell}" if shell else "This form is only available in Slack."
    reply = reply_from_blocks(f"{text}\n{how}",
                              [section(esc(text)), context(f"From a shell: `{esc(shell)}`" if shell else esc(how))],
                              data={"modal": modal, **(data or {})})
    reply.modal, reply.ephemeral = modal, True
    return reply


def connect(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    connector = _connector(args[0] if args else None, "connect")
    if len(args) > 1 and args[1].lower() in ("reps", "users", "tracked", "tracked-reps"):
        if not hasattr(connector, "list_users"):
            raise InputError(f"{connector.label} has no user directory: there are no reps to pick", field="source")
        return _modal(f"tracked_reps:{connector.name}",
                      f"Pick the {connector.label} reps whose calls Pandora should sync.", None,
                      {"connector": connector.name})
    flags = " ".join(f"--set {f.name}=…" for f in connector.credential_fields if f.required)
    return _modal(f"connect:{connector.name}",
                  f"Connect {connector.label}: enter its credentials in the form (they are checked, then stored "
                  "encrypted; secrets are never shown again).",
                  f"pandora connect {connector.name} --workspace W {flags}".strip(),
                  {"connector": connector.name, "fields": [f.name for f in connector.credential_fields]})


def _progress_line(label: str, report) -> str:
    try:  # the sync thread adds tables to `counts` while we read it
        counts = [(t, c["fetched"]) for t, c in list(report.counts.items())]
    except RuntimeError:
        counts = []
    what = ", ".join(f"{n:,} {t}" for t, n in counts) if counts else f"{report.records_fetched:,} records"
    return f"Syncing {label}… {what}"


def sync(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    connector = _connector(args[0] if args else None, "sync")
    full = any(a.lower() in ("full", "--full") for a in args[1:])
    engine = SyncEngine(db, Vault.from_settings(settings))
    trigger = {"slack": "slack", "rest": "api"}.get(source, "manual")
    if progress is None:
        report = engine.run(workspace_id, connector.name, trigger=trigger, full=full)
    else:
        # Run in the engine's thread and watch its report: each committed page bumps the counts.
        handle = engine.start(workspace_id, connector.name, trigger=trigger, full=full, background=True)
        progress(f"Syncing {connector.label}…")
        last = None
        while handle.thread is not None and handle.thread.is_alive():
            handle.thread.join(POLL_SECONDS)
            line = _progress_line(connector.label, handle.report)
            if line != last and handle.report.pages:
                progress(line)
                last = line
        report = handle.report
        final = _progress_line(connector.label, report)
        if report.pages and final != last:  # the sync may end between two polls
            progress(final)
    data = report.to_dict()
    if report.status != "succeeded":
        hint = (f" Reconnect it with `{'/pandora ' if source == 'slack' else ''}connect {connector.name}`."
                if getattr(report.exception, "code", None) == "auth_error" else "")
        err = PandoraError(f"{connector.label} sync failed: {report.error}.{hint}", sync_id=report.sync_id)
        err.code = getattr(report.exception, "code", "sync_failed")
        raise err
    rows = [(t, f"{c['inserted']:,} new · {c['updated']:,} updated · {c['unchanged']:,} unchanged")
            for t, c in report.counts.items()]
    title = f"{connector.label} sync finished in {report.duration_ms / 1000:.1f} s ({report.pages} pages" \
            + (", resumed" if report.resumed else "") + ")"
    text = "\n".join([title, *[f"  {t:<16} {line}" for t, line in rows]] or [title])
    blocks = [section(f"✅ *{esc(title)}*")] + fields_blocks([(esc(t), line) for t, line in rows])
    if not rows:
        blocks.append(context("No records came back: nothing changed at the source since the last sync."))
    return reply_from_blocks(text, blocks, data=data)


_COUNTS = " UNION ALL ".join(
    f"SELECT '{t}' AS entity, count(*) AS n FROM {t} WHERE workspace_id = %(workspace_id)s" for t in ENTITIES)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def status(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    params = {"workspace_id": workspace_id}
    with db.connection() as conn:
        ws = conn.execute("SELECT name, pipeline_ran_at FROM workspaces WHERE id = %(workspace_id)s", params).fetchone()
        conns = conn.execute(
            "SELECT connector_name, status, last_sync_at, last_sync_status, last_error,"
            " EXISTS (SELECT 1 FROM sync_log s WHERE s.workspace_id = c.workspace_id"
            "         AND s.connector_name = c.connector_name AND s.status = 'running') AS running"
            " FROM connections c WHERE workspace_id = %(workspace_id)s ORDER BY connector_name", params).fetchall()
        counts = {r["entity"]: r["n"] for r in conn.execute(_COUNTS, params).fetchall()}
        if ws is None:
            raise NotFound("this workspace no longer exists (create one with `pandora workspace create NAME`)")
        pending = conn.execute(
            "SELECT id, filename, entity, row_count, created_at FROM import_batches"
            " WHERE workspace_id = %(workspace_id)s AND status = 'pending' ORDER BY created_at DESC", params).fetchall()
    name = ws["name"] if ws else workspace_id
    lines = [f"Status of {name}", "", "Connections:"]
    conn_lines = []
    for c in conns:
        state = ("syncing now" if c["running"]
                 else f"last sync {c['last_sync_status'] or 'never'} {_when(c['last_sync_at'])}")
        err = f" — error: {c['last_error']}" if c["last_error"] else ""
        conn_lines.append((c["connector_name"], c["status"], state, err))
    lines += ([f"  {n:<14} {s:<12} {st}{e}" for n, s, st, e in conn_lines]
              or ["  none yet (connect a source with `connect hubspot`)"])
    lines += ["", f"Post-sync pipeline last ran: {_when(ws['pipeline_ran_at'] if ws else None)}", "", "Records:"]
    lines += [f"  {t:<14} {counts.get(t, 0):>9,}" for t in ENTITIES]
    lines += ["", f"Pending imports: {len(pending)}"]
    lines += [f"  {b['filename']} ({b['entity'] or '?'}, {b['row_count']:,} rows) batch {b['id']}" for b in pending]
    blocks = [header(f"Status of {name}"),
              section("*Connections*\n" + ("\n".join(
                  f"• *{esc(n)}* ({esc(s)}) — {esc(st)}{esc(e)}" for n, s, st, e in conn_lines)
                  or "_None yet: connect a source with `/pandora connect hubspot`._")),
              context(f"Post-sync pipeline last ran: {_when(ws['pipeline_ran_at'] if ws else None)}"),
              divider(), *fields_blocks([(t.capitalize(), f"{counts.get(t, 0):,}") for t in ENTITIES])]
    if pending:
        blocks.append(section("*Pending imports*\n" + "\n".join(
            f"• {esc(b['filename'])} ({esc(b['entity'] or '?')}, {b['row_count']:,} rows) — batch `{b['id']}`"
            for b in pending[:20])))
    data = {"workspace": name, "connections": conns, "pipeline_ran_at": ws["pipeline_ran_at"] if ws else None,
            "counts": counts, "pending_imports": pending}
    return reply_from_blocks("\n".join(lines), blocks, data=_jsonable(data))


def import_howto(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    steps = ["Drag a CSV or Excel (.xlsx) export into a DM with Pandora (or a channel it is in).",
             "Pandora guesses what it holds (deals, contacts, accounts, leads, activities) and maps the columns; "
             "you get a preview with counts, 5 sample rows, errors and warnings.",
             "Press Confirm to import, Edit mapping to fix a column, or Cancel. After the import a Roll back button "
             "undoes it.",
             "From a shell: `pandora import FILE --workspace W` previews, then `pandora import apply BATCH "
             "--workspace W` imports and `pandora import rollback BATCH --workspace W` undoes."]
    text = "Importing a CSV or Excel file\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    blocks = [header("Importing a CSV or Excel file"),
              section("\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))]
    return reply_from_blocks(text, blocks, data={"steps": steps})


def context_cmd(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    if not args or args[0].lower() == "edit":
        return _modal("context",
                      "Edit the business context Pandora uses (business model, team, goals, definitions, maturity).",
                      "pandora context set SECTION KEY=VALUE --workspace W")
    if args[0].lower() != "show":
        raise InputError(f"context takes `show` [SECTION] (or nothing to open the editor), got {args[0]!r}",
                         field="action")
    wanted = args[1] if len(args) > 1 else None
    if wanted and wanted not in SECTIONS:
        raise InputError(f"unknown context section {wanted!r}; use one of {', '.join(SECTIONS)}", field="section")
    with db.connection() as conn:
        ctx = get_context(conn, workspace_id)
    shown = {wanted: ctx[wanted]} if wanted else ctx
    parts = [(name.replace("_", " ").capitalize(), json.dumps(value, indent=2, default=str))
             for name, value in shown.items()]
    text = "\n\n".join(f"{title}\n{body}" for title, body in parts)
    blocks = [header("Business context")]
    for title, body in parts:
        blocks += [section(f"*{title}*\n```{piece}```") for piece in split_text(body, 2900)]
    return reply_from_blocks(text, blocks, data=_jsonable(shown))


def quota_cmd(db, settings, workspace_id: str, args: list[str], *, source: str, progress: Progress | None) -> Reply:
    if not args or args[0].lower() == "edit":
        return _modal("quota", "Set this period's team quota and per-rep quotas.",
                      'pandora quota set --workspace W --team 1200000 --rep "Dana Reyes=150000"')
    if args[0].lower() not in ("show", "list"):
        raise InputError(f"quota takes `show` (or nothing to open the editor), got {args[0]!r}", field="action")
    with db.connection() as conn:
        active = check_quota_config(conn, workspace_id)
        periods = list_quotas(conn, workspace_id)
    data = _jsonable({"active": active.to_dict(), "periods": periods})
    if active.source in ("none", "revenue_target"):
        target = f" Annual revenue target: {money(active.revenue_target)}." if active.revenue_target else ""
        message = f"No quota is set for the current period.{target} {active.hint or ''}".strip()
        return reply_from_blocks(message, [section(esc(message))], data=data)
    period = active.period
    title = f"{period.name} quotas ({period.start_date} – {period.end_date})" if period else "Quotas"
    origin = "set as a quota period" if active.source == "quota_period" else "from the business context"
    reps = sorted((active.rep_quotas or {}).items())
    lines = [title, f"  {'Team':<24} {money(active.team_quota)}", *[f"  {r:<24} {money(a)}" for r, a in reps],
             f"({origin})"]
    blocks = [header(title), section(f"*Team:* {money(active.team_quota)}"),
              *fields_blocks([(esc(r), money(a)) for r, a in reps]), context(f"Quotas {origin}.")]
    return reply_from_blocks("\n".join(lines), blocks, data=data)


def _jsonable(value: Any) -> Any:
    from skills.result import _plain

    return _plain(_stringify_ids(value))


def _stringify_ids(value: Any) -> Any:
    import uuid

    if isinstance(value, dict):
        return {k: _stringify_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_ids(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


HANDLERS = {"connect": connect, "sync": sync, "status": status, "import": import_howto, "context": context_cmd,
            "quota": quota_cmd, "quotas": quota_cmd}
