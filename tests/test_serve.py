"""`pandora serve`'s ASGI app: Slack, health and sidecar routes in one app, the digest scheduler tied to the
lifespan, a real uvicorn server answering signed Slack requests, and clear errors for missing settings."""
from __future__ import annotations

import dataclasses
import json
import time
import uuid

import httpx
import pytest
from starlette.testclient import TestClient

from bot.cli import main
from bot.serve import build_asgi, serving_in_thread
from bot.slack.app import build_app
from core.errors import ConfigError
from tests.fakes.slack_requests import CHANNEL_ID, SlackSender
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)
from tests.slack_app_fixtures import SECRET


def test_healthz_answers_without_touching_slack(slack_http, slack):
    assert slack_http.get("/healthz").json() == {"ok": True, "oauth": False}
    assert slack.calls == []


def test_the_sidecar_routes_are_served_next_to_slack(slack_http, workspace):
    response = slack_http.get(f"/api/workspaces/{workspace['id']}")
    assert response.status_code == 401  # the REST API is there, and wants its API key
    assert "error" in response.json()


def test_only_post_reaches_the_slack_endpoint(slack_http):
    assert slack_http.get("/slack/events").status_code == 405
    assert slack_http.get("/slack/install").status_code == 404  # single-workspace mode: no OAuth routes


