""""What did Acme say about pricing?": the passages of an account's recent calls that mention a topic.

`search_transcripts` picks the account's most recent external conversations (is_internal not true, started
by `now`, from a source that has transcripts or already cached), gets each transcript through the cache
(`get_transcript`: cached when fresh, fetched otherwise) and returns windows of lines around the lines whose
spoken text mentions a topic word (case-insensitive, word starts, crude stems: "pricing" finds "price" and
"prices"). A call whose transcript cannot be had is reported with the reason, never silently dropped; when a
source refuses outright (auth, rate limit, not connected) its remaining calls are not asked again.
Deterministic and model-free: a summary, when there is one, is written from these excerpts by the caller.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx

from core.credentials import Vault
from core.errors import AuthError, InputError, PandoraError, RateLimited
from core.transcripts.fetch import get_transcript, transcript_sources
from core.transcripts.text import parse

DEFAULT_LIMIT, MAX_LIMIT = 5, 20
CLIP = 320            # characters kept of a long line around its hit (half that for a neighbouring line)
STOPWORDS = frozenset("""a an the and or of to in on for with about regarding re at by from as is are was were be
    been it its it's this that these those their them they our we us you your my i me he she his her any anything
    something what whats what's how did do does say said says mention mentioned talk talked tell told think thought
    call calls meeting meetings conversation conversations last recent latest lately all""".split())
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "es", "ed", "s")


@dataclass
class Excerpt:
    conversation_id: str
    title: str | None
    started_at: datetime | None
    call_url: str | None
    source: str
    text: str                      # the window's lines, "\n"-joined, long lines clipped around the hit
    at: float | None               # seconds into the call of the first matching line
    terms: list[str] = field(default_factory=list)


@dataclass
class Searched:
    conversation_id: str
    title: str | None
    started_at: datetime | None
    call_url: str | None
    source: str
    from_cache: bool | None = None
    excerpts: int = 0
    error: str | None = None


@dataclass
class TranscriptSearch:
    topic: str
    terms: list[str]
    conversations: list[Searched]
    excerpts: list[Excerpt]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def topic_terms(topic: str) -> list[str]:
    """The words of a topic worth looking for ("the price increase" → price, increase)."""
    words = re.findall(r"[a-z0-9][a-z0-9&'-]*", (topic or "").lower())
    out: list[str] = []
    for w in words:
        w = w.strip("'-")
        if len(w) >= 2 and w not in STOPWORDS and w not in out:
            out.append(w)
    return out


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def term_pattern(terms: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(rf"\b{re.escape(stem(t))}\w*" for t in terms), re.IGNORECASE)


def _spoken(line: str) -> str:
    parsed = parse(line)
    return parsed.text if parsed else line


def _clip(line: str, start: int | None, width: int, *, tail: bool = False) -> str:
    """The line cut to about `width` characters of its spoken text: around `start`, or its beginning (its end
    with `tail`), at word boundaries, with "…" where text was left out."""
    parsed = parse(line)
    head = line[: len(line) - len(parsed.text)] if parsed else ""
    body = parsed.text if parsed else line
    if len(body) <= width:
        return line
    if start is None:
        begin = len(body) - width if tail else 0
    else:
        begin = max(0, min(start - width // 3, len(body) - width))
    end = begin + width
    if begin > 0:
        space = body.find(" ", begin)
        begin = space + 1 if 0 <= space < begin + 30 else begin
    if end < len(body):
        space = body.rfind(" ", begin, end)
        end = space if space > begin else end
    return head + ("…" if begin > 0 else "") + body[begin:end].strip() + ("…" if end < len(body) else "")


def excerpts_of(text: str, terms: list[str], *, window: int = 1,
                limit: int = 3) -> list[tuple[str, float | None, list[str]]]:
    """(excerpt text, seconds of the first hit, terms found) for up to `limit` windows of ±`window` lines
    around matching lines; overlapping windows are merged."""
    if not terms:
        return []
    pattern = term_pattern(terms)
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if pattern.search(_spoken(line))]
    ranges: list[list[int]] = []
    for i in hits:
        lo, hi = max(0, i - window), min(len(lines) - 1, i + window)
        if ranges and lo <= ranges[-1][1] + 1:
            ranges[-1][1] = hi
        else:
            ranges.append([lo, hi])
    out = []
    for lo, hi in ranges[:limit]:
        parts, found, first = [], [], None
        for j in range(lo, hi + 1):
            m = pattern.search(_spoken(lines[j]))
            if m:
                first = j if first is None else first
                found += [t for t in terms if re.search(rf"\b{re.escape(stem(t))}", _spoken(lines[j]), re.I)
                          and t not in found]
                parts.append(_clip(lines[j], m.start(), CLIP))
            else:
                parts.append(_clip(lines[j], None, CLIP // 2, tail=first is None))  # before a hit: its end
        at = parse(lines[first]).start if first is not None and parse(lines[first]) else None
        out.append(("\n".join(parts), at, found))
    return out


_PICK = """
SELECT id, title, started_at, call_url, source FROM conversations cv
 WHERE cv.workspace_id = %(workspace_id)s AND cv.deleted_at IS NULL AND cv.is_internal IS NOT TRUE
   AND (cv.started_at IS NULL OR cv.started_at <= %(now)s)
   AND (cv.source = ANY(%(sources)s) OR cv.transcript IS NOT NULL)
   AND {scope}
 ORDER BY cv.started_at DESC NULLS LAST, cv.id LIMIT %(limit)s
