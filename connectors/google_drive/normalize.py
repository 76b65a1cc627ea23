"""Drive files → `documents` rows, and the enrich step that decides first whether a file is in scope.

A file becomes a row only when it is live (not trashed), not a folder or shortcut, and inside the chosen
folders or shared drives; everything else the change feed reports is the concern of `changes.on_changes_page`
(soft-deletes). `enrich_*` stamp each file with `_scope` = {"in": bool, "path": folder path}; normalize and
the page hooks read that stamp and never make requests themselves. Google-native files (Docs, Sheets, Slides)
have no `size`: size_bytes stays NULL. `source_data` is the file as Drive sent it.
"""
from __future__ import annotations

import re
from typing import Any

from core.sync.http import HttpClient
from core.sync.protocol import StreamContext
from core.sync.times import iso_time
from connectors.google_drive import api
from connectors.google_drive.folders import Scope

SOURCE = "google_drive"
SCOPE_KEY = "_scope"
RELIST_KEY = "_relist"
# The columns Drive rows write (soft-deletes re-write the stored row with exactly these, through upsert_rows).
COLUMNS = ("title", "mime_type", "doc_type", "url", "folder_path", "size_bytes", "owner", "owner_email",
           "source_data", "custom_fields", "source_created_at", "source_updated_at", "deleted_at")

_PRESENTATION = {"application/vnd.google-apps.presentation", "application/vnd.ms-powerpoint",
                 "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                 "application/vnd.apple.keynote"}
# First match wins: a "Proposal deck" is a proposal, a "Signed order form" a contract.
_DOC_TYPES = (
    ("contract", r"contract|agreement|\bmsa\b|\bsow\b|statement of work|\bnda\b|\bdpa\b|order form|"
                 r"terms of service|\bsigned\b|redline"),
    ("proposal", r"proposal|\bquote\b|quotation|pricing|\brfp\b|\brfi\b|\brfq\b|estimate"),
    ("deck", r"\bdeck\b|slides|presentation|\bpitch\b|\bqbr\b|\bebr\b"),
    ("notes", r"notes|minutes|meeting|\bcall\b|recap|summary|business case|success plan|\b1[:\- ]?on[:\- ]?1\b|1:1"),
)


def doc_type(title: str | None, mime_type: str | None) -> str:
    """proposal | contract | deck | notes | other, from the title's words first, then the file type."""
    text = (title or "").casefold().replace("_", " ")
    for kind, pattern in _DOC_TYPES:
        if re.search(pattern, text):
            return kind
    return "deck" if mime_type in _PRESENTATION else "other"


def is_document(file: dict[str, Any]) -> bool:
    return file.get("mimeType") not in (api.FOLDER, api.SHORTCUT)


def live_in_scope(file: dict[str, Any] | None) -> bool:
    return bool(file) and not file.get("trashed") and is_document(file) and bool((file.get(SCOPE_KEY) or {}).get("in"))


def normalize_file(file: dict[str, Any], ctx: StreamContext) -> dict[str, Any] | None:
    if not live_in_scope(file) or not file.get("id"):
        return None
    owner = next((o for o in file.get("owners") or [] if isinstance(o, dict)), {})
    email = owner.get("emailAddress")
    size = file.get("size")
    return {
        "source": SOURCE,
        "source_id": str(file["id"]),
        "title": file.get("name"),
        "mime_type": file.get("mimeType"),
        "doc_type": doc_type(file.get("name"), file.get("mimeType")),
        "url": file.get("webViewLink"),
        "folder_path": file[SCOPE_KEY].get("path"),
        "size_bytes": int(size) if str(size or "").isdigit() else None,
        "owner": owner.get("displayName") or email,
        "owner_email": email.strip().lower() if isinstance(email, str) and email.strip() else None,
        "source_data": {k: v for k, v in file.items() if not k.startswith("_")},
        "custom_fields": {},
        "source_created_at": iso_time(file.get("createdTime")),
        "source_updated_at": iso_time(file.get("modifiedTime")),
        "deleted_at": None,  # a file restored from the trash or moved back in comes back
    }


def normalize_change(change: dict[str, Any], ctx: StreamContext) -> dict[str, Any] | None:
    if change.get("removed") or not isinstance(change.get("file"), dict):
        return None
    return normalize_file(change["file"], ctx)


def scope_of(client: HttpClient, ctx: StreamContext) -> Scope:
    """The sync's Scope, made once per client (one client per sync) from the tree `prepare` stored."""
    scope = getattr(client, "scope", None)
    if scope is None:
        scope = Scope(client, ctx.metadata.get("folder_tree") or {}, ctx.metadata.get("tree_at"))
        client.scope = scope
    return scope


def _stamp(scope: Scope, file: dict[str, Any]) -> None:
    path = scope.locate(file) if not file.get("trashed") and is_document(file) else None
    file[SCOPE_KEY] = {"in": path is not None, "path": path}


def enrich_files(client: HttpClient, records: list[dict[str, Any]], ctx: StreamContext) -> None:
    scope = scope_of(client, ctx)
    for file in records:
        _stamp(scope, file)


def enrich_changes(client: HttpClient, records: list[dict[str, Any]], ctx: StreamContext) -> None:
    """Folders first, so the files of a folder created or renamed on the same page get its current path."""
    scope = scope_of(client, ctx)
    for change in records:
        file = change.get("file")
        if (isinstance(file, dict) and file.get("mimeType") == api.FOLDER) or change.get("fileId") in scope.tree:
            change[RELIST_KEY] = scope.observe_folder(change)
    for change in records:
        file = change.get("file")
        if isinstance(file, dict) and not change.get("removed") and is_document(file):
            _stamp(scope, file)
