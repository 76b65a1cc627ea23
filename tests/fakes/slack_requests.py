"""Requests as Slack sends them to an app: slash commands, events, block actions and view submissions, signed
with the real v0 scheme (X-Slack-Signature = "v0=" + HMAC-SHA256(signing secret, "v0:{ts}:{body}")).

`SlackSender(http, secret)` posts them to /slack/events through any httpx-like client (Starlette's
TestClient in tests, httpx.Client in the benchmark) and returns the response.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0TEST"
USER_ID = "U0USER"
CHANNEL_ID = "C0REVOPS"


def signature(secret: str, timestamp: str, body: str) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str, *, timestamp: int | None = None, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(secret, ts, body),
            "Content-Type": content_type}


def command_form(text: str, *, command: str = "/pandora", channel: str = CHANNEL_ID, user: str = USER_ID,
                 team: str = TEAM_ID, response_url: str = "http://127.0.0.1:9/response", trigger_id: str = "13345.trig"
                 ) -> str:
    return urlencode({"token": "legacy", "team_id": team, "team_domain": "test", "channel_id": channel,
                      "channel_name": "revops", "user_id": user, "user_name": "dana", "command": command,
                      "text": text, "api_app_id": "A0PANDORA", "response_url": response_url,
                      "trigger_id": trigger_id})


def event_json(event: dict[str, Any], *, team: str = TEAM_ID, event_id: str | None = None) -> str:
    return json.dumps({"token": "legacy", "team_id": team, "api_app_id": "A0PANDORA", "type": "event_callback",
                       "event": event, "event_id": event_id or f"Ev{time.time_ns()}", "event_time": int(time.time()),
                       "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}]})


def interactive_form(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def block_action(action_id: str, value: str, *, channel: str = CHANNEL_ID, message_ts: str = "1.000001",
                 user: str = USER_ID, team: str = TEAM_ID, trigger_id: str = "13345.trig",
                 response_url: str = "http://127.0.0.1:9/response") -> dict[str, Any]:
    return {"type": "block_actions", "team": {"id": team, "domain": "test"}, "user": {"id": user, "team_id": team},
            "api_app_id": "A0PANDORA", "trigger_id": trigger_id, "response_url": response_url,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": "revops"}, "message": {"ts": message_ts, "text": ""},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "action_ts": str(time.time())}]}


def view_submission(view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str = USER_ID,
                    team: str = TEAM_ID) -> dict[str, Any]:
    """`view` as it was opened; `values` = state.values ({block_id: {action_id: {type, value…}}})."""
    submitted = {"id": "V0001", "team_id": team, "type": "modal", "private_metadata": "", "hash": "h",
                 **view, "state": {"values": values}}
    return {"type": "view_submission", "team": {"id": team, "domain": "test"}, "user": {"id": user, "team_id": team},
            "api_app_id": "A0PANDORA", "trigger_id": "13345.trig", "view": submitted}


class SlackSender:
    """Posts signed Slack requests to /slack/events of the app under test."""

    def __init__(self, http, secret: str, *, path: str = "/slack/events") -> None:
        self.http, self.secret, self.path = http, secret, path

    def post(self, body: str, content_type: str, *, timestamp: int | None = None, secret: str | None = None,
             headers: dict[str, str] | None = None):
        signed = signed_headers(secret or self.secret, body, timestamp=timestamp, content_type=content_type)
        return self.http.post(self.path, content=body.encode(), headers={**signed, **(headers or {})})

    def command(self, text: str, **kwargs):
        return self.post(command_form(text, **kwargs), "application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any], *, headers: dict[str, str] | None = None, **kwargs):
        return self.post(event_json(event, **kwargs), "application/json", headers=headers)

    def interactive(self, payload: dict[str, Any]):
        return self.post(interactive_form(payload), "application/x-www-form-urlencoded")
