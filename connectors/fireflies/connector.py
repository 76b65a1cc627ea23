"""The Fireflies connector: API key, user directory, and one transcripts stream per tracked rep.

Connect is two-step: the API key is checked (`user`), the workspace's user directory (`users`) is stored in
`connections.metadata.users`, and the reps picked from it are `metadata.tracked_users` ([{id, name, email}]).
Only tracked reps' calls are synced: one stream per tracked rep, `transcripts(organizer_email:)`, run one
after another; removing a rep only stops fetching, the calls already synced stay.

Why one stream per rep rather than `Stream.partitions`: the rep's e-mail and the incremental `fromDate` are
both GraphQL variables, and the orchestrator merges a partition's body and the `since` body one level deep
only (the second `variables` would replace the first). A stream per rep keeps its own saved cursor under
`transcripts:<user id>`, exactly like a partition would.

Paging: `limit`/`skip` variables (`OffsetPaginator`, 50 per page at most), stopping on a short or empty page.
Incremental: the largest `date` seen (epoch ms) becomes the next run's `fromDate` (ISO). Transcripts
(sentences) are not fetched by sync: `fetch_transcript` (`transcript(id:)`) serves core.transcripts on demand.

Errors come in a GraphQL `errors[]` array, usually with HTTP 200: `too_many_requests` waits for
`extensions.metadata.retryAfter` (epoch ms) when that is short, and otherwise stops the sync with RateLimited
naming the configured plan limit; `auth_failed`/`forbidden`/401/403 are AuthError "reconnect Fireflies".
Requests are paced by a token bucket from `metadata.rate_limit` {"requests", "period" (s), "burst"}; the
default is the free/Pro plan's 50 requests per day (Business plans: e.g. {"requests": 60, "period": 60}).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

from core.errors import AuthError, ConnectorError, RateLimited
from core.sync.http import HttpClient, RateLimiter, RetryPolicy
from core.sync.paginators import OffsetPaginator
from core.sync.protocol import CredentialField, Stream, StreamContext
from core.transcripts.text import Line, render, speaker_label

API_URL = "https://api.fireflies.ai/graphql"
PAGE_SIZE = 50                      # Fireflies' maximum `limit`
DEFAULT_LIMIT = {"requests": 50, "period": 86_400}
AUTH_CODES = {"auth_failed", "forbidden", "invalid_api_key", "unauthenticated", "unauthorized"}

USER_QUERY = "query { user { user_id name email } }"
USERS_QUERY = "query { users { user_id name email } }"
TRANSCRIPTS_QUERY = """query Transcripts($organizer_email: String, $fromDate: DateTime, $limit: Int, $skip: Int) {
  transcripts(organizer_email: $organizer_email, fromDate: $fromDate, limit: $limit, skip: $skip) {
    id title date duration organizer_email host_email participants transcript_url meeting_link
    meeting_attendees { displayName email name }
    summary { overview short_summary gist action_items keywords }
  }
}"""

# On demand only (core.transcripts), never by sync: one call's sentences.
TRANSCRIPT_QUERY = """query Transcript($id: String!) {
  transcript(id: $id) { id sentences { index speaker_id speaker_name text start_time } }
}"""
NOT_FOUND_CODES = {"object_not_found", "not_found"}



def describe_limit(limit: dict[str, Any]) -> str:
    requests, period = limit["requests"], limit["period"]
    unit = {86_400: "day", 3_600: "hour", 60: "minute", 1: "second"}.get(int(period))
    return f"{requests:g} requests per {unit}" if unit else f"{requests:g} requests per {period:g} s"


def rate_limit(metadata: dict[str, Any]) -> dict[str, Any]:
    raw = metadata.get("rate_limit") or {}
    requests = float(raw.get("requests", DEFAULT_LIMIT["requests"]))
    period = float(raw.get("period", DEFAULT_LIMIT["period"]))
    if requests <= 0 or period <= 0:
        raise ConnectorError("fireflies: metadata rate_limit needs positive 'requests' and 'period'",
                             connector="fireflies")
    return {"requests": requests, "period": period, "burst": int(raw.get("burst", max(1, int(requests))))}


def _retry_after_seconds(error: dict[str, Any], now: float) -> float | None:
    """`extensions.metadata.retryAfter`: an epoch-ms instant (Fireflies) — or, if small, seconds to wait."""
    value = ((error.get("extensions") or {}).get("metadata") or {}).get("retryAfter")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if value > 1e11:  # epoch milliseconds
        return max(0.0, value / 1000 - now)
    return max(0.0, value)


def _first_error(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict) or not payload.get("errors"):
        return None
    errors = payload["errors"]
    first = errors[0] if isinstance(errors, list) and errors else errors
    return first if isinstance(first, dict) else {"message": str(first)}


def _code(error: dict[str, Any]) -> str:
    return str(error.get("code") or (error.get("extensions") or {}).get("code") or "")


class FirefliesClient(HttpClient):
    """HttpClient plus Fireflies' GraphQL error mapping (errors arrive in the body, usually with HTTP 200)."""

    def __init__(self, *args: Any, limit_text: str, clock: Callable[[], float] = time.time, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limit_text = limit_text
        self._clock = clock

    def _limited(self, detail: str, retry_after: float | None, **details: Any) -> RateLimited:
        when = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(f"Fireflies rate limit reached (plan limit: {self.limit_text}){when}: {detail}",
                           retry_after=retry_after, connector=self.connector, **details)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = super().request(method, url, **kwargs)
            except RateLimited as exc:  # an HTTP 429 past our budget: say which limit it is
                raise self._limited(exc.message, exc.retry_after) from exc
            except AuthError as exc:
                raise AuthError(f"{exc.message}; reconnect Fireflies" if "reconnect" not in exc.message
                                else exc.message, **exc.details) from exc
            error = _first_error(self.parse_json(response))
            if error is None:
                return response
            code, message = _code(error), str(error.get("message") or "")[:200]
            status = (error.get("extensions") or {}).get("status")
            path = response.request.url.path
            if code == "too_many_requests" or status == 429:
                self.stats.rate_limited += 1
                wait = _retry_after_seconds(error, self._clock())
                if wait is None:
                    wait = self.retry.backoff(attempt)
                if wait > self.retry.max_retry_after or attempt >= self.retry.max_attempts:
                    raise self._limited(message, wait, method=method, path=path, attempts=attempt)
                self._wait(wait, method, path, "answered too_many_requests", attempt)
                continue
            if code in AUTH_CODES or status in (401, 403):
                raise AuthError(f"Fireflies rejected the API key ({message}): reconnect Fireflies",
                                connector=self.connector, method=method, path=path, code=code)
            raise ConnectorError(f"fireflies: {method} {path} returned error {code or status}: {message}",
                                 connector=self.connector, method=method, path=path, code=code)


def _retry_after_http(response: httpx.Response) -> float | None:
    """An HTTP 429 carrying the GraphQL error body: its retryAfter."""
    try:
        error = _first_error(response.json())
    except ValueError:
        return None
    return _retry_after_seconds(error, time.time()) if error else None


def split_url(url: str) -> tuple[str, str]:
    """(origin, path) of the GraphQL URL: httpx would add a trailing slash to a base URL's path."""
    u = httpx.URL(url)
    return str(u.copy_with(path="/", query=None, fragment=None)).rstrip("/"), u.path or "/"


def iso_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def _participants(record: dict[str, Any], internal: set[str]) -> list[dict[str, Any]]:
    """meeting_attendees (names) plus `participants` (e-mail strings, sometimes comma-joined), one per e-mail."""
    people: dict[str, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []
    for a in record.get("meeting_attendees") or []:
        if not isinstance(a, dict):
            continue
        email = (a.get("email") or "").strip() or None
        name = a.get("name") or a.get("displayName")
        if email is None:
            if name:
                anonymous.append({"name": name, "email": None, "affiliation": "unknown"})
            continue
        people.setdefault(email.lower(), {"name": name, "email": email})
        if name and not people[email.lower()]["name"]:
            people[email.lower()]["name"] = name
    for raw in record.get("participants") or []:
        for email in str(raw or "").split(","):
            email = email.strip()
            if "@" in email:
                people.setdefault(email.lower(), {"name": None, "email": email})
    out = []
    for key, p in people.items():
        out.append({**p, "affiliation": "internal" if key in internal else "unknown"})
    return out + anonymous


def normalize_transcript(record: dict[str, Any], ctx: StreamContext, rep: dict[str, Any]) -> dict[str, Any]:
    internal = {str(u.get("email")).lower() for u in ctx.metadata.get("users") or []
                if isinstance(u, dict) and u.get("email")}
    organizer = record.get("organizer_email") or rep.get("email")
    organizer = organizer.strip().lower() if isinstance(organizer, str) and organizer.strip() else None
    if organizer:  # lower-cased as every connector stores e-mails: rep-level joins compare them as stored
        internal.add(organizer)
    date, duration = record.get("date"), record.get("duration")
    summary = record.get("summary") if isinstance(record.get("summary"), dict) else {}
    return {
        "source": "fireflies",
        "source_id": str(record["id"]),
        "title": record.get("title"),
        "started_at": datetime.fromtimestamp(float(date) / 1000, tz=timezone.utc) if date is not None else None,
        "duration_seconds": round(float(duration) * 60) if duration is not None else None,
        "organizer_email": organizer,
        "owner": rep.get("name") or rep.get("email"),
        "participants": _participants(record, internal),
        "call_url": record.get("transcript_url"),
        "summary": summary.get("overview") or summary.get("short_summary") or summary.get("gist"),
        "source_data": {"host_email": record.get("host_email"), "meeting_link": record.get("meeting_link"),
                        "summary": record.get("summary"), "tracked_user_id": rep.get("id")},
    }


def tracked_users(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Tracked reps with an e-mail (Fireflies filters by organizer e-mail), in a stable order, once each."""
    seen, out = set(), []
    for u in metadata.get("tracked_users") or []:
        if isinstance(u, dict) and u.get("email") and str(u.get("id") or u["email"]) not in seen:
            seen.add(str(u.get("id") or u["email"]))
            out.append({"id": str(u.get("id") or u["email"]), "name": u.get("name"), "email": u["email"]})
    return out


class FirefliesConnector:
    name = "fireflies"
    label = "Fireflies"
    credential_fields = [CredentialField("api_key", "API key",
                                         help="Fireflies → Integrations → Fireflies API → API key")]

    def __init__(self, api_url: str = API_URL, *, page_size: int = PAGE_SIZE) -> None:
        self.api_url = api_url
        self.page_size = min(page_size, PAGE_SIZE)

    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None,
               sleep: Callable[[float], None] | None = None) -> HttpClient:
        key = credentials.get("api_key") or credentials.get("token")
        if not key:
            raise AuthError("No Fireflies API key is stored: reconnect Fireflies", connector=self.name)
        limit = rate_limit(metadata)
        sleep = sleep or time.sleep
        origin, path = split_url(metadata.get("api_url") or self.api_url)
        client = FirefliesClient(
            origin, connector=self.name, label=self.label,
            headers={"Authorization": f"Bearer {key}"}, limit_text=describe_limit(limit),
            retry=RetryPolicy(max_attempts=int((metadata.get("rate_limit") or {}).get("attempts", 5)),
                              max_retry_after=float((metadata.get("rate_limit") or {}).get("max_wait", 120.0))),
            rate_limiter=RateLimiter(limit["requests"] / limit["period"], limit["burst"], sleep=sleep),
            transport=transport, sleep=sleep, retry_after_from=_retry_after_http,
        )
        client.graphql_path = path
        return client

    def _path(self, client: HttpClient) -> str:
        return getattr(client, "graphql_path", split_url(self.api_url)[1])

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        user = ((client.post_json(self._path(client), json={"query": USER_QUERY}) or {}).get("data") or {}).get("user") or {}
        return {"account_user_id": user.get("user_id"), "account_email": user.get("email")}

    def list_users(self, client: HttpClient) -> list[dict[str, Any]]:
        users = ((client.post_json(self._path(client), json={"query": USERS_QUERY}) or {}).get("data") or {}).get("users") or []
        return [{"id": str(u["user_id"]), "name": u.get("name") or u.get("email"), "email": u.get("email")}
                for u in users if isinstance(u, dict) and u.get("user_id")]

    def streams(self, ctx: StreamContext) -> list[Stream]:
        path = split_url(ctx.metadata.get("api_url") or self.api_url)[1]
        return [self._stream(rep, path) for rep in tracked_users(ctx.metadata)]

    def _stream(self, rep: dict[str, Any], path: str) -> Stream:
        email = rep["email"]
        return Stream(
            name=f"transcripts:{rep['id']}", entity="conversations", path=path, method="POST",
            paginator=OffsetPaginator(self.page_size, limit_param="limit", offset_param="skip", in_variables=True),
            records_path="data.transcripts",
            body={"query": TRANSCRIPTS_QUERY, "variables": {"organizer_email": email}},
            cursor_field="date",
            since=lambda since: {"json": {"variables": {"organizer_email": email, "fromDate": iso_ms(float(since))}}},
            normalize=lambda record, ctx: normalize_transcript(record, ctx, rep),
        )

    def fetch_transcript(self, client: HttpClient, conversation: dict[str, Any]) -> str | None:
        """The meeting's sentences as `[mm:ss] Name: text` lines (one per speaker turn); None when Fireflies
        has no such transcript (`object_not_found`, a null transcript, or no sentences yet)."""
        variables = {"id": str(conversation["source_id"])}
        try:
            payload = client.post_json(self._path(client), json={"query": TRANSCRIPT_QUERY, "variables": variables})
        except ConnectorError as exc:
            code = exc.details.get("code")  # the GraphQL error code; an HTTP 404 carries it in its body
            if type(exc) is ConnectorError and (code in NOT_FOUND_CODES or (
                    exc.details.get("status") == 404 and any(c in exc.message for c in NOT_FOUND_CODES))):
                return None
            raise
        record = ((payload or {}).get("data") or {}).get("transcript") or {}
        return transcript_text(record.get("sentences") or [])


def _seconds(value: Any) -> float | None:
    """`start_time` is documented as a String of seconds; numbers are taken too."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def transcript_text(sentences: list[Any]) -> str | None:
    unnamed: dict[str, str] = {}
    lines = [Line(_seconds(x.get("start_time")), speaker_label(x.get("speaker_name"), x.get("speaker_id"), unnamed),
                  str(x.get("text") or x.get("raw_text") or ""))
             for x in sentences if isinstance(x, dict)]
    return render(lines) or None
