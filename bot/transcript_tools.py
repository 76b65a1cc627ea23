"""Conversation tools over call transcripts: "what did Acme say about pricing?" and "transcript of the Acme
discovery call". Registered in `bot.conversation_tools.TOOLS` (same `ToolResult` shape as every other tool), so
keyword routing and Claude's tool use answer with the same excerpts.

Transcripts come through `core.transcripts` (the conversation's cache, or fetched from Gong / Fireflies on a
miss). Without an LLM key the excerpts are the answer and the reply says so; with one, Claude summarises them
(they reach the model only as a fenced data block, like every tool result). Never writes to a source.
`bot.conversation_tools` imports this module, so its types are imported inside the functions.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from core.credentials import Vault
from core.errors import InputError, NotFound
from core.llm.reduce import fit_text
from core.queries import accounts, conversations
from core.queries.base import coerce
from core.transcripts import get_transcript, search_transcripts

if TYPE_CHECKING:  # pragma: no cover
    from bot.conversation_tools import Env, ToolResult

MODEL_TEXT_TOKENS = 4_000    # a whole transcript handed to Claude is cut to this (beginning and end kept)
KINDS = ("transcript_search", "transcript")
NO_KEY_NOTE = ("No LLM key is set (ANTHROPIC_API_KEY), so these are the transcript passages themselves, "
               "not a summary.")


def _load_connectors() -> None:
    from connectors import load_all

    load_all()


def _day(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, datetime) else "undated"


def _call(c: Any) -> str:
    return f"{_day(c.started_at)} · {c.title or 'Untitled call'}"


def _account(env: Env, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(the one account `name` means, or None; the names of several candidates when it is ambiguous)."""
    with env.db.connection() as conn:
        found = accounts.query(conn, env.workspace_id, filters={"search": name}, limit=10).items
    exact = [a for a in found if (a["name"] or "").lower() == name.lower().strip()]
    if exact or len(found) == 1:
        return (exact or found)[0], []
    return None, [a["name"] for a in found]


def search_call_transcripts(env: Env, *, topic: str | None = None, account: str | None = None,
                            limit: int | None = None, **_: Any) -> ToolResult:
    """What an account's people said about `topic` on its most recent external calls (transcript excerpts).
    A name that is no account is tried as a participant's name or e-mail."""
    from bot.conversation_tools import Group, ToolResult

    if not account or not str(account).strip():
        raise InputError("Say whose calls to search, e.g. 'what did Acme say about pricing?'", field="account")
    account = str(account).strip()
    if not topic or not str(topic).strip():
        raise InputError(f"Say what to look for in {account}'s calls, e.g. 'what did {account} say about pricing?'",
                         field="topic")
    acct, candidates = _account(env, account)
    if candidates:
        return ToolResult("search_call_transcripts", f"Several accounts match '{account}': which one?", [],
                          [Group("Accounts", candidates, len(candidates))], [{"name": n} for n in candidates],
                          len(candidates), "accounts", ["Ask again with the full account name."])
    _load_connectors()
    who = acct["name"] if acct else account
    found = search_transcripts(env.db, Vault.from_settings(env.settings), env.workspace_id, topic=topic,
                               account_id=acct["id"] if acct else None, participant=None if acct else account,
                               limit=coerce("limit", limit or 5, "int"))
    if not found.conversations:
        scope = "this account" if acct else f"an account or participant called '{account}'"
        raise NotFound(f"No external calls with {scope} have a transcript to search "
                       "(calls come from Gong or Fireflies once connected and synced).", field="account")
    cached = sum(1 for s in found.conversations if s.from_cache)
    fetched = sum(1 for s in found.conversations if s.from_cache is False)
    failed = [s for s in found.conversations if s.error]
    by_call: dict[str, list[str]] = {}
    for e in found.excerpts:
        by_call.setdefault(e.conversation_id, []).append(e.text.replace("\n", "\n    "))
    groups = [Group(_call(s) + (f" · {s.call_url}" if s.call_url else ""), by_call[s.conversation_id],
                    len(by_call[s.conversation_id])) for s in found.conversations if s.conversation_id in by_call]
    quiet = [_call(s) for s in found.conversations if not s.error and s.conversation_id not in by_call]
    if quiet:
        groups.append(Group(f"No mention of '{topic}'", quiet, len(quiet)))
    notes = [f"Could not read {_call(s)}: {s.error}" for s in failed]
    if not found.excerpts:
        notes.insert(0, f"None of the {len(found.conversations)} most recent external calls with {who} mention "
                        f"{' / '.join(found.terms)}.")
    if not env.settings.anthropic_api_key:
        notes.append(NO_KEY_NOTE)
    records = [{"conversation_id": e.conversation_id, "title": e.title, "started_at": e.started_at,
                "call_url": e.call_url, "source": e.source, "excerpt": e.text, "at_seconds": e.at,
                "terms": e.terms} for e in found.excerpts]
    figures = [("Calls searched", f"{len(found.conversations)}"), ("Excerpts", f"{len(found.excerpts)}"),
               ("Transcripts", f"{cached} cached · {fetched} fetched"
                               + (f" · {len(failed)} unavailable" if failed else ""))]
    return ToolResult("search_call_transcripts", f"What {who} said about '{topic}' (last "
                      f"{len(found.conversations)} external call{'' if len(found.conversations) == 1 else 's'})",
                      figures, groups, records, len(found.excerpts), "conversations", notes,
                      {"account": {"id": str(acct["id"]), "name": acct["name"]} if acct else None,
                       "participant": None if acct else account, "topic": topic, "terms": found.terms,
                       "conversations": found.to_dict()["conversations"]})


