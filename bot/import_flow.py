"""Drag-and-drop imports in Slack: a CSV/Excel file shared with Pandora becomes a previewed import batch with
Confirm / Edit mapping / Cancel buttons; after Confirm the message shows the counts and a Roll back button.

The file is fetched with files.info and downloaded from `url_private` with the bot token (Slack serves its
login page to anyone else), at most `settings.import_max_bytes`, into `$PANDORA_HOME/imports/incoming/`;
the batch copies it, so the download is removed right after the preview. Everything the user sees is one
message that is updated in place as the import moves on (preview → importing → applied → rolled back).

Nothing here raises to the Slack listener: importer and Slack errors become a clear message in the channel,
an unexpected bug a short apology (logged with its traceback, never shown). Rollback is never forced from
Slack: a refused rollback explains which later change blocks it and offers no destructive button.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import modals_import as render
from bot.reply import Reply
from connectors.file_import import batch as batches
from core.errors import InputError, PandoraError

log = logging.getLogger(__name__)

ACTION_IDS = render.ACTION_IDS
CALLBACK_IDS: tuple[str, ...] = ()
TABULAR_EXTENSIONS = {"csv", "tsv", "txt", "tab", "xlsx", "xlsm", "xls"}
TABULAR_FILETYPES = {"csv", "tsv", "xlsx", "xls", "text"}
TABULAR_MIMETYPES = {"text/csv", "text/tab-separated-values", "text/plain", "application/vnd.ms-excel",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
DOWNLOAD_TIMEOUT_S = 60


class DownloadError(PandoraError):
    code = "download_error"


# --- posting -----------------------------------------------------------------------------------------------------

def _post(client: WebClient, channel: str, reply: Reply, *, thread_ts: str | None = None,
          update_ts: str | None = None) -> str:
    """Through B's post_reply when present (it knows pagination and files), else the plain Web API calls."""
    try:
        from bot.slack.post import post_reply
    except ModuleNotFoundError as exc:
        if exc.name not in ("bot.slack.post", "bot.slack"):
            raise
        post_reply = None
    if post_reply is not None:
        return post_reply(client, channel, reply, thread_ts=thread_ts, update_ts=update_ts)
    if update_ts:
        client.chat_update(channel=channel, ts=update_ts, text=reply.text, blocks=reply.blocks)
        return update_ts
    return client.chat_postMessage(channel=channel, text=reply.text, blocks=reply.blocks, thread_ts=thread_ts)["ts"]


def _say(client: WebClient, channel: str, reply: Reply, *, thread_ts: str | None = None,
         update_ts: str | None = None) -> str | None:
    """Post or update, never raising: a Slack failure here has nowhere better to be reported than the log."""
    try:
        return _post(client, channel, reply, thread_ts=thread_ts, update_ts=update_ts)
    except SlackApiError as exc:
        log.warning("could not post the import message to %s: %s", channel, exc.response.get("error"))
        return None


def _failure(exc: BaseException, filename: str | None = None) -> Reply:
    if isinstance(exc, PandoraError):
        return render.problem(exc.message, filename)
    log.exception("import flow failed", exc_info=exc)
    return render.problem("something went wrong on my side; nothing was imported. Please try again, or use "
                          "`pandora import FILE` from the command line", filename)


# --- file_shared -------------------------------------------------------------------------------------------------

def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} KB"


def is_tabular(info: dict[str, Any]) -> bool:
    ext = Path(info.get("name") or "").suffix.lower().lstrip(".")
    if ext:
        return ext in TABULAR_EXTENSIONS
    return (info.get("filetype") or "").lower() in TABULAR_FILETYPES or (info.get("mimetype") or "") in TABULAR_MIMETYPES


def _share_ts(info: dict[str, Any], channel_id: str) -> str | None:
    """The ts of the message that shared the file in this channel, to thread the preview under it."""
    for kind in ("public", "private"):
        shares = ((info.get("shares") or {}).get(kind) or {}).get(channel_id) or []
        if shares and shares[0].get("ts"):
            return shares[0]["ts"]
    return None


