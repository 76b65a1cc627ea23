"""The Gong (v2) connector: tracked reps' calls → `conversations`.

Connect is two-step: credentials (access key + secret, Basic auth, against the account's own API base URL,
e.g. https://us-12345.api.gong.io) → `list_users` reads the directory (`GET /v2/users`, cursor paging on
`records.cursor`) into `connections.metadata.users`; the user then picks `tracked_users`. A sync fetches
`POST /v2/calls/extensive` once per tracked rep (one partition per rep, run sequentially), filtered by
`primaryUserIds` and, after the first run, `fromDateTime` = the latest call start seen for that rep (inclusive:
the last call is read again, which an upsert makes harmless). Removing a rep only stops future fetches; the
calls already synced stay. Transcripts are not synced: `fetch_transcript` (`POST /v2/calls/transcript`) serves
core.transcripts, which fetches them on demand and caches them on the conversation.

Request shape: the orchestrator merges a partition and the incremental `since` into the request shallowly,
so both are declared as query parameters (`primaryUserId`, `fromDateTime`) and `GongClient` moves them into
the body's `filter` before the request leaves (Gong ignores query parameters on this POST). The cursor of the
next page goes in the body (`"cursor"`), repeated with the same filter.

Pitfalls handled: an empty window is HTTP 404 `{"errors": ["No calls found corresponding to the provided
filters"]}` → an empty last page, not an error; 3 requests/s (a token bucket, no burst, at 95 % of the
limit so latency jitter never puts a 4th request in Gong's second; metadata `rate_limit.per_second` overrides) and 429 `Retry-After` honoured by the shared client (a wait longer than the
retry budget — the daily cap — stops the sync with RateLimited); parties without `emailAddress` keep their
name with `email: None`; affiliation Internal/External/Unknown → internal/external/unknown; CRM `context`
objects are kept in `source_data.context` (the linker's tier 2 reads `context[*].objects[*]`); call start
times arrive with local offsets, so the incremental cursor is their UTC form (`_started_utc`), which compares
correctly as text.
"""
from __future__ import annotations

import base64
import logging
import time
from datetime import timezone
from typing import Any, Callable

import httpx

from core.errors import AuthError, ConnectorError
from core.sync.http import HttpClient, RateLimiter, RetryPolicy
from core.sync.paginators import AfterCursor, iterate_pages
from core.sync.protocol import CredentialField, Stream, StreamContext
from core.sync.times import iso_time
from core.transcripts.text import Line, render, speaker_label

log = logging.getLogger("pandora.gong")
API_BASE = "https://api.gong.io"
CALLS_PATH = "/v2/calls/extensive"
USERS_PATH = "/v2/users"
TRANSCRIPT_PATH = "/v2/calls/transcript"
NO_CALLS = "No calls found corresponding to the provided filters"
RATE_PER_SECOND = 3.0      # Gong's documented limit
HEADROOM = 0.95            # spacing a little wider than 1/3 s: network jitter can't bunch 4 into one second
CURSOR_KEY = "_started_utc"
# Query parameters the streams declare that belong in the body's `filter` (see the module docstring).
FILTER_PARAMS = {"primaryUserId": "primaryUserIds", "fromDateTime": "fromDateTime", "toDateTime": "toDateTime"}
AFFILIATIONS = {"internal": "internal", "external": "external", "unknown": "unknown"}


