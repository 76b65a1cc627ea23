"""A fake Google Drive v3 API (plus Google's OAuth token endpoint) on loopback, built from
../shared/fixtures/google_drive and the Drive reference.

- Auth: `Authorization: Bearer <token>` must be a live token (`issue_tokens`, `expire`), else the fixture's 401.
  `POST /token`: refresh_token and authorization_code grants for the app `APP_ID`/`APP_SECRET` (400
  invalid_grant for an unknown refresh token); refreshing returns no new refresh token, like Google.
- Files and folders live in one store with `parents`; shared drives (`add_drive`) give their items `driveId`.
  `files.list`: `q` with `'<id>' in parents`, `trashed = false`, `mimeType =/!= '…'`, `name = '…'`, and/or/not
  and parentheses; `corpora` user/drive/allDrives (drive needs `driveId`, both need includeItemsFromAllDrives
  and supportsAllDrives, else 400), `pageSize` ≤ 1000, opaque `pageToken` / `nextPageToken`.
  `files.get` (404 fixture shape), `alt=media` (403 fileNotDownloadable for Google-native files),
  `files/{id}/export` (Google-native only; 403 exportSizeLimitExceeded above `export_limit` bytes),
  `drives` / `drives/{id}`, `about`.
- Changes: every mutation (`add_*`, `modify`, `move`, `trash`, `delete`) records a change with an increasing
  number. `changes/startPageToken` is the next number; `changes.list(pageToken=n)` returns the latest change of
  each file since n, oldest first, `pageSize` at a time; more pages carry `nextPageToken`, only the last carries
  `newStartPageToken`. Deleted files come as `removed: true` without `file`; shared-drive items only with
  includeItemsFromAllDrives. Tokens not issued, or older than `invalidate_tokens()`, are the fixture's 400.
- Scripted failures: `fail(n, status, reason)` answers the next n API requests with the fixture error of that
  reason (403 userRateLimitExceeded, 429 rateLimitExceeded, ...). `block(pred)` holds a matching request until
  `release` is set (kill-and-resume tests). `log` records (method, path, query).
"""
from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, send_json

FIXTURES = "/work/shared/fixtures/google_drive"
APP_ID, APP_SECRET = "drive-app-id", "drive-app-secret"
FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
_ERRORS = {
    ("403", "userRateLimitExceeded"): "error_403_user_rate_limit_exceeded_CONSTRUCTED.json",
    ("429", "rateLimitExceeded"): "error_429_rate_limit_CONSTRUCTED.json",
    ("403", "exportSizeLimitExceeded"): "error_403_export_size_limit_exceeded_CONSTRUCTED.json",
    ("400", "invalid"): "error_400_invalid_page_token_CONSTRUCTED.json",
    ("401", "authError"): "error_401_invalid_credentials_CONSTRUCTED.json",
    ("400", "badRequest"): "error_400_bad_request.json",
}


def load(name: str) -> Any:
    with open(f"{FIXTURES}/{name}") as fh:
        return json.load(fh)


def error(status: int, reason: str, message: str | None = None, location: str | None = None) -> dict[str, Any]:
    """Google's error envelope: a fixture body when one exists for (status, reason), else built alike."""
    name = _ERRORS.get((str(status), reason))
    body = load(name) if name else {"error": {"code": status, "message": message or reason, "errors": [
        {"message": message or reason, "domain": "global", "reason": reason}]}}
    if message:
        body["error"]["message"] = body["error"]["errors"][0]["message"] = message
    if location:
        body["error"]["errors"][0]["location"] = location
    return body


def not_found(file_id: str) -> dict[str, Any]:
    body = load("error_404_file_not_found_CONSTRUCTED.json")
    body["error"]["message"] = body["error"]["errors"][0]["message"] = f"File not found: {file_id}."
    return body


# --- the query language, just enough of it --------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|=|\(|\))|(?P<word>[A-Za-z_]+))")
_FIELDS = {"mimeType", "name", "trashed"}


