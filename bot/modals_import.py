"""The Slack face of an import batch: the message a shared file becomes (preview with Confirm / Edit mapping /
Cancel, progress, applied counts with Roll back, rolled back, refusals) and the mapping editor modal.

Blocks are built with `bot.render.blocks` and validated there; every cell, header and file name from the file
is escaped (a column called "<!channel>" must not ping anyone). This module shapes messages and reads batches;
it never calls Slack itself except through `import_flow`'s posting helper when a mapping edit re-previews.
"""
from __future__ import annotations

from typing import Any

from bot.modals_base import ModalOutcome, error_text, metadata, modal, option, select_input, selected
from bot.reply import Reply
from bot.render.blocks import (actions, button, context, fields, header, mrkdwn_escape, reply_from_blocks,
                               section, truncate)
from connectors.file_import import batch as batches
from connectors.file_import.mapping import CUSTOM, FIELDS
from connectors.file_import.read import open_table
from core.errors import InputError, PandoraError

ACTION_IDS = ("import_confirm", "import_edit_mapping", "import_cancel", "import_rollback")
MAPPING_CALLBACK = "mapping_submit"
SHOWN_ERRORS = 10
SHOWN_WARNINGS = 5
SAMPLE_COLUMNS = 6
CELL_WIDTH = 18
MAX_MAPPED_COLUMNS = 95  # one select per column; a modal holds 100 blocks


def _e(value: Any) -> str:
    return mrkdwn_escape(value)


def working(text: str) -> Reply:
    return reply_from_blocks(text, [section(f":hourglass_flowing_sand: {_e(text)}")])


def problem(message: str, filename: str | None = None) -> Reply:
    lead = f"I couldn't import {filename}" if filename else "That didn't work"
    text = f"{lead}: {message}"
    return reply_from_blocks(text, [section(f":warning: {_e(text)}")], ok=False)


def not_tabular(name: str, info: dict[str, Any]) -> Reply:
    kind = _kind(info)
    text = (f"I can import CSV and Excel exports; {name} looks like {kind}. Export the report as CSV or XLSX "
            "(from Salesforce, HubSpot or a spreadsheet) and drop that file here.")
    return reply_from_blocks(text, [section(_e(text))], ok=False)


def _kind(info: dict[str, Any]) -> str:
    filetype = (info.get("filetype") or "").lower()
    mimetype = (info.get("mimetype") or "").lower()
    known = {"pdf": "a PDF", "docx": "a Word document", "doc": "a Word document", "pptx": "a slide deck",
             "ppt": "a slide deck", "zip": "a ZIP archive", "gsheet": "a Google Sheet (File → Download → CSV first)",
             "gdoc": "a Google Doc", "json": "a JSON file", "html": "a web page", "mp4": "a video", "mov": "a video"}
    if filetype in known:
        return known[filetype]
    if mimetype.startswith("image/"):
        return "an image"
    if mimetype.startswith(("video/", "audio/")):
        return "a recording"
    return f"a {filetype} file" if filetype else "something other than a table"


def _ordered(mapping: dict[str, Any], headers: list[str] | None) -> dict[str, Any]:
    """The mapping in the file's column order when known (JSONB does not keep key order)."""
    if not headers or set(headers) != set(mapping):
        return mapping
    return {h: mapping[h] for h in headers}


def _mapping_lines(mapping: dict[str, Any]) -> str:
    mapped = [f"`{_e(truncate(h, 40))}` → {f}" for h, f in mapping.items() if f]
    custom = [f"`{_e(truncate(h, 40))}`" for h, f in mapping.items() if not f]
    text = "\n".join(mapped) or "no column maps to a field"
    if custom:
        text += "\n_kept as custom fields:_ " + ", ".join(custom)
    return truncate(text, 2900)


def _sample_table(batch: dict[str, Any]) -> str | None:
    rows = batch.get("sample_rows") or []
    if not rows:
        return None
    wanted = [f for f in (batch.get("mapping") or {}).values() if f]
    columns = [c for c in dict.fromkeys(wanted) if any(c in r for r in rows)][:SAMPLE_COLUMNS]
    if not columns:
        return None

    def cell(value: Any) -> str:
        if isinstance(value, float):
            value = f"{int(value):,}" if value.is_integer() else f"{value:,.2f}"
        text = "" if value is None else str(value)
        return truncate(text.replace("\n", " ").replace("`", "'"), CELL_WIDTH)

    table = [columns] + [[cell(r.get(c)) for c in columns] for r in rows[:5]]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]
    return "```\n" + _e("\n".join(lines)) + "\n```"