def utc_iso(value: Any) -> str | None:
    """Gong's `2026-05-01T09:00:00-07:00` as `2026-05-01T16:00:00Z` (None when absent or unreadable)."""
    parsed = iso_time(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None


class GongClient(HttpClient):
    """The shared client plus Gong's two request quirks: filter parameters moved into the POST body, and the
    "no calls found" 404 answered as an empty page."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, on_response=self._remember, **kwargs)
        self._last: httpx.Response | None = None

    def _remember(self, response: httpx.Response) -> None:
        self._last = response

    def request(self, method: str, url: str, *, params: dict[str, Any] | None = None, json: Any = None,
                **kwargs: Any) -> httpx.Response:
        if method.upper() == "POST" and isinstance(json, dict) and params:
            params, json = _fold_filter(params, json)
        self._last = None
        try:
            return super().request(method, url, params=params or None, json=json, **kwargs)
        except ConnectorError as exc:
            last = self._last
            if exc.details.get("status") == 404 and last is not None and _is_no_calls(last):
                return httpx.Response(200, json={"records": {"totalRecords": 0, "currentPageSize": 0}, "calls": []},
                                      request=last.request)
            raise


def _fold_filter(params: dict[str, Any], body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    rest = {k: v for k, v in params.items() if k not in FILTER_PARAMS}
    flt = dict(body.get("filter") or {})
    for key, target in FILTER_PARAMS.items():
        if params.get(key) not in (None, ""):
            value = params[key]
            flt[target] = [str(value)] if target == "primaryUserIds" else value
    return rest, {**body, "filter": flt}


def _is_no_calls(response: httpx.Response) -> bool:
    try:
        errors = (response.json() or {}).get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, str) and e.strip().lower().startswith("no calls found") for e in errors)


def tracked_ids(metadata: dict[str, Any]) -> list[str]:
    """Tracked reps' Gong user ids, in the order chosen, without duplicates."""
    ids: list[str] = []
    for user in metadata.get("tracked_users") or []:
        uid = user.get("id") if isinstance(user, dict) else user
        if uid not in (None, "") and str(uid) not in ids:
            ids.append(str(uid))
    return ids


def _people(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for key in ("users", "tracked_users"):
        for u in metadata.get(key) or []:
            if isinstance(u, dict) and u.get("id") not in (None, ""):
                people.setdefault(str(u["id"]), {}).update({k: v for k, v in u.items() if v})
    return people


def participant(party: dict[str, Any]) -> dict[str, Any]:
    email = party.get("emailAddress")
    email = email.strip().lower() if isinstance(email, str) and email.strip() else None
    affiliation = AFFILIATIONS.get(str(party.get("affiliation") or "").lower(), "unknown")
    return {"name": party.get("name") or email, "email": email, "affiliation": affiliation}


def normalize_call(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any] | None:
    meta = record.get("metaData") or {}
    call_id = meta.get("id")
    if call_id in (None, ""):
        return None
    primary = str(meta.get("primaryUserId")) if meta.get("primaryUserId") not in (None, "") else None
    tracked = tracked_ids(ctx.metadata)
    if primary is not None and primary not in tracked:
        return None  # Gong's filter decides; this only guarantees an untracked rep's call is never stored
    parties = [p for p in record.get("parties") or [] if isinstance(p, dict)]
    rep = _people(ctx.metadata).get(primary or "", {})
    rep_party = next((p for p in parties if primary and str(p.get("userId")) == primary), {})
    rep_email = rep.get("email") or rep_party.get("emailAddress")
    duration = meta.get("duration")
    extra = {k: meta[k] for k in ("direction", "system", "scope", "media", "language", "purpose")
             if meta.get(k) not in (None, "")}
    return {
        "source": "gong",
        "source_id": str(call_id),
        "title": meta.get("title"),
        "started_at": iso_time(meta.get("started")) or iso_time(meta.get("scheduled")),
        "duration_seconds": int(duration) if isinstance(duration, (int, float)) else None,
        "organizer_email": rep_email.lower() if isinstance(rep_email, str) else None,
        "owner": rep.get("name") or rep_party.get("name") or rep_email,
        "participants": [participant(p) for p in parties],
        "call_url": meta.get("url"),
        "summary": ((record.get("content") or {}).get("brief")) or None,
        # speakerId → name: what an on-demand transcript needs to name its speakers without another request
        "source_data": {"metaData": meta, "context": record.get("context") or [], "primary_user_id": primary,
                        "speakers": {str(p["speakerId"]): p.get("name") or p.get("emailAddress")
                                     for p in parties if p.get("speakerId") not in (None, "")
                                     and (p.get("name") or p.get("emailAddress"))}},
        "custom_fields": {**extra, **(meta.get("customData") if isinstance(meta.get("customData"), dict) else {})},
    }


def add_utc_start(client: HttpClient, records: list[dict[str, Any]], ctx: StreamContext) -> None:
    """The incremental cursor: each call's start in UTC (offsets vary, so the raw value can't be compared)."""
    for record in records:
        meta = record.get("metaData") or {}
        record[CURSOR_KEY] = utc_iso(meta.get("started")) or utc_iso(meta.get("scheduled"))


class GongConnector:
    name = "gong"
    label = "Gong"
    credential_fields = [
        CredentialField("access_key", "Access key", secret=False,
                        help="Gong → Company settings → Ecosystem → API → Create access key"),
        CredentialField("access_key_secret", "Access key secret"),
        CredentialField("base_url", "API base URL", secret=False, required=False,
                        help="Shown with the key, e.g. https://us-12345.api.gong.io (default https://api.gong.io)"),
    ]

    def __init__(self, api_base: str = API_BASE, *, rate_per_second: float = RATE_PER_SECOND) -> None:
        self.api_base = api_base.rstrip("/")
        self.rate_per_second = rate_per_second

    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
               ) -> HttpClient:
        key, secret = credentials.get("access_key"), credentials.get("access_key_secret")
        if not key or not secret:
            raise AuthError("No Gong access key and secret are stored: reconnect Gong", connector=self.name)
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        limit = metadata.get("rate_limit") or {}
        sleep = sleep or time.sleep
        limiter = RateLimiter(float(limit.get("per_second", self.rate_per_second)) * HEADROOM, burst=1, sleep=sleep)
        base = (credentials.get("base_url") or metadata.get("base_url") or self.api_base).rstrip("/")
        return GongClient(
            base, connector=self.name, label=self.label, headers={"Authorization": f"Basic {basic}"},
            retry=RetryPolicy(max_attempts=int(limit.get("attempts", 6)), base_delay=0.5, max_delay=10.0),
            rate_limiter=limiter, transport=transport, sleep=sleep,
        )

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """The Gong workspaces the key can see (`/v2/workspaces`)."""
        spaces = (client.get_json("/v2/workspaces") or {}).get("workspaces") or []
        return {"workspaces": [{"id": str(w.get("id")), "name": w.get("name")} for w in spaces if isinstance(w, dict)]}

    def list_users(self, client: HttpClient) -> list[dict[str, Any]]:
        """The directory: [{id, name, email, active, title}] over every `/v2/users` page."""
        users = []
        for page in iterate_pages(client, method="GET", path=USERS_PATH,
                                  paginator=AfterCursor(cursor_path="records.cursor", param="cursor"),
                                  records_path="users"):
            for u in page.records:
                if not isinstance(u, dict) or u.get("id") in (None, ""):
                    continue
                name = " ".join(p for p in (u.get("firstName"), u.get("lastName")) if p) or None
                email = u.get("emailAddress")
                users.append({"id": str(u["id"]), "name": name or email, "email": email.lower() if email else None,
                              "active": u.get("active"), "title": u.get("title")})
        return users

    def streams(self, ctx: StreamContext) -> list[Stream]:
        start = ctx.metadata.get("sync_from")  # optional history limit for the first sync (ISO 8601)
        body: dict[str, Any] = {
            "filter": {"fromDateTime": start} if start else {},
            "contentSelector": {"context": "Extended", "exposedFields": {"parties": True}},
        }
        return [Stream(
            name="calls", entity="conversations", path=CALLS_PATH, method="POST", body=body,
            paginator=AfterCursor(cursor_path="records.cursor", param="cursor", in_body=True),
            records_path="calls", normalize=normalize_call, enrich=add_utc_start, cursor_field=CURSOR_KEY,
            since=lambda since: {"params": {"fromDateTime": since}},
            partitions=lambda c: [{"primaryUserId": uid} for uid in tracked_ids(c.metadata)],
        )]


    # -- on-demand transcripts (core.transcripts calls this; sync never does) --------------------------------
    def fetch_transcript(self, client: HttpClient, conversation: dict[str, Any]) -> str | None:
        """The call's transcript as `[mm:ss] Name: text` lines, None when Gong has none for it.

        `POST /v2/calls/transcript` with `filter.callIds`; Gong's "No calls found" 404 arrives from GongClient
        as an empty page, i.e. None. Monologues name a `speakerId` only: names come from the stored call when
        it has them, else from one `calls/extensive` lookup of the call's parties (a failed lookup leaves
        "Speaker N" labels rather than losing the transcript)."""
        call_id = str(conversation["source_id"])
        payload = client.post_json(TRANSCRIPT_PATH, json={"filter": {"callIds": [call_id]}}) or {}
        entry = next((t for t in payload.get("callTranscripts") or []
                      if isinstance(t, dict) and str(t.get("callId")) == call_id), None)
        monologues = [m for m in (entry or {}).get("transcript") or [] if isinstance(m, dict)]
        if not monologues:
            return None
        speakers = {str(m.get("speakerId")) for m in monologues if m.get("speakerId") not in (None, "")}
        names = stored_speakers(conversation)
        if speakers - names.keys():
            names.update({k: v for k, v in self._party_speakers(client, call_id).items() if k not in names})
        unnamed: dict[str, str] = {}
        lines = []
        for m in monologues:
            sentences = [x for x in m.get("sentences") or []
                         if isinstance(x, dict) and str(x.get("text") or "").strip()]
            if not sentences:
                continue
            start = sentences[0].get("start")
            key = m.get("speakerId")
            lines.append(Line(start / 1000 if isinstance(start, (int, float)) else None,
                              speaker_label(names.get(str(key)), key, unnamed),
                              " ".join(str(x["text"]).strip() for x in sentences)))
        return render(lines) or None

    def _party_speakers(self, client: HttpClient, call_id: str) -> dict[str, str]:
        body = {"filter": {"callIds": [call_id]}, "contentSelector": {"exposedFields": {"parties": True}}}
        try:
            payload = client.post_json(CALLS_PATH, json=body) or {}
        except ConnectorError as exc:
            log.warning("gong: speaker names of call %s unavailable (%s); using Speaker N", call_id, exc.message)
            return {}
        return {str(p["speakerId"]): p.get("name") or p.get("emailAddress")
                for call in payload.get("calls") or [] if isinstance(call, dict)
                for p in call.get("parties") or []
                if isinstance(p, dict) and p.get("speakerId") not in (None, "")
                and (p.get("name") or p.get("emailAddress"))}


def stored_speakers(conversation: dict[str, Any]) -> dict[str, str]:
    """speakerId → name from what the conversation row already holds (raw `parties` or a `speakers` map in
    source_data, or participants carrying a speaker id)."""
    data = conversation.get("source_data") or {}
    names: dict[str, str] = {}
    if isinstance(data.get("speakers"), dict):
        names.update({str(k): v for k, v in data["speakers"].items() if v})
    for p in [*(data.get("parties") or []), *(conversation.get("participants") or [])]:
        if not isinstance(p, dict):
            continue
        sid = p.get("speakerId") or p.get("speaker_id")
        name = p.get("name") or p.get("emailAddress") or p.get("email")
        if sid not in (None, "") and name:
            names.setdefault(str(sid), name)
    return names


def register() -> GongConnector:
    from core.sync import registry

    return registry.register(GongConnector())