def _find_call(env: Env, call: str) -> tuple[str, list[dict[str, Any]]]:
    """(the conversation to show, other calls that also matched): an id, else title words, newest first."""
    term = call.strip()
    try:
        uuid.UUID(term)
        return term, []
    except ValueError:
        pass
    words = re.sub(r"\b(the|call|calls|meeting|with|conversation|recording)\b", " ", term, flags=re.I).split()
    with env.db.connection() as conn:
        page = conversations.query(conn, env.workspace_id, filters={"search": " ".join(words) or term},
                                   sort="started_at", direction="desc", limit=5)
        if not page.items:
            by_source = conn.execute("SELECT id FROM conversations WHERE workspace_id = %(workspace_id)s"
                                     " AND source_id = %(ref)s AND deleted_at IS NULL LIMIT 1",
                                     {"workspace_id": env.workspace_id, "ref": term}).fetchone()
            if by_source:
                return str(by_source["id"]), []
            raise InputError(f"No call matches '{call}'. Try words from its title, or its id.", field="call")
    return str(page.items[0]["id"]), page.items[1:]


def get_call_transcript(env: Env, *, call: str, **_: Any) -> ToolResult:
    """The transcript of one call (by id or title words; the newest match), cached or fetched."""
    from bot.conversation_tools import Group, ToolResult

    _load_connectors()
    conversation_id, others = _find_call(env, str(call))
    t = get_transcript(env.db, Vault.from_settings(env.settings), env.workspace_id, conversation_id)
    lines = t.lines
    when = ("cached, fetched " + f"{t.fetched_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC") if t.from_cache \
        else "fetched just now"
    notes = [f"Full transcript: `pandora transcript {t.conversation_id} --workspace <workspace>`"
             ] if len(lines) > 10 else []
    if others:
        notes.append("Also matching: " + "; ".join(f"{_day(o['started_at'])} · {o['title'] or 'Untitled call'}"
                                                   for o in others))
    model_text, cut = fit_text(t.text, MODEL_TEXT_TOKENS, label="transcript")
    notes += [cut] if cut else []
    record = {"conversation_id": t.conversation_id, "title": t.title, "started_at": t.started_at,
              "call_url": t.call_url, "source": t.source, "from_cache": t.from_cache, "fetched_at": t.fetched_at,
              "lines": len(lines), "text": model_text}
    return ToolResult("get_call_transcript", f"Transcript: {t.title or 'Untitled call'} ({_day(t.started_at)})",
                      [("Source", t.source), ("Lines", str(len(lines))), ("Transcript", when)],
                      [Group("Transcript", lines, len(lines))], [record], 1, "conversations", notes,
                      {"transcript": {**record, "text": t.text}})


def intent_args(intent: Any) -> tuple[str, dict[str, Any]]:
    """The tool and its input for a transcript intent (`bot.intents`: kinds in KINDS)."""
    if intent.kind == "transcript":
        return "get_call_transcript", {"call": intent.call_term}
    return "search_call_transcripts", {"account": intent.account_term, "topic": intent.topic}


TRANSCRIPT_TOOLS = {f.__name__: f for f in (search_call_transcripts, get_call_transcript)}
# account and topic are both needed, but not "required": the tool says so in words (execute's check is terser).
TRANSCRIPT_DEFINITIONS = [
    {"name": "search_call_transcripts", "description": "What an account's people said about a topic on its most "
     "recent external calls (give both account and topic): transcript excerpts around the topic's words, with "
     "call title, date and link (transcripts are fetched from Gong/Fireflies when not cached).",
     "input_schema": {"type": "object", "properties": {
         "account": {"type": "string", "description": "account name (or a participant's name or e-mail)"},
         "topic": {"type": "string", "description": "words to look for, e.g. pricing, security review"},
         "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "calls to search (default 5)"}}}},
    {"name": "get_call_transcript", "description": "The transcript of one call, by conversation id or words of "
     "its title (the newest matching call).",
     "input_schema": {"type": "object", "properties": {"call": {"type": "string"}}, "required": ["call"]}},
]
