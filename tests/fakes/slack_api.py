"""A fake Slack Web API for `slack_sdk.WebClient(base_url=fake.url)` (and Bolt apps built on it).

It answers the methods Pandora calls with Slack's own response shapes, checks the bot token the way Slack does
(`not_authed` / `invalid_auth` / `token_revoked`), records every call, and serves the two non-API URLs a real
workspace has: `url_private` file downloads (Bearer bot token required, else 403) and the upload URLs that
`files_upload_v2` posts bytes to. It never listens beyond loopback and never talks to slack.com.

    with FakeSlack() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.url)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.calls_to("chat.postMessage")[0]["text"] == "hi"

Recorded `params` merge the query string and the body (form, multipart or JSON); the JSON-in-a-string
arguments Slack takes (`blocks`, `view`, `files`, `attachments`) are decoded so tests can look inside them.
"""
from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.server import FakeServer, send_json
from tests.fakes.slack_wire import basic, bearer, blocks_problem, params_of, read_body, send_bytes
NO_TOKEN_METHODS = {"oauth.v2.access", "oauth.access", "api.test"}
APP_TOKEN_METHODS = {"apps.connections.open"}  # app-level (xapp-) tokens only


class FakeSlack(FakeServer):
    base_path = "/api/"
    bot_token = "xoxb-test"
    app_token = "xapp-1-A0PANDORA-1-test"
    team_id = "T0TEST"
    team_name = "Test Team"
    bot_user_id = "UBOT"
    bot_id = "BBOT"
    client_id = "1111.2222"
    client_secret = "client-secret"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tokens_used: list[str | None] = []         # aligned with `calls`: the token each call carried
        self.messages: list[dict[str, Any]] = []        # posted messages (chat.postMessage / postEphemeral), kept current by chat.update
        self.views: list[dict[str, Any]] = []           # views opened / pushed / updated / published, as returned
        self.uploaded: list[dict[str, Any]] = []        # completed uploads: {id, filename, title, content, channel, thread_ts, initial_comment}
        self.responses: list[dict[str, Any]] = []       # bodies posted to response_url()s
        self.downloads: list[str] = []                  # file ids fetched through url_private
        self.files: dict[str, dict[str, Any]] = {}
        self._contents: dict[str, bytes] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, list[tuple[str, float | None]]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        # token → the team it belongs to; tokens issued by oauth.v2.access join this map
        self.tokens: dict[str, dict[str, Any]] = {
            self.bot_token: {"team_id": self.team_id, "team": self.team_name, "user_id": self.bot_user_id,
                             "bot_id": self.bot_id, "enterprise_id": None}}
        self.revoked: set[str] = set()
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.add_user("U0USER", "Dana Scully", "dana@example.com")
        self._socket_mode = None  # tests/fakes/slack_socket.py, started by the first apps.connections.open

    # ---- scripting -------------------------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return self.url[: -len(self.base_path)]

    def socket_mode(self):
        """The Socket Mode endpoint (tests/fakes/slack_socket.py) whose URLs apps.connections.open hands out."""
        from tests.fakes.slack_socket import FakeSocketMode

        with self._lock:
            if self._socket_mode is None:
                self._socket_mode = FakeSocketMode()
            return self._socket_mode

    def on_stop(self) -> None:
        with self._lock:
            socket_mode, self._socket_mode = self._socket_mode, None
        if socket_mode is not None:
            socket_mode.close()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for m, params in self.calls if m == method]

    def fail_next(self, method: str, error: str, *, retry_after: float | None = None) -> None:
        """The next call of `method` answers {"ok": false, "error": error}; "ratelimited" answers HTTP 429
        with a Retry-After header (seconds, default 1), as Slack does."""
        with self._lock:
            self._failures.setdefault(method, []).append((error, retry_after))

    def add_file(self, file_id: str, name: str, content: bytes, filetype: str, mimetype: str, *,
                 user: str = "U0USER", channels: list[str] | None = None) -> dict[str, Any]:
        """A file shared in the workspace: files.info returns this dict; its url_private serves `content`."""
        url = f"{self.root}/files-pri/{self.team_id}-{file_id}"
        channels = channels or []
        share_ts = self._ts()  # the message that shared the file (Slack lists it under `shares`)
        shares: dict[str, dict[str, list]] = {}
        for channel in channels:
            kind = "public" if channel.startswith("C") else "private"
            shares.setdefault(kind, {})[channel] = [{"ts": share_ts, "reply_count": 0, "reply_users": []}]
        info = {"id": file_id, "name": name, "title": name, "filetype": filetype, "mimetype": mimetype,
                "size": len(content), "user": user, "url_private": f"{url}/{name}",
                "url_private_download": f"{url}/download/{name}", "shares": shares,
                "channels": [c for c in channels if c.startswith("C")], "groups": [c for c in channels if c.startswith("G")],
                "ims": [c for c in channels if c.startswith("D")], "created": 1_700_000_000, "is_external": False,
                "mode": "hosted"}
        with self._lock:
            self.files[file_id] = info
            self._contents[file_id] = content
        return info

    def add_user(self, user_id: str, name: str, email: str | None = None, *, tz: str = "America/New_York") -> dict:
        user = {"id": user_id, "team_id": self.team_id, "name": name.split()[0].lower(), "real_name": name,
                "tz": tz, "is_bot": False, "deleted": False,
                "profile": {"real_name": name, "display_name": name.split()[0], "email": email}}
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, is_im: bool = False) -> dict:
        channel = {"id": channel_id, "name": name, "is_channel": not is_im, "is_im": is_im, "is_member": True}
        self.channels[channel_id] = channel
        return channel

    def issue_oauth_code(self, *, team_id: str = "T0NEW", team_name: str = "New Team",
                         enterprise_id: str | None = None, user_id: str = "U0USER",
                         scope: str = "commands,chat:write") -> str:
        """A code oauth.v2.access will exchange (once) for a fresh bot token of that team."""
        code = f"code-{next(self._seq)}"
        self.oauth_codes[code] = {"team_id": team_id, "team_name": team_name, "enterprise_id": enterprise_id,
                                  "user_id": user_id, "scope": scope}
        return code

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def response_url(self, name: str = "r") -> str:
        """A response_url to put in a slash command / action payload; what is posted there lands in .responses."""
        return f"{self.root}/response/{name}"

    def message(self, ts: str) -> dict[str, Any] | None:
        with self._lock:
            return next((m for m in self.messages if m["ts"] == ts), None)

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m["channel"] == channel]

    # ---- HTTP ------------------------------------------------------------------------------------------------
    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        if path.startswith("/files-pri/"):
            return self._download(handler, path)
        self._dispatch(handler)

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        if path.startswith("/upload/"):
            return self._receive_upload(handler, path.rsplit("/", 1)[-1])
        if path.startswith("/response/"):
            body = read_body(handler)
            with self._lock:
                self.responses.append({"name": path.rsplit("/", 1)[-1], **(json.loads(body or b"{}"))})
            return send_json(handler, 200, {"ok": True})
        self._dispatch(handler)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        if not parts.path.startswith(self.base_path):
            return send_json(handler, 404, {"ok": False, "error": "not_found"})
        method = parts.path[len(self.base_path):]
        params = params_of(handler, parts.query)
        token = bearer(handler) or params.pop("token", None)
        with self._lock:
            self.calls.append((method, params))
            self.tokens_used.append(token)
            queued = self._failures.get(method)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            error, retry_after = failure
            if error == "ratelimited":
                return send_json(handler, 429, {"ok": False, "error": "ratelimited"},
                                 {"Retry-After": str(int(retry_after if retry_after is not None else 1))})
            return send_json(handler, 200, {"ok": False, "error": error})
        if method not in NO_TOKEN_METHODS | APP_TOKEN_METHODS:
            problem = self._token_problem(token)
            if problem:
                return send_json(handler, 200, {"ok": False, "error": problem})
        fn = getattr(self, "api_" + method.replace(".", "_"), None)
        if fn is None:
            return send_json(handler, 200, {"ok": False, "error": "unknown_method"})
        body = fn(params, token=token, handler=handler)
        send_json(handler, 200, body)

    def _token_problem(self, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if token in self.revoked:
            return "token_revoked"
        if token not in self.tokens:
            return "invalid_auth"
        return None

    def _download(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        file_id = path.split("/")[2].split("-", 1)[-1]
        token = bearer(handler)
        with self._lock:
            content = self._contents.get(file_id)
        if content is None:
            return send_bytes(handler, 404, b"not found", "text/plain")
        if self._token_problem(token):  # Slack serves its login page; a clear 403 makes the mistake obvious
            return send_bytes(handler, 403, b"a bot token (Authorization: Bearer xoxb-...) is required", "text/plain")
        with self._lock:
            self.downloads.append(file_id)
        send_bytes(handler, 200, content, self.files[file_id]["mimetype"])

    def _receive_upload(self, handler: BaseHTTPRequestHandler, file_id: str) -> None:
        data = read_body(handler)
        with self._lock:
            pending = self._pending_uploads.get(file_id)
            if pending is not None:
                pending["content"] = data
        if pending is None:
            return send_bytes(handler, 404, b"unknown upload", "text/plain")
        send_bytes(handler, 200, f"OK - {len(data)}".encode(), "text/plain")

    # ---- Web API methods (each returns the JSON body) --------------------------------------------------------
    def _ts(self) -> str:
        n = next(self._seq)
        return f"{1_700_000_000 + n}.{n:06d}"

    def api_auth_test(self, params, *, token, handler):
        t = self.tokens[token]
        return {"ok": True, "url": f"https://{t['team'].lower().replace(' ', '')}.slack.com/", "team": t["team"],
                "user": "pandora", "team_id": t["team_id"], "user_id": t["user_id"], "bot_id": t["bot_id"],
                "enterprise_id": t["enterprise_id"], "is_enterprise_install": False}

    def api_chat_postMessage(self, params, *, token, handler):
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        problem = blocks_problem(params.get("blocks"))
        if problem:
            return _invalid_blocks(problem)
        message = {"type": "message", "channel": params["channel"], "ts": self._ts(), "text": params.get("text", ""),
                   "blocks": params.get("blocks") or [], "thread_ts": params.get("thread_ts"),
                   "user": self.tokens[token]["user_id"], "bot_id": self.tokens[token]["bot_id"]}
        with self._lock:
            self.messages.append(message)
        return {"ok": True, "channel": message["channel"], "ts": message["ts"],
                "message": {k: v for k, v in message.items() if k != "channel"}}

    def api_chat_update(self, params, *, token, handler):
        problem = blocks_problem(params.get("blocks"))
        if problem:
            return _invalid_blocks(problem)
        with self._lock:
            message = next((m for m in self.messages
                            if m["ts"] == params.get("ts") and m["channel"] == params.get("channel")), None)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            for key in ("text", "blocks"):
                if key in params:
                    message[key] = params[key]
            message["edited"] = True
        return {"ok": True, "channel": message["channel"], "ts": message["ts"], "text": message["text"],
                "message": {"text": message["text"], "blocks": message["blocks"]}}

    def api_chat_delete(self, params, *, token, handler):
        with self._lock:
            message = next((m for m in self.messages
                            if m["ts"] == params.get("ts") and m["channel"] == params.get("channel")), None)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            self.messages.remove(message)
        return {"ok": True, "channel": message["channel"], "ts": message["ts"]}

    def api_chat_postEphemeral(self, params, *, token, handler):
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found" if not params.get("channel") else "user_not_in_channel"}
        message = {"type": "message", "channel": params["channel"], "ts": self._ts(), "text": params.get("text", ""),
                   "blocks": params.get("blocks") or [], "thread_ts": params.get("thread_ts"),
                   "ephemeral": True, "to_user": params["user"]}
        with self._lock:
            self.messages.append(message)
        return {"ok": True, "message_ts": message["ts"]}

    def _view(self, params: dict[str, Any], *, view_id: str | None = None) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict) or "type" not in view:
            return {"ok": False, "error": "invalid_arguments"}
        problem = blocks_problem(view.get("blocks") or [], limit=100)
        if problem:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}}
        full = {**view, "id": view_id or f"V{next(self._seq):06d}", "team_id": self.team_id,
                "state": {"values": {}}, "hash": f"h{next(self._seq)}", "root_view_id": None}
        with self._lock:
            self.views.append(full)
        return {"ok": True, "view": full}

    def api_views_open(self, params, *, token, handler):
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return self._view(params)

    api_views_push = api_views_open

    def api_views_update(self, params, *, token, handler):
        if not (params.get("view_id") or params.get("external_id")):
            return {"ok": False, "error": "not_found"}
        return self._view(params, view_id=params.get("view_id"))

    def api_views_publish(self, params, *, token, handler):
        if not params.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return self._view(params)

    def api_files_info(self, params, *, token, handler):
        info = self.files.get(params.get("file", ""))
        if info is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": info, "comments": [], "response_metadata": {"next_cursor": ""}}

    def api_files_getUploadURLExternal(self, params, *, token, handler):
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._seq):08d}"
        with self._lock:
            self._pending_uploads[file_id] = {"filename": params["filename"], "length": int(params["length"]),
                                              "content": None}
        return {"ok": True, "upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def api_files_completeUploadExternal(self, params, *, token, handler):
        done = []
        for item in params.get("files") or []:
            with self._lock:
                pending = self._pending_uploads.pop(item.get("id"), None)
            if pending is None or pending["content"] is None:
                return {"ok": False, "error": "file_not_found"}
            record = {"id": item["id"], "filename": pending["filename"], "title": item.get("title"),
                      "content": pending["content"], "channel": params.get("channel_id"),
                      "thread_ts": params.get("thread_ts"), "initial_comment": params.get("initial_comment")}
            with self._lock:
                self.uploaded.append(record)
            done.append({"id": item["id"], "name": pending["filename"], "title": item.get("title"),
                         "size": len(pending["content"])})
        return {"ok": True, "files": done}

    def api_oauth_v2_access(self, params, *, token, handler):
        client_id, secret = basic(handler) or (params.get("client_id"), params.get("client_secret"))
        if (client_id, secret) != (self.client_id, self.client_secret):
            return {"ok": False, "error": "invalid_client_id" if client_id != self.client_id else "bad_client_secret"}
        with self._lock:
            grant = self.oauth_codes.pop(params.get("code", ""), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        n = next(self._seq)
        bot_token = f"xoxb-{grant['team_id']}-{n}"
        self.tokens[bot_token] = {"team_id": grant["team_id"], "team": grant["team_name"], "user_id": f"UBOT{n}",
                                  "bot_id": f"BBOT{n}", "enterprise_id": grant["enterprise_id"]}
        enterprise = {"id": grant["enterprise_id"], "name": "Enterprise"} if grant["enterprise_id"] else None
        return {"ok": True, "app_id": "A0PANDORA", "authed_user": {"id": grant["user_id"]}, "scope": grant["scope"],
                "token_type": "bot", "access_token": bot_token, "bot_user_id": f"UBOT{n}",
                "team": {"id": grant["team_id"], "name": grant["team_name"]}, "enterprise": enterprise,
                "is_enterprise_install": False}

    def api_apps_connections_open(self, params, *, token, handler):
        if not token:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token or token in self.revoked:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": self.socket_mode().new_url()}

    def api_users_info(self, params, *, token, handler):
        user = self.users.get(params.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def api_conversations_info(self, params, *, token, handler):
        channel_id = params.get("channel", "")
        channel = self.channels.get(channel_id)
        if channel is None and channel_id[:1] in ("C", "G", "D"):  # any plausible id exists, named after itself
            channel = {"id": channel_id, "name": channel_id.lower(), "is_channel": channel_id[0] == "C",
                       "is_im": channel_id[0] == "D", "is_member": True}
        return {"ok": True, "channel": channel} if channel else {"ok": False, "error": "channel_not_found"}


def _invalid_blocks(problem: str) -> dict[str, Any]:
    return {"ok": False, "error": "invalid_blocks", "errors": [problem],
            "response_metadata": {"messages": [f"[ERROR] {problem}"]}}
