"""A Drive document's text, fetched on demand and cached in `documents.content` (syncs never fetch content).

`fetch_content` returns the cached text while it is fresh: fetched after the file's last modification as the
last sync saw it (`source_updated_at`) and less than `max_age` ago. Otherwise it asks Drive again: Google
Docs and Slides are exported as text/plain and Sheets as text/csv (`files.export`, which Drive caps at about
10 MB); text-like uploads (text/*, JSON, XML, YAML) are downloaded (`alt=media`) up to `MAX_DOWNLOAD`.
PDFs, Office files, images and other binaries are refused without a request: there is no text to read
without a converter, and we add none. Failures are typed, name the file and cache nothing:
ExportTooLarge (403 exportSizeLimitExceeded), NotText, FileGone (404). A token refreshed on the way is
stored like a sync's.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx

from core.connections import get_connection, save_connection
from core.credentials import Vault
from core.errors import ConnectorError, NotFound
from core.sync import registry
from core.sync.protocol import accepts_on_credentials
from connectors.google_drive import api
from connectors.google_drive.client import EXPORT_TOO_LARGE

DEFAULT_MAX_AGE = timedelta(days=7)
MAX_DOWNLOAD = 10 * 1024 * 1024
EXPORTS = {
    "application/vnd.google-apps.document": "text/plain",
    "application/vnd.google-apps.presentation": "text/plain",
    "application/vnd.google-apps.spreadsheet": "text/csv",
}
TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml", "application/yaml",
              "application/csv", "application/javascript", "application/x-ndjson", "application/rtf")


class ContentUnavailable(ConnectorError):
    """A document's text cannot be had; the message names the file and says why."""

    code = "content_unavailable"


class ExportTooLarge(ContentUnavailable):
    code = "export_too_large"


class NotText(ContentUnavailable):
    code = "content_not_text"


class FileGone(ContentUnavailable):
    code = "file_not_found"


@dataclass
class Content:
    document_id: str
    title: str | None
    mime_type: str | None
    text: str
    fetched_at: datetime
    cached: bool


_DOC = """SELECT id, source, source_id, title, mime_type, size_bytes, url, content, content_fetched_at,
                 source_updated_at, deleted_at
            FROM documents WHERE workspace_id = %(workspace_id)s AND id = %(id)s"""
_STORE = """UPDATE documents SET content = %(text)s, content_fetched_at = %(at)s
             WHERE workspace_id = %(workspace_id)s AND id = %(id)s"""


def how_to_read(mime_type: str | None) -> tuple[str, str | None]:
    """("export", export type) | ("download", None) | ("none", None)."""
    mime = (mime_type or "").lower()
    if mime in EXPORTS:
        return "export", EXPORTS[mime]
    if mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith(("+json", "+xml")):
        return "download", None
    return "none", None


def is_fresh(doc: dict[str, Any], now: datetime, max_age: timedelta) -> bool:
    fetched = doc.get("content_fetched_at")
    if doc.get("content") is None or fetched is None:
        return False
    modified = doc.get("source_updated_at")
    return (modified is None or fetched >= modified) and now - fetched < max_age


def fetch_content(db, vault: Vault, workspace_id, document_id, *, max_age: timedelta = DEFAULT_MAX_AGE,
                  transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
                  now: datetime | None = None) -> Content:
    workspace_id, document_id = str(workspace_id), str(document_id)
    now = now or datetime.now(timezone.utc)
    with db.connection() as conn:
        doc = conn.execute(_DOC, {"workspace_id": workspace_id, "id": document_id}).fetchone()
    if doc is None:
        raise NotFound(f"no document {document_id} in this workspace")
    name = repr(doc["title"] or doc["source_id"])
    if is_fresh(doc, now, max_age):
        return Content(document_id, doc["title"], doc["mime_type"], doc["content"], doc["content_fetched_at"], True)
    if doc["source"] != "google_drive":
        raise ContentUnavailable(f"{name} did not come from Google Drive, so Pandora cannot fetch its text",
                                 document_id=document_id)
    how, export_as = how_to_read(doc["mime_type"])
    if how == "none":
        raise NotText(f"{name} is a {doc['mime_type'] or 'file of unknown type'}: its content isn't available as "
                      f"text (only Google Docs, Sheets, Slides and text files are); open it in Drive: {doc['url']}",
                      document_id=document_id, mime_type=doc["mime_type"])
    if how == "download" and (doc["size_bytes"] or 0) > MAX_DOWNLOAD:
        raise ContentUnavailable(f"{name} is {doc['size_bytes'] / 1_048_576:.0f} MB, more than the "
                                 f"{MAX_DOWNLOAD // 1_048_576} MB Pandora reads as text", document_id=document_id)
    text = _download(db, vault, workspace_id, doc, export_as, transport=transport, sleep=sleep)
    with db.connection() as conn:
        conn.execute(_STORE, {"workspace_id": workspace_id, "id": document_id, "text": text, "at": now})
    return Content(document_id, doc["title"], doc["mime_type"], text, now, False)


def _download(db, vault: Vault, workspace_id: str, doc: dict[str, Any], export_as: str | None, *,
              transport, sleep) -> str:
    connector = registry.get("google_drive")
    with db.connection() as conn:
        connection = get_connection(conn, workspace_id, "google_drive")
    kwargs: dict[str, Any] = {"transport": transport} if transport else {}
    if sleep:
        kwargs["sleep"] = sleep
    if accepts_on_credentials(connector):
        def persist(new: dict[str, Any]) -> None:
            with db.connection() as conn:
                save_connection(conn, vault, workspace_id, "google_drive", new, status=connection["status"])
        kwargs["on_credentials"] = persist
    name = repr(doc["title"] or doc["source_id"])
    path = f"{api.FILES}/{doc['source_id']}" + ("/export" if export_as else "")
    params = {"mimeType": export_as} if export_as else {"alt": "media", "supportsAllDrives": "true"}
    try:
        credentials = vault.decrypt(connection["credentials"])
        with connector.client(credentials, dict(connection["metadata"]), **kwargs) as client:
            response = client.request("GET", path, params=params)
    except ConnectorError as exc:
        status, reason = exc.details.get("status"), exc.details.get("reason")
        if status == 403 and reason == EXPORT_TOO_LARGE:
            raise ExportTooLarge(f"{name} is too large for Google Drive to export as text (Drive exports at most "
                                 f"about 10 MB); nothing was cached. Open it in Drive: {doc['url']}",
                                 document_id=str(doc["id"]), reason=reason) from None
        if status == 404:
            raise FileGone(f"{name} is no longer in Google Drive, or the connected account lost access to it",
                           document_id=str(doc["id"]), reason=reason) from None
        raise
    return _decode(response.content)


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").replace("\x00", "")  # PostgreSQL text holds no NUL
    return text[1:] if text.startswith("\ufeff") else text
