"""`pandora transcript CONVERSATION_ID --workspace W [--refresh] [--json]`: one call's transcript, from the
conversation's cache or fetched from Gong / Fireflies (core.transcripts)."""
from __future__ import annotations

from datetime import timezone

from core.credentials import Vault
from core.db.database import open_database
from core.transcripts import get_transcript
from core.workspaces import get_workspace


def transcript_cmd(args, settings):
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        t = get_transcript(db, Vault.from_settings(settings), ws["id"], args.conversation, refresh=args.refresh)
    when = f"{t.started_at:%Y-%m-%d} · " if t.started_at else ""
    how = (f"cached {t.fetched_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if t.from_cache
           else f"fetched from {t.source} just now")
    head = f"{t.title or 'Untitled call'} ({when}{t.source} · {len(t.lines)} lines · {how})"
    return {"workspace_id": ws["id"], **t.to_dict()}, f"{head}\n\n{t.text}"


def register(add) -> None:
    p = add("transcript", transcript_cmd, "show a call's transcript (cached, or fetched from Gong / Fireflies)")
    p.add_argument("conversation", metavar="CONVERSATION_ID",
                   help="Pandora conversation id, or the Gong/Fireflies call id")
    p.add_argument("--workspace", required=True)
    p.add_argument("--refresh", action="store_true", help="fetch again even when the cached copy is fresh")
