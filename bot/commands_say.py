"""`pandora say "/pandora forecast" --workspace W [--blocks]`: what Slack would answer, from a shell.

It calls the one router (bot.router.route) exactly as the Slack app does, so what it prints is what Slack
gets: the text by default, the Block Kit JSON with --blocks (paste it into Slack's Block Kit Builder), the
whole Reply with --json. A reply that is not ok (unknown command, bad parameter, failed sync) exits non-zero;
with --json it is printed as the CLI's usual `{"error": {code, message, reply}}`. It never posts to Slack.
"""
from __future__ import annotations

import json
import sys

from bot.reply import Reply
from core.db.database import open_database
from core.errors import PandoraError
from core.settings import Settings
from core.workspaces import get_workspace


class ReplyNotOk(PandoraError):
    """The router answered, but not with what was asked (its text says why)."""

    code = "not_ok"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def say_cmd(args, settings: Settings):
    from bot.router import route

    as_json = getattr(args, "json", False)
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        reply = route(db, settings, ws["id"], args.text, source="cli", progress=None if as_json else _stderr)
    if not reply.ok:
        error = dict((reply.data or {}).get("error") or {})
        err = ReplyNotOk(reply.text.strip(), reply=reply.to_dict())
        err.code = error.get("code") or ReplyNotOk.code
        raise err
    return reply.to_dict(), _printed(reply, blocks=args.blocks)


def _printed(reply: Reply, *, blocks: bool) -> str:
    if not blocks:
        return reply.text
    out = {"blocks": reply.blocks}
    if reply.more_blocks:
        out["more_blocks"] = reply.more_blocks
    return json.dumps(out, indent=2, ensure_ascii=False, default=str)


def register(add) -> None:
    p = add("say", say_cmd, 'answer a /pandora command as Slack would, e.g. pandora say "/pandora forecast"')
    p.add_argument("text", help='the command text, e.g. "/pandora forecast" or "risk limit=5"')
    p.add_argument("--workspace", required=True)
    p.add_argument("--blocks", action="store_true", help="print the Block Kit JSON instead of the text")