def parse_q(q: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over file resources; ValueError for anything this fake does not understand."""
    tokens, pos = [], 0
    q = q.strip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise ValueError(f"Invalid query near {q[pos:pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(("str", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op"):
            tokens.append(("op", m.group("op")))
        else:
            tokens.append(("word", m.group("word")))
    tokens.append(("end", None))
    at = [0]

    def peek():
        return tokens[at[0]]

    def take(kind=None, value=None):
        tok = tokens[at[0]]
        if (kind and tok[0] != kind) or (value and str(tok[1]).lower() != value):
            raise ValueError(f"Invalid query: expected {value or kind}, got {tok[1]!r}")
        at[0] += 1
        return tok

    def is_word(value):
        return peek()[0] == "word" and peek()[1].lower() == value

    def expr():
        left = conj()
        while is_word("or"):
            take()
            right, prev = conj(), left
            left = (lambda a, b: lambda f: a(f) or b(f))(prev, right)
        return left

    def conj():
        left = unary()
        while is_word("and"):
            take()
            right, prev = unary(), left
            left = (lambda a, b: lambda f: a(f) and b(f))(prev, right)
        return left

    def unary():
        if is_word("not"):
            take()
            inner = unary()
            return lambda f: not inner(f)
        if peek() == ("op", "("):
            take()
            inner = expr()
            take("op", ")")
            return inner
        return cond()

    def cond():
        tok = take()
        if tok[0] == "str":
            take("word", "in")
            take("word", "parents")
            return lambda f, v=tok[1]: v in (f.get("parents") or [])
        if tok[0] != "word" or tok[1] not in _FIELDS:
            raise ValueError(f"Invalid query: unsupported term {tok[1]!r}")
        op = take("op")[1]
        value_tok = take()
        value = value_tok[1] if value_tok[0] == "str" else {"true": True, "false": False}.get(value_tok[1].lower())
        if op not in ("=", "!=") or value is None:
            raise ValueError("Invalid query: unsupported comparison")
        field = tok[1]
        if op == "=":
            return lambda f: (f.get(field) if field != "trashed" else bool(f.get("trashed"))) == value
        return lambda f: (f.get(field) if field != "trashed" else bool(f.get("trashed"))) != value

    predicate = expr()
    take("end")
    return predicate


class FakeDrive(FakeServer):
    def __init__(self, *, export_limit: int = 10 * 1024 * 1024) -> None:
        super().__init__()
        self.export_limit = export_limit
        self.files: dict[str, dict[str, Any]] = {}
        self.content: dict[str, bytes] = {}
        self.drives: dict[str, str] = {}
        self.tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, bool] = {}
        self.token_requests: list[dict[str, str]] = []
        self.user = {"kind": "drive#user", "displayName": "Dana Manager", "emailAddress": "dana.manager@example.com",
                     "me": True, "permissionId": "98765432109876543210"}
        self.changes: list[tuple[int, str, str]] = []   # (number, file id, time)
        self.next_change = 1234
        self.oldest_token = 0
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.block: Callable[[str, str, dict], bool] | None = None
        self.blocked, self.release = threading.Event(), threading.Event()
        self._failures: list[tuple[int, str, Callable[[str], bool]]] = []
        self._ids = itertools.count(1)
        self._last_time = EPOCH
        self._lock = threading.RLock()

    # -- tokens --------------------------------------------------------------------------------------------
    def issue_tokens(self) -> dict[str, Any]:
        n = next(self._ids)
        access, refresh = f"ya29.fake-{n}", f"1//fake-refresh-{n}"
        self.tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/drive.readonly"}

    def expire(self, token: str) -> None:
        self.tokens.discard(token)

    # -- the store -----------------------------------------------------------------------------------------
    def now(self) -> str:
        """Drive's clock: the real time (a change made now is newer than anything fetched before it), strictly
        increasing by at least a millisecond per change."""
        self._last_time = max(datetime.now(timezone.utc), self._last_time + timedelta(milliseconds=1))
        return self._last_time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self._last_time.microsecond // 1000:03d}Z"

    def _record(self, file_id: str) -> None:
        self.changes.append((self.next_change, file_id, self.now()))
        self.next_change += 1

    def add_drive(self, name: str, drive_id: str | None = None) -> str:
        with self._lock:
            drive_id = drive_id or f"0ADrive{next(self._ids):04d}"
            self.drives[drive_id] = name
            return drive_id

    def _put(self, file: dict[str, Any], parent: str | None) -> str:
        drive = parent if parent in self.drives else (self.files.get(parent or "") or {}).get("driveId")
        if drive:
            file["driveId"] = drive
        self.files[file["id"]] = file
        self._record(file["id"])
        return file["id"]

    def add_folder(self, name: str, parent: str | None, folder_id: str | None = None) -> str:
        with self._lock:
            stamp = self.now()
            return self._put({"kind": "drive#file", "id": folder_id or f"1Folder{next(self._ids):04d}", "name": name,
                              "mimeType": FOLDER, "parents": [parent] if parent else [], "trashed": False,
                              "createdTime": stamp, "modifiedTime": stamp, "owners": [self._owner()]}, parent)

    def add_file(self, name: str, parent: str | None, *, mime: str = DOC, content: bytes | str = b"",
                 file_id: str | None = None, owner: dict[str, Any] | None = None) -> str:
        with self._lock:
            file_id = file_id or f"1File{next(self._ids):04d}"
            data = content.encode() if isinstance(content, str) else content
            stamp = self.now()
            file = {"kind": "drive#file", "id": file_id, "name": name, "mimeType": mime,
                    "modifiedTime": stamp, "createdTime": stamp, "owners": [owner or self._owner()],
                    "webViewLink": (f"https://docs.google.com/document/d/{file_id}/edit?usp=drivesdk"
                                    if mime.startswith("application/vnd.google-apps.")
                                    else f"https://drive.google.com/file/d/{file_id}/view?usp=drivesdk"),
                    "parents": [parent] if parent else [], "trashed": False}
            if not mime.startswith("application/vnd.google-apps."):
                file["size"] = str(len(data))
                file["md5Checksum"] = "5d41402abc4b2a76b9719d911017c592"
            self.content[file_id] = data
            return self._put(file, parent)

    def add_fixture_file(self, record: dict[str, Any], parent: str, content: bytes | str = b"") -> str:
        """A file from the fixtures (its own id, name, type, owners and times), placed under `parent`."""
        with self._lock:
            file = {k: copy.deepcopy(v) for k, v in record.items()}
            file.update(parents=[parent], trashed=False)
            self.content[file["id"]] = content.encode() if isinstance(content, str) else content
            return self._put(file, parent)

    def _owner(self) -> dict[str, Any]:
        return {"kind": "drive#user", "displayName": self.user["displayName"],
                "emailAddress": self.user["emailAddress"], "me": True, "permissionId": self.user["permissionId"]}

    def modify(self, file_id: str, *, content: bytes | str | None = None, **fields: Any) -> None:
        with self._lock:
            file = self.files[file_id]
            file.update(fields)
            if content is not None:
                self.content[file_id] = content.encode() if isinstance(content, str) else content
                if "size" in file:
                    file["size"] = str(len(self.content[file_id]))
            file["modifiedTime"] = self.now()
            self._record(file_id)

    def move(self, file_id: str, new_parent: str) -> None:
        self.modify(file_id, parents=[new_parent])

    def trash(self, file_id: str) -> None:
        self.modify(file_id, trashed=True)

    def delete(self, file_id: str) -> None:
        with self._lock:
            self.files.pop(file_id, None)
            self._record(file_id)

    def invalidate_tokens(self) -> None:
        """Every page token issued so far stops working (400 invalid pageToken)."""
        with self._lock:
            self.oldest_token = self.next_change

    # -- knobs ---------------------------------------------------------------------------------------------
    def fail(self, times: int, status: int, reason: str, when: Callable[[str], bool] = lambda path: True) -> None:
        with self._lock:
            self._failures += [(status, reason, when)] * times

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [q for _m, p, q in self.log if p == path]

    # -- plumbing ------------------------------------------------------------------------------------------
    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        _no_delay(handler)
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        with self._lock:
            self.log.append(("POST", url.path, {}))
        if url.path != "/token":
            return send_json(handler, 404, error(404, "notFound", f"unknown path {url.path}"))
        with self._lock:
            self.token_requests.append(form)
            if (form.get("client_id"), form.get("client_secret")) != (APP_ID, APP_SECRET):
                return send_json(handler, 401, {"error": "invalid_client", "error_description": "Unauthorized"})
            if form.get("grant_type") == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
                token = self.issue_tokens()
                self.refresh_tokens.discard(token.pop("refresh_token"))
                return send_json(handler, 200, token)
            if form.get("grant_type") == "authorization_code" and self.codes.pop(form.get("code", ""), False):
                return send_json(handler, 200, self.issue_tokens())
        send_json(handler, 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        _no_delay(handler)
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        with self._lock:
            self.log.append(("GET", path, query))
            held = self.block is not None and self.block("GET", path, query)
        if held:
            self.blocked.set()
            self.release.wait(30)
        with self._lock:
            auth = handler.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return send_json(handler, 401, error(401, "authError"), {"WWW-Authenticate": "Bearer"})
            failure = next((f for f in self._failures if f[2](path)), None)
            if failure is not None:
                self._failures.remove(failure)
                return send_json(handler, failure[0], error(failure[0], failure[1]))
            try:
                status, body = self._route(path, query)
            except ValueError as exc:  # a query this fake (or Drive) refuses
                return send_json(handler, 400, error(400, "invalid", str(exc), "q"))
        if isinstance(body, bytes):
            return _send_bytes(handler, status, body)
        send_json(handler, status, body)

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/drive/v3/about":
            return 200, {"kind": "drive#about", "user": self.user}
        if path == "/drive/v3/changes/startPageToken":
            return 200, {"kind": "drive#startPageToken", "startPageToken": str(self.next_change)}
        if path == "/drive/v3/changes":
            return self._changes(query)
        if path == "/drive/v3/files":
            return self._list(query)
        if path == "/drive/v3/drives":
            return 200, {"kind": "drive#driveList", "drives": [{"kind": "drive#drive", "id": k, "name": v}
                                                               for k, v in self.drives.items()]}
        if path.startswith("/drive/v3/drives/"):
            drive = path.rsplit("/", 1)[1]
            if drive not in self.drives:
                return 404, error(404, "notFound", f"Shared drive not found: {drive}", "driveId")
            return 200, {"kind": "drive#drive", "id": drive, "name": self.drives[drive]}
        m = re.fullmatch(r"/drive/v3/files/([^/]+)(/export)?", path)
        if m:
            return self._file(m.group(1), bool(m.group(2)), query)
        return 404, error(404, "notFound", f"unknown path {path}")

    def _file(self, file_id: str, export: bool, query: dict[str, str]) -> tuple[int, Any]:
        file = self.files.get(file_id)
        if file is None and file_id in self.drives:  # a shared drive's root folder
            return 200, {"kind": "drive#file", "id": file_id, "name": self.drives[file_id], "mimeType": FOLDER,
                         "driveId": file_id, "trashed": False}
        if file is None:
            return 404, not_found(file_id)
        native = file["mimeType"].startswith("application/vnd.google-apps.")
        if export:
            if not native:
                return 403, error(403, "fileNotExportable", "Export only supports Docs Editors files.")
            if not query.get("mimeType"):
                return 400, error(400, "required", "Required parameter: mimeType", "mimeType")
            data = self.content.get(file_id, b"")
            if len(data) > self.export_limit:
                return 403, error(403, "exportSizeLimitExceeded")
            return 200, data
        if query.get("alt") == "media":
            if native:
                return 403, error(403, "fileNotDownloadable", "Only files with binary content can be downloaded. "
                                                              "Use Export with Docs Editors files.")
            return 200, self.content.get(file_id, b"")
        return 200, copy.deepcopy(file)

    def _page_size(self, query: dict[str, str], default: int) -> int:
        size = int(query.get("pageSize") or default)
        if not 1 <= size <= 1000:
            raise ValueError("Invalid value for pageSize")
        return size

    def _list(self, query: dict[str, str]) -> tuple[int, Any]:
        corpora = query.get("corpora", "user")
        all_drives = query.get("includeItemsFromAllDrives") == "true" and query.get("supportsAllDrives") == "true"
        if corpora in ("drive", "allDrives") and not all_drives:
            return 400, error(400, "invalid", "includeItemsFromAllDrives and supportsAllDrives must be true "
                                              f"with corpora={corpora}", "corpora")
        if corpora == "drive" and query.get("driveId") not in self.drives:
            return 404, error(404, "notFound", f"Shared drive not found: {query.get('driveId')}", "driveId")
        predicate = parse_q(query["q"]) if query.get("q") else (lambda f: True)
        pool = [f for f in self.files.values()
                if (f.get("driveId") == query["driveId"] if corpora == "drive" else all_drives or not f.get("driveId"))]
        chosen = [copy.deepcopy(f) for f in pool if predicate(f)]
        size = self._page_size(query, 100)
        key = f"{query.get('q')}|{corpora}|{query.get('driveId')}"
        offset = 0
        if query.get("pageToken"):
            try:
                offset_s, token_key = base64.urlsafe_b64decode(query["pageToken"][4:].encode()).decode().split("|", 1)
                offset = int(offset_s)
                assert token_key == key
            except (ValueError, AssertionError):
                return 400, error(400, "invalid", "Invalid Value", "pageToken")
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": chosen[offset:offset + size]}
        if offset + size < len(chosen):
            body["nextPageToken"] = "~!!~" + base64.urlsafe_b64encode(f"{offset + size}|{key}".encode()).decode()
        return 200, body

    def _changes(self, query: dict[str, str]) -> tuple[int, Any]:
        token = query.get("pageToken", "")
        if not token.isdigit() or not self.oldest_token <= int(token) <= self.next_change:
            return 400, error(400, "invalid", location="pageToken")
        size = self._page_size(query, 100)
        all_drives = query.get("includeItemsFromAllDrives") == "true"
        latest: dict[str, tuple[int, str]] = {}
        for number, file_id, when in self.changes:
            if number >= int(token):
                latest.pop(file_id, None)   # re-inserted: ordered by its latest change
                latest[file_id] = (number, when)
        entries = []
        for file_id, (number, when) in latest.items():
            file = self.files.get(file_id)
            if file is not None and file.get("driveId") and not all_drives:
                continue
            entry = {"kind": "drive#change", "changeType": "file", "type": "file", "time": when,
                     "removed": file is None, "fileId": file_id}
            if file is not None:
                entry["file"] = copy.deepcopy(file)
            entries.append((number, entry))
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": [e for _n, e in entries[:size]]}
        if len(entries) > size:
            body["nextPageToken"] = str(entries[size][0])
        else:
            body["newStartPageToken"] = str(self.next_change)
        return 200, body


def _no_delay(handler: BaseHTTPRequestHandler) -> None:
    """Headers and body go out in two writes; without TCP_NODELAY the client's delayed ACK adds ~40 ms to each
    keep-alive request."""
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_bytes(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