def test_unknown_paths_and_methods_answer_in_the_json_error_shape(slack_http):
    missing = slack_http.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = slack_http.delete("/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_the_lifespan_starts_and_stops_the_digest_scheduler(db, slack_settings):
    asgi = build_asgi(db, slack_settings, bolt_app=build_app(db, slack_settings, lazy_inline=True))
    with TestClient(asgi):
        scheduler = asgi.state.digests
        assert scheduler._scheduler.running
    assert not scheduler._scheduler.running


def test_a_real_server_acks_a_signed_command_and_answers_in_the_channel(db, slack_settings, slack):
    asgi = build_asgi(db, slack_settings, bolt_app=build_app(db, slack_settings), scheduler=False)
    with serving_in_thread(asgi) as url, httpx.Client(base_url=url, timeout=10) as http:
        response = SlackSender(http, SECRET).command("status")
        assert response.status_code == 200 and response.text == ""  # acked empty; the answer comes by API
        for _ in range(200):  # the lazy listener answers after the ack, in its own thread
            if slack.messages_in(CHANNEL_ID):
                break
            time.sleep(0.05)
        assert slack.messages_in(CHANNEL_ID)[0]["text"].startswith("Status of")
        forged = SlackSender(http, "wrong").command("status")
        assert forged.status_code == 401


def test_socket_mode_needs_an_app_token(db, slack_settings):
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        build_app(db, slack_settings, socket_mode=True)
    app = build_app(db, dataclasses.replace(slack_settings, slack_app_token="xapp-1", slack_signing_secret=None),
                    socket_mode=True)
    assert app is not None


def test_oauth_needs_both_client_settings(db, slack_settings):
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET"):
        build_app(db, dataclasses.replace(slack_settings, slack_client_id="1.2"))


def test_pandora_serve_without_slack_settings_fails_with_the_variable_to_set(monkeypatch, capsys, tmp_path):
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET",
                 "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANDORA_HOME", str(tmp_path / f"home-{uuid.uuid4().hex[:6]}"))
    assert main(["serve", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "config_error" and error["variable"] == "SLACK_SIGNING_SECRET"
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    assert main(["serve", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["variable"] == "SLACK_BOT_TOKEN"


def test_slow_work_waits_for_pending_acks_but_not_forever():
    import logging
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from slack_bolt import BoltRequest

    from bot.slack.app import AcksFirstLazyRunner

    runner = AcksFirstLazyRunner(logging.getLogger("t"), ThreadPoolExecutor(max_workers=2), max_wait=0.5)
    ran = threading.Event()
    request = BoltRequest(body={"type": "event_callback"}, mode="socket_mode")
    runner.request_started()
    runner.start(lambda: ran.set(), request)
    assert not ran.wait(0.2)             # a request still waits for its ack: the slow work holds back
    runner.request_finished()
    assert ran.wait(1.0)                 # acks out: it runs
    ran.clear()
    runner.request_started()             # a request that never finishes cannot starve it past max_wait
    started = time.monotonic()
    runner.start(lambda: ran.set(), request)
    assert ran.wait(2.0) and time.monotonic() - started >= 0.45


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pandora_serve_socket_mode_answers_over_the_connection_and_reconnects(slack_settings, slack, tmp_path):
    """`pandora serve --socket`, as a developer runs it: the app token opens a Socket Mode connection
    (apps.connections.open, then the WebSocket of tests/fakes/slack_socket.py), a slash command and an
    @-mention arriving as envelopes are acknowledged over it and answered in the channel (a re-delivered event only
    acknowledged: the first delivery's `retry_attempt` 0 is no retry), a modal's bad input is answered in the
    submission's acknowledgement (`response_action: errors`, the ack's payload), a CSV dropped in the channel
    gets its import preview, the sidecar still
    answers HTTP, a `disconnect` from Slack is followed by a new connection that keeps serving, and SIGTERM stops
    everything cleanly."""
    import os
    import signal
    import subprocess
    import sys
    from urllib.parse import parse_qsl

    from tests.fakes.slack_requests import command_form, event_json, view_submission
    from tests.test_slack_views import _values

    port = _free_port()
    env = {**os.environ, "DATABASE_URL": slack_settings.database_url, "PANDORA_SECRET_KEY": slack_settings.secret_key,
           "PANDORA_HOME": str(tmp_path / "home"), "SLACK_API_URL": slack.url, "SLACK_BOT_TOKEN": slack.bot_token,
           "SLACK_APP_TOKEN": slack.app_token, "PANDORA_WORKSPACE": slack_settings.default_workspace,
           "PORT": str(port)}
    for name in ("SLACK_SIGNING_SECRET", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        env.pop(name, None)  # Socket Mode needs no signing secret
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--socket"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        socket_mode = slack.socket_mode()
        socket_mode.wait_connected(timeout=60)
        assert slack.tokens_used[slack.calls.index(("apps.connections.open", {}))] == slack.app_token

        def answer(kind: str, payload: dict) -> dict:
            before = len(slack.messages_in(CHANNEL_ID))
            envelope = socket_mode.send(kind, payload)
            assert socket_mode.wait_ack(envelope)["envelope_id"] == envelope
            for _ in range(400):  # the answer follows the ack, from the lazy listener
                if len(slack.messages_in(CHANNEL_ID)) > before:
                    return slack.messages_in(CHANNEL_ID)[-1]
                time.sleep(0.05)
            raise AssertionError(f"no answer to {kind} {payload}")

        def command(text: str) -> str:
            return answer("slash_commands", {**dict(parse_qsl(command_form(text))),
                                             "is_enterprise_install": "false"})["text"]

        assert command("status").startswith("Status of")
        mention = json.loads(event_json({"type": "app_mention", "user": "U0USER", "text": "<@UBOT> status",
                                         "channel": CHANNEL_ID, "ts": "1700000000.000100"}))
        assert answer("events_api", mention)["text"].startswith("Status of")
        answered = len(slack.messages_in(CHANNEL_ID))
        retry = socket_mode.send("events_api", mention, retry_attempt=1, retry_reason="timeout")
        socket_mode.wait_ack(retry)
        time.sleep(1.0)
        assert len(slack.messages_in(CHANNEL_ID)) == answered  # a re-delivery is acked, not answered twice

        # a modal: opened by a command, its bad input answered in the submission's acknowledgement
        socket_mode.wait_ack(socket_mode.send("slash_commands", {**dict(parse_qsl(command_form("context"))),
                                                                 "is_enterprise_install": "false"}))
        for _ in range(200):
            if slack.calls_to("views.open"):
                break
            time.sleep(0.05)
        view = slack.calls_to("views.open")[-1]["view"]
        submitted = socket_mode.send("interactive", view_submission(view, _values(view, {"ctx_business_model": "{x"})))
        ack = socket_mode.wait_ack(submitted)["payload"]
        assert ack["response_action"] == "errors" and "not valid JSON" in ack["errors"]["ctx_business_model"]

        # a CSV dropped in the channel (file_shared) gets its import preview
        slack.add_file("F1", "deals.csv", b"Record ID,Deal Name,Amount\n1,Acme renewal,1200\n", "csv", "text/csv",
                       channels=[CHANNEL_ID])
        shared = json.loads(event_json({"type": "file_shared", "file_id": "F1", "user_id": "U0USER",
                                        "channel_id": CHANNEL_ID, "file": {"id": "F1"}, "event_ts": "1700000001.1"}))
        reading = answer("events_api", shared)  # "Reading deals.csv…", then updated in place to the preview
        for _ in range(200):
            preview = slack.message(reading["ts"])
            if "Import preview" in json.dumps(preview.get("blocks") or []):
                break
            time.sleep(0.05)
        assert preview["blocks"][0]["text"]["text"] == "Import preview: deals.csv"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["ok"] is True

        socket_mode.disconnect("refresh_requested")
        socket_mode.wait_connected(timeout=30, count=2)
        assert len(slack.calls_to("apps.connections.open")) == 2  # a new ticket for the new connection
        assert command("status").startswith("Status of")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output = server.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0]
    assert server.returncode == 0, output  # it went through serve()'s clean-up, not killed by the signal
    assert "will be unused" not in output  # Bolt's warning about SLACK_BOT_TOKEN, which our client carries


def test_an_envelope_holds_back_lazy_work_until_its_ack_is_sent(db, slack_settings, slack):
    """Over Socket Mode as over HTTP, slow work started by earlier requests waits while a request awaits its ack
    (AcksFirstLazyRunner): the handler reports the envelope from dispatch until the ack has been sent."""
    import logging
    from urllib.parse import parse_qsl

    from slack_sdk.socket_mode.request import SocketModeRequest

    from bot.serve import socket_mode_handler
    from tests.fakes.slack_requests import command_form

    settings = dataclasses.replace(slack_settings, slack_app_token=slack.app_token)
    app = build_app(db, settings, socket_mode=True)
    lazy, seen = app.listener_runner.lazy_listener_runner, []
    dispatch = app.dispatch
    app.dispatch = lambda req: (seen.append(("dispatch", lazy._pending)), dispatch(req))[1]

    class Client:  # what the handler sends the ack through
        logger = logging.getLogger("test.socket_mode")

        def send_socket_mode_response(self, response):
            seen.append(("ack", lazy._pending, response.envelope_id))

    payload = {**dict(parse_qsl(command_form("status"))), "is_enterprise_install": "false"}
    socket_mode_handler(app, slack.app_token).handle(
        Client(), SocketModeRequest(type="slash_commands", envelope_id="e-1", payload=payload))
    assert seen == [("dispatch", 1), ("ack", 1, "e-1")] and lazy._pending == 0
    for _ in range(200):  # and the lazy work then answered
        if slack.messages_in(CHANNEL_ID):
            break
        time.sleep(0.05)
    assert slack.messages_in(CHANNEL_ID)[0]["text"].startswith("Status of")
