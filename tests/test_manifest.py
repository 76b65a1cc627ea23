"""manifest.yml matches the code: the slash command, events, scopes, interactivity, and every action / callback
id the code puts into messages and modals has a listener (and every listener an id in use)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from slack_bolt import BoltRequest, BoltResponse

from bot.slack import registry
from bot.slack.app import REDIRECT_PATH, build_app
from core.settings import REPO_ROOT, Settings

MANIFEST = REPO_ROOT / "manifest.yml"
EVENTS_URL = "/slack/events"


# --- a YAML reader for the subset a Slack manifest uses (no PyYAML in the project): block mappings, block
# sequences of scalars or mappings, quoted or plain scalars, booleans, integers, comments.
def _scalar(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _lines(source: str) -> list[tuple[int, str]]:
    out = []
    for raw in source.splitlines():
        line = re.sub(r"(^|\s)#(?=[^\"']*$).*$", "", raw).rstrip()  # a comment: '#' outside quotes
        if line.strip():
            out.append((len(line) - len(line.lstrip()), line.strip()))
    return out


def _block(lines, i: int, indent: int):
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            item = lines[i][1][2:].strip()
            if re.match(r"^[\w.-]+:(\s|$)", item):  # a mapping item: re-read it as a mapping at indent + 2
                lines[i] = (indent + 2, item)
                value, i = _block(lines, i, indent + 2)
                items.append(value)
            else:
                items.append(_scalar(item))
                i += 1
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, _, rest = lines[i][1].partition(":")
        i += 1
        if rest.strip():
            mapping[key.strip()] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or lines[i][1].startswith("- ")):
            mapping[key.strip()], i = _block(lines, i, lines[i][0])
        else:
            mapping[key.strip()] = None
    return mapping, i


def load_manifest(path: Path = MANIFEST) -> dict:
    lines = _lines(path.read_text())
    value, end = _block(lines, 0, 0)
    assert end == len(lines), f"manifest.yml line {end}: unexpected indentation"
    return value


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_manifest()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = Settings(secret_key="k", slack_bot_token="xoxb-x", slack_signing_secret="s",
                        pandora_home=tmp_path_factory.mktemp("home"))
    return build_app(None, settings)  # listeners only close over the database: matching needs none


def _handled(app, body: dict) -> bool:
    req = BoltRequest(body=body, mode="socket_mode")
    return any(listener.matches(req=req, resp=BoltResponse(status=200)) for listener in app._listeners)


def test_the_yaml_reader_reads_what_it_is_given(tmp_path):
    f = tmp_path / "m.yml"
    f.write_text('a:\n  b: "x: y"  # c\n  l:\n    - one\n    - k: 1\n      v: true\n  e:\n')
    assert load_manifest(f) == {"a": {"b": "x: y", "l": ["one", {"k": 1, "v": True}], "e": None}}


def test_slash_commands_match_the_registry_and_post_to_the_events_url(manifest, app):
    commands = manifest["features"]["slash_commands"]
    assert {c["command"] for c in commands} == set(registry.COMMANDS)
    for c in commands:
        assert c["url"].endswith(EVENTS_URL) and c["description"] and c["usage_hint"]
        assert _handled(app, {"command": c["command"], "text": "help", "team_id": "T1"})
    assert not _handled(app, {"command": "/unknown", "text": "", "team_id": "T1"})


def test_events_match_the_registry_and_each_has_a_listener(manifest, app):
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == sorted(registry.EVENTS)
    assert manifest["settings"]["event_subscriptions"]["request_url"].endswith(EVENTS_URL)
    for name in events:
        event = {"type": "message", "channel_type": "im", "text": "hi"} if name == "message.im" else {"type": name}
        assert _handled(app, {"type": "event_callback", "team_id": "T1", "event": event}), name
    assert not _handled(app, {"type": "event_callback", "team_id": "T1", "event": {"type": "reaction_added"}})


def test_bot_scopes_are_exactly_the_requested_ones(manifest):
    assert manifest["oauth_config"]["scopes"]["bot"] == list(registry.BOT_SCOPES)


def _called_methods() -> set[str]:
    """Web API methods called anywhere in bot/ (client.<method>(…)), as Slack names them."""
    methods = set()
    for path in (REPO_ROOT / "bot").rglob("*.py"):
        for name in re.findall(r"\bclient\.([a-z0-9]+(?:_[A-Za-z0-9]+)+)\(", path.read_text()):
            if name == "files_upload_v2":
                methods |= {"files.getUploadURLExternal", "files.completeUploadExternal"}
            else:
                methods.add(name.replace("_", "."))
    return methods


def test_every_web_api_method_we_call_has_its_scope_granted(manifest):
    called = _called_methods()
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish", "files.info"} <= called
    unknown = called - set(registry.METHOD_SCOPES)
    assert not unknown, f"add these methods and their scopes to bot/slack/registry.METHOD_SCOPES: {unknown}"
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {registry.METHOD_SCOPES[m] for m in called} - {None}
    assert needed <= granted
    # events need their scopes too
    assert {"app_mentions:read", "im:history", "files:read", "commands"} <= granted


def test_interactivity_oauth_and_socket_mode_settings(manifest):
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["interactivity"]["request_url"].endswith(EVENTS_URL)
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert [u for u in manifest["oauth_config"]["redirect_urls"] if u.endswith(REDIRECT_PATH)]
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] and home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
    assert manifest["features"]["bot_user"]["display_name"]


def _ids_in_code(pattern: str) -> set[str]:
    found = set()
    for path in (REPO_ROOT / "bot").rglob("*.py"):
        found |= set(re.findall(pattern, path.read_text()))
    return found


def _action_ids_put_in_messages() -> set[str]:
    from bot import import_flow, modals
    from bot.slack.listeners.common import OPEN_MODAL_ACTION

    ids = set(import_flow.ACTION_IDS) | set(modals.ACTION_IDS) | {OPEN_MODAL_ACTION}
    # literal ids handed to the one button helper anywhere in bot/
    ids |= _ids_in_code(r"\bbutton\([^()]*?,\s*[\"']([a-z][a-z0-9_:.-]*)[\"']\s*,")
    return ids


def test_every_button_in_our_messages_has_a_listener_and_every_listener_a_button(app):
    from bot.slack.listeners.actions import ACTION_IDS

    in_messages = _action_ids_put_in_messages()
    assert {"import_confirm", "import_rollback"} <= in_messages
    for action_id in in_messages:
        assert _handled(app, {"type": "block_actions", "team": {"id": "T1"},
                              "actions": [{"action_id": action_id, "block_id": "b"}]}), action_id
    assert set(ACTION_IDS) == in_messages
    assert not _handled(app, {"type": "block_actions", "team": {"id": "T1"},
                              "actions": [{"action_id": "nobody_handles_this", "block_id": "b"}]})


def test_every_modal_callback_id_has_a_submission_listener_and_back(app):
    from bot import modals
    from bot.slack.listeners.views import callback_ids

    in_views = set(modals.CALLBACK_IDS) | _ids_in_code(r"callback_id\"?\s*[:=]\s*[\"']([a-z][a-z0-9_]*)[\"']")
    assert {"connect_submit", "context_submit", "quota_submit"} <= in_views
    for callback_id in in_views:
        assert _handled(app, {"type": "view_submission", "team": {"id": "T1"},
                              "view": {"type": "modal", "callback_id": callback_id}}), callback_id
    assert set(callback_ids()) == in_views