"""
_BY_ACCOUNT = "cv.account_id = %(account_id)s"
_BY_PARTICIPANT = """EXISTS (SELECT 1 FROM jsonb_array_elements(
        CASE jsonb_typeof(cv.participants) WHEN 'array' THEN cv.participants ELSE '[]'::jsonb END) p
     WHERE p->>'email' ILIKE %(participant)s OR p->>'name' ILIKE %(participant)s)"""


def recent_external(db, workspace_id: str, *, account_id=None, participant: str | None = None,
                    limit: int = DEFAULT_LIMIT, now: datetime) -> list[dict[str, Any]]:
    """The newest external conversations of an account (or with a participant whose name/email contains
    `participant`) that have or can have a transcript."""
    if account_id is None and not participant:
        raise InputError("Say whose calls to search: an account (or a participant's name)", field="account")
    scope = _BY_ACCOUNT if account_id is not None else _BY_PARTICIPANT
    like = "%" + (participant or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with db.connection() as conn:
        return conn.execute(_PICK.format(scope=scope), {
            "workspace_id": workspace_id, "now": now, "sources": transcript_sources(), "limit": limit,
            "account_id": account_id, "participant": like}).fetchall()


def search_transcripts(db, vault: Vault, workspace_id, *, topic: str, account_id=None, participant: str | None = None,
                       limit: int = DEFAULT_LIMIT, per_call: int = 3, window: int = 1,
                       max_age: timedelta | None = None, now: datetime | None = None,
                       transport: httpx.BaseTransport | None = None,
                       sleep: Callable[[float], None] | None = None) -> TranscriptSearch:
    """Excerpts mentioning `topic` from the `limit` most recent external calls of an account (or participant),
    newest call first."""
    terms = topic_terms(topic)
    if not terms:
        raise InputError(f"Say what to look for in the calls (e.g. pricing, security, timeline); got {topic!r}",
                         field="topic")
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    workspace_id = str(workspace_id)
    now = now or datetime.now(timezone.utc)
    picked = recent_external(db, workspace_id, account_id=account_id, participant=participant, limit=int(limit),
                             now=now)
    searched, found = [], []
    refused: dict[str, str] = {}   # source → why it refused: its other calls are not asked again
    for row in picked:
        s = Searched(str(row["id"]), row["title"], row["started_at"], row["call_url"], row["source"])
        searched.append(s)
        if row["source"] in refused:
            s.error = refused[row["source"]]
            continue
        try:
            t = get_transcript(db, vault, workspace_id, str(row["id"]), max_age=max_age, now=now,
                               transport=transport, sleep=sleep)
        except PandoraError as exc:
            s.error = exc.message
            if isinstance(exc, (AuthError, RateLimited)) or exc.details.get("reason") == "not_connected":
                refused[row["source"]] = exc.message
            continue
        s.from_cache = t.from_cache
        for text, at, hit_terms in excerpts_of(t.text, terms, window=window, limit=per_call):
            found.append(Excerpt(s.conversation_id, s.title, s.started_at, s.call_url, s.source, text, at, hit_terms))
            s.excerpts += 1
    return TranscriptSearch(topic, terms, searched, found)