def download(client: WebClient, info: dict[str, Any], dest_dir: Path, max_bytes: int) -> Path:
    """Stream url_private (with the bot token) to dest_dir; DownloadError says what went wrong."""
    url = info.get("url_private_download") or info.get("url_private")
    name = Path(info.get("name") or f"{info.get('id', 'file')}.csv").name
    if not url:
        raise DownloadError(f"Slack gave me no download link for {name}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / name
    received = 0
    try:
        with httpx.Client(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True) as http, \
                http.stream("GET", url, headers={"Authorization": f"Bearer {client.token}"}) as response:
            if response.status_code != 200:
                raise DownloadError(f"downloading {name} from Slack failed (HTTP {response.status_code}); "
                                    "share the file again, and check that the app has the files:read scope")
            if response.headers.get("content-type", "").startswith("text/html"):
                raise DownloadError(f"Slack sent a login page instead of {name}: the app needs the files:read "
                                    "scope (reinstall it)")
            with path.open("wb") as out:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(f"{name} is larger than the {_size(max_bytes)} import limit; "
                                            "split it into smaller files")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise DownloadError(f"downloading {name} from Slack failed ({type(exc).__name__}); try sharing it again") from None
    return path


def handle_file_shared(db, settings, client: WebClient, workspace_id, file_id: str, channel_id: str,
                       user_id: str | None) -> None:
    """files.info → tabular? → download → preview → one message with the preview and its buttons."""
    try:
        info = client.files_info(file=file_id)["file"]
    except SlackApiError as exc:
        _say(client, channel_id, render.problem(f"I couldn't open that file (Slack said {exc.response.get('error')})"))
        return
    name = info.get("name") or info.get("title") or file_id
    if _from_this_bot(client, info):
        return  # our own chart uploads also raise file_shared
    thread_ts = _share_ts(info, channel_id)
    if not is_tabular(info):
        # In a channel people share decks and PDFs with each other, not with Pandora: only a DM gets the
        # explanation (channel ids start with C or G, DMs with D).
        if channel_id[:1] == "D":
            _say(client, channel_id, render.not_tabular(name, info), thread_ts=thread_ts)
        return
    if int(info.get("size") or 0) > settings.import_max_bytes:
        _say(client, channel_id, render.problem(
            f"it is {_size(int(info['size']))}, over the {_size(settings.import_max_bytes)} import limit; "
            "split it into smaller files", name), thread_ts=thread_ts)
        return
    ts = _say(client, channel_id, render.working(f"Reading {name}…"), thread_ts=thread_ts)
    incoming = settings.pandora_home / "imports" / "incoming" / uuid.uuid4().hex
    try:
        path = download(client, info, incoming, settings.import_max_bytes)
        batch = batches.preview(db, settings, workspace_id, path, filename=name, created_by=user_id)
        reply = render.preview_for(db, workspace_id, batch)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
        reply = _failure(exc, name)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    if ts:
        _say(client, channel_id, reply, update_ts=ts)
    else:
        _say(client, channel_id, reply, thread_ts=thread_ts)


def _from_this_bot(client: WebClient, info: dict[str, Any]) -> bool:
    if not info.get("user"):
        return False
    try:
        return client.auth_test().get("user_id") == info["user"]
    except SlackApiError:
        return False


# --- buttons -----------------------------------------------------------------------------------------------------

def confirm(db, settings, client: WebClient, workspace_id, batch_id: str, channel: str, ts: str) -> None:
    """Apply the batch (confirm + apply), showing progress, then the counts and a Roll back button."""
    try:
        batch = batches.get_batch(db, workspace_id, batch_id)
    except Exception as exc:  # noqa: BLE001
        _say(client, channel, _failure(exc), update_ts=ts)
        return
    if batch["status"] not in ("pending", "failed", "confirmed"):
        _say(client, channel, render.current_state(batch), update_ts=ts)  # a second click: show where it is
        return
    _say(client, channel, render.working(f"Importing {batch['rows'] - batch['skipped']:,} {batch['entity']} "
                                         f"from {batch['filename']}…"), update_ts=ts)
    try:
        result = batches.apply(db, settings, workspace_id, batch_id)
        reply = render.applied(result)
    except Exception as exc:  # noqa: BLE001
        reply = render.apply_failed(batch, _failure(exc, batch["filename"]).text)
    _say(client, channel, reply, update_ts=ts)


def set_cancelled(db, workspace_id, batch_id: str) -> bool:
    """pending/failed → cancelled; False when the batch is in another state (e.g. already applied)."""
    with db.connection() as conn:
        cur = conn.execute(
            "UPDATE import_batches SET status = 'cancelled', updated_at = now()"
            " WHERE workspace_id = %(workspace_id)s AND id = %(id)s AND status IN ('pending', 'failed')",
            {"workspace_id": workspace_id, "id": str(batch_id)})
        return cur.rowcount == 1


def cancel(db, settings, client: WebClient, workspace_id, batch_id: str, channel: str, ts: str) -> None:
    try:
        batch = batches.get_batch(db, workspace_id, batch_id)
        if set_cancelled(db, workspace_id, batch_id):
            batch = batches.get_batch(db, workspace_id, batch_id)
        reply = render.current_state(batch)
    except Exception as exc:  # noqa: BLE001
        reply = _failure(exc)
    _say(client, channel, reply, update_ts=ts)


def rollback(db, settings, client: WebClient, workspace_id, batch_id: str, channel: str, ts: str) -> None:
    """Undo an applied batch (never forced). A refusal keeps the applied message and explains why."""
    try:
        batch = batches.get_batch(db, workspace_id, batch_id)
    except Exception as exc:  # noqa: BLE001
        _say(client, channel, _failure(exc), update_ts=ts)
        return
    if batch["status"] != "applied":
        _say(client, channel, render.current_state(batch), update_ts=ts)
        return
    try:
        result = batches.rollback(db, workspace_id, batch_id)
        reply = render.rolled_back(result)
    except InputError as exc:
        reply = render.rollback_refused(batch, exc.message)
    except Exception as exc:  # noqa: BLE001
        reply = render.rollback_refused(batch, _failure(exc).text)
    _say(client, channel, reply, update_ts=ts)


def open_mapping(db, client: WebClient, workspace_id, batch_id: str, trigger_id: str, channel: str,
                 ts: str) -> None:
    """The Edit mapping button: open the mapping modal for this batch (its submission updates this message)."""
    try:
        view = render.mapping_view(db, workspace_id, batch_id, channel=channel, message_ts=ts)
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("could not open the mapping modal: %s", exc.response.get("error"))
    except Exception as exc:  # noqa: BLE001
        _say(client, channel, _failure(exc), thread_ts=ts)