def _issues(batch: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = []
    errors, warnings = batch.get("errors") or [], batch.get("warnings") or []
    if errors:
        shown = "\n".join(f"• {_e(truncate(e.get('message', ''), 280))}" for e in errors[:SHOWN_ERRORS])
        more = f"\n…and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        blocks.append(section(f"*Errors ({len(errors)})*\n{shown}{more}"))
    if warnings:
        shown = "\n".join(f"• {_e(truncate(w, 280))}" for w in warnings[:SHOWN_WARNINGS])
        more = f"\n…and {len(warnings) - SHOWN_WARNINGS} more" if len(warnings) > SHOWN_WARNINGS else ""
        blocks.append(section(f"*Warnings*\n{shown}{more}"))
    return blocks


def preview_for(db, workspace_id, batch: dict[str, Any]) -> Reply:
    """`preview` with the columns in file order (read from the batch's stored copy)."""
    return preview(batch, headers=_headers(batch, _stored(db, workspace_id, batch["batch_id"])))


def preview(batch: dict[str, Any], *, headers: list[str] | None = None) -> Reply:
    batch = {**batch, "mapping": _ordered(batch.get("mapping") or {}, headers)}
    importable = (batch["rows"] or 0) - (batch["skipped"] or 0)
    how = batch.get("classification") or {}
    detected = f"{batch['entity']}" + (f" ({how.get('method')}" + (f", {float(how['confidence']):.0%}"
                                        if how.get("confidence") is not None else "") + ")" if how.get("method") else "")
    blocks = [header(f"Import preview: {batch['filename']}"),
              fields([("Entity", _e(detected)), ("Rows", f"{batch['rows']:,} ({importable:,} importable, "
                                                        f"{batch['skipped']:,} with errors)")]),
              section(f"*Columns*\n{_mapping_lines(batch.get('mapping') or {})}")]
    sample = _sample_table(batch)
    if sample:
        blocks.append(section(f"*Sample rows*\n{sample}"))
    blocks += _issues(batch)
    bid = batch["batch_id"]
    buttons = [button("Confirm", "import_confirm", bid, style="primary")] if importable > 0 else []
    buttons += [button("Edit mapping", "import_edit_mapping", bid), button("Cancel", "import_cancel", bid)]
    blocks += [actions(buttons, block_id=f"import:{bid}"),
               context(f"Nothing is written until you confirm. Batch `{bid}`.")]
    text = (f"Import preview of {batch['filename']}: {batch['entity']}, {batch['rows']} rows "
            f"({batch['skipped']} with errors). Confirm to import.")
    return reply_from_blocks(text, blocks, data={"batch": batch})


def applied(batch: dict[str, Any]) -> Reply:
    counts = (f"{batch['inserted']:,} inserted, {batch['updated']:,} updated, {batch.get('unchanged', 0) or 0:,} "
              f"unchanged, {batch['skipped']:,} skipped")
    bid = batch["batch_id"]
    blocks = [section(f":white_check_mark: Imported *{_e(batch['filename'])}* into {batch['entity']}: {counts}.")]
    blocks += _issues({"errors": batch.get("errors"), "warnings": []})
    blocks += [actions([button("Roll back", "import_rollback", bid, style="danger")], block_id=f"import:{bid}"),
               context(f"Roll back deletes the rows this import added and restores the ones it changed. Batch `{bid}`.")]
    return reply_from_blocks(f"Imported {batch['filename']}: {counts}.", blocks, data={"batch": batch})


def rolled_back(result: dict[str, Any]) -> Reply:
    text = (f"Rolled back the import of {result['filename']}: {result.get('deleted', 0):,} rows deleted, "
            f"{result.get('restored', 0):,} restored.")
    return reply_from_blocks(text, [section(f":leftwards_arrow_with_hook: {_e(text)}")], data={"batch": result})


def rollback_refused(batch: dict[str, Any], message: str) -> Reply:
    text = (f"I didn't roll back the import of {batch['filename']}: {message}. Nothing was changed. "
            f"To restore anyway from the command line: `pandora import rollback {batch['batch_id']} --force`.")
    blocks = [section(f":white_check_mark: Imported *{_e(batch['filename'])}* into {batch['entity']}: "
                      f"{batch['inserted']:,} inserted, {batch['updated']:,} updated."),
              section(f":no_entry: {_e(text)}")]
    return reply_from_blocks(text, blocks, ok=False, data={"batch": batch})


def apply_failed(batch: dict[str, Any], message: str) -> Reply:
    bid = batch["batch_id"]
    blocks = [section(f":warning: {_e(message)}"),
              actions([button("Try again", "import_confirm", bid, style="primary"),
                       button("Cancel", "import_cancel", bid)], block_id=f"import:{bid}")]
    return reply_from_blocks(message, blocks, ok=False, data={"batch": batch})


def current_state(batch: dict[str, Any]) -> Reply:
    """What a button on a stale message shows: where the batch really is."""
    status = batch["status"]
    if status == "applied":
        return applied(batch)
    if status == "pending":
        return preview(batch)
    if status == "rolled_back":
        return rolled_back({**batch, "deleted": batch["inserted"], "restored": batch["updated"]})
    if status == "cancelled":
        text = f"Import of {batch['filename']} cancelled; nothing was written."
        return reply_from_blocks(text, [section(_e(text))], data={"batch": batch})
    text = f"The import of {batch['filename']} is {status}."
    return reply_from_blocks(text, [section(_e(text))], data={"batch": batch})


# --- mapping modal -----------------------------------------------------------------------------------------------

def _stored(db, workspace_id, batch_id) -> dict[str, Any]:
    with db.connection() as conn:
        row = conn.execute("SELECT stored_path, sheet, created_by FROM import_batches"
                           " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                           {"workspace_id": workspace_id, "id": str(batch_id)}).fetchone()
    return row or {}


def _headers(batch: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The file's columns in file order (the stored mapping is JSONB, which does not keep key order)."""
    try:
        with open_table(stored["stored_path"], sheet=stored.get("sheet"), filename=batch["filename"]) as reader:
            headers = list(reader.info.headers)
        if set(headers) == set(batch["mapping"]):
            return headers
    except (PandoraError, KeyError, TypeError, OSError):
        pass
    return list(batch["mapping"])


def mapping_view(db, workspace_id, batch_id: str, *, channel: str | None = None,
                 message_ts: str | None = None) -> dict[str, Any]:
    """One select per column (the entity's fields + "custom field"), preset to the batch's mapping."""
    batch = batches.get_batch(db, workspace_id, batch_id)
    if batch["status"] != "pending":
        text = f"The import of {batch['filename']} is {batch['status']}; only a pending import can be remapped."
        return modal(MAPPING_CALLBACK, "Edit mapping", [section(_e(text))], submit=None, close="Close")
    headers = _headers(batch, _stored(db, workspace_id, batch_id))
    entity = batch["entity"]
    options = [option("(keep as custom field)", CUSTOM)] + [option(name, name) for name in FIELDS[entity]]
    sample = (batch.get("sample_rows") or [{}])[0]
    blocks = [section(f"How *{_e(batch['filename'])}* maps onto {entity}. Each field can take one column; "
                      "the preview is rebuilt when you save.")]
    for i, h in enumerate(headers[:MAX_MAPPED_COLUMNS]):
        field = batch["mapping"].get(h)
        hint = f"e.g. {truncate(str(sample[field]), 100)}" if field and sample.get(field) not in (None, "") else None
        blocks.append(select_input(f"map_{i}", h, options, initial=field or CUSTOM, hint=hint))
    if len(headers) > MAX_MAPPED_COLUMNS:
        blocks.append(context(f"{len(headers) - MAX_MAPPED_COLUMNS} more columns keep their mapping here; change "
                              "them with `pandora import FILE --map \"Header=field\"`."))
    return modal(MAPPING_CALLBACK, "Edit mapping", blocks, submit="Preview again",
                 metadata={"batch_id": str(batch_id), "channel": channel, "ts": message_ts})


def submit_mapping(db, settings, workspace_id, view: dict[str, Any], *, client=None) -> ModalOutcome:
    """Checks the edit at once (each field once); the re-preview runs in `after` (it reads the whole file):
    a new pending batch replaces the old one, which is cancelled, and the preview message is updated."""
    meta = metadata(view)
    batch_id = meta.get("batch_id") or ""
    batch = batches.get_batch(db, workspace_id, batch_id)
    if batch["status"] != "pending":
        return ModalOutcome(message=f"The import of {batch['filename']} is {batch['status']}; nothing to remap.")
    stored = _stored(db, workspace_id, batch_id)
    headers = _headers(batch, stored)[:MAX_MAPPED_COLUMNS]
    chosen = {h: (selected(view, f"map_{i}") or [CUSTOM])[0] for i, h in enumerate(headers)}
    errors: dict[str, str] = {}
    holders: dict[str, int] = {}
    for i, h in enumerate(headers):
        target = chosen[h]
        if target == CUSTOM:
            continue
        if target not in FIELDS[batch["entity"]]:
            errors[f"map_{i}"] = f"{target} is not a {batch['entity']} field."
        elif target in holders:
            errors[f"map_{i}"] = error_text(f"{target} is already taken by {headers[holders[target]]!r}; "
                                            "a field takes one column.")
        else:
            holders[target] = i
    if errors:
        return ModalOutcome(errors=errors)
    overrides = {h: v for h, v in chosen.items() if v != CUSTOM or batch["mapping"].get(h)}

    def after() -> None:
        _repreview(db, settings, client, workspace_id, batch, stored, overrides, meta.get("channel"), meta.get("ts"))

    return ModalOutcome(after=after, data={"overrides": overrides})


def _repreview(db, settings, client, workspace_id, batch, stored, overrides, channel, ts) -> dict[str, Any] | None:
    from bot.import_flow import _failure, _say, set_cancelled

    try:
        if not stored.get("stored_path"):
            raise InputError("the original file of this import is no longer available; share it again")
        new = batches.preview(db, settings, workspace_id, stored["stored_path"], entity=batch["entity"],
                              sheet=stored.get("sheet"), overrides=overrides, filename=batch["filename"],
                              created_by=stored.get("created_by"))
        set_cancelled(db, workspace_id, batch["batch_id"])  # superseded by the new preview
        reply = preview_for(db, workspace_id, new)
    except Exception as exc:  # noqa: BLE001 - runs after the ack: the message is the only place to report
        new, reply = None, _failure(exc, batch["filename"])
    if client is not None and channel:
        _say(client, channel, reply, update_ts=ts) if ts else _say(client, channel, reply)
    return new
