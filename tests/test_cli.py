from __future__ import annotations

import json

import pytest

from bot.cli import main
from core.sync import registry
from tests.fakes.paged_api import PagedApi, make_deals
from tests.fakes.paged_connector import PagedConnector


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PANDORA_SECRET_KEY", "cli-test-key")
    monkeypatch.setenv("PANDORA_HOME", str(tmp_path))

    def run(*argv: str) -> tuple[int, dict]:
        code = main(list(argv))
        out = capsys.readouterr().out
        return code, json.loads(out) if "--json" in argv else out

    return run


def test_workspace_create_prints_one_json_document(cli):
    code, data = cli("workspace", "create", "Acme Corp", "--json")
    assert code == 0 and data["name"] == "Acme Corp" and data["slug"] == "acme-corp"
    code, listed = cli("workspace", "list", "--json")
    assert [w["name"] for w in listed["workspaces"]] == ["Acme Corp"]


def test_errors_are_json_with_code_and_message_and_nonzero_exit(cli):
    cli("workspace", "create", "Acme", "--json")
    code, data = cli("workspace", "create", "acme", "--json")
    assert code == 1 and data["error"]["code"] == "input_error" and "already exists" in data["error"]["message"]


def test_unknown_workspace_is_not_found(cli):
    code, data = cli("sync", "hubspot", "--workspace", "nope", "--json")
    assert code == 1 and data["error"]["code"] in {"not_found"}


def test_json_flag_may_come_before_the_command(cli):
    code, data = cli("--json", "db", "url")
    assert code == 0 and data["url"].startswith("postgresql")


def test_unreachable_database_is_one_json_error(cli, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:topsecret@127.0.0.1:1/x")
    code, data = cli("workspace", "list", "--json")
    assert code == 1 and data["error"]["code"] == "database_error"
    assert "127.0.0.1:1" in data["error"]["message"] and "topsecret" not in json.dumps(data)


def test_connect_then_sync_through_the_cli(cli):
    registry.register(PagedConnector(page_size=4))
    try:
        with PagedApi(make_deals(9), require_token="t0k") as api:
            cli("workspace", "create", "Acme", "--json")
            code, bad = cli("connect", "fakecrm", "--workspace", "Acme", "--set", "token=wrong", "--meta", f"base_url={api.url}", "--json")
            assert code == 1 and bad["error"]["code"] == "auth_error" and "wrong" not in json.dumps(bad)
            code, ok = cli("connect", "fakecrm", "--workspace", "Acme", "--set", "token=t0k", "--meta", f"base_url={api.url}", "--json")
            assert code == 0 and ok["status"] == "active"
            code, report = cli("sync", "fakecrm", "--workspace", "acme", "--json")
            assert code == 0 and report["status"] == "succeeded"
            assert report["counts"]["deals"]["inserted"] == 9 and report["pages"] == 3
            api.require_token = "rotated"
            code, failed = cli("sync", "fakecrm", "--workspace", "acme", "--json")
            assert code == 1 and failed["error"]["code"] == "auth_error"
    finally:
        registry.unregister("fakecrm")


def test_relink_runs_the_pipeline_and_prints_what_each_step_changed(cli, db_url):
    """`pandora relink` runs every step over the workspace, the connectors' included, and prints each one's
    changes; a second run changes nothing and says so for every step."""
    from core.context import update_section
    from core.db.database import Database
    from core.db.upsert import upsert_rows

    cli("workspace", "create", "Acme", "--json")
    code, listed = cli("workspace", "list", "--json")
    ws = listed["workspaces"][0]["id"]
    db = Database(db_url, min_size=1, max_size=1)
    try:
        with db.connection() as conn:
            update_section(conn, ws, "definitions", {"internal_domains": ["acme.io"]})
            upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Globex"}])
            upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": "c1", "email": "amy@globex.com",
                                                "account_source_id": "a1"}])
            upsert_rows(conn, "conversations", ws, [
                {"source": "gong", "source_id": "k1", "title": "Globex <> Acme", "started_at": "2026-05-01T16:00:00Z",
                 "participants": [{"email": "rep@acme.io"}, {"email": "AMY@globex.com"}]},
                {"source": "gong", "source_id": "k2", "title": "Weekly standup", "started_at": "2026-05-01T17:00:00Z",
                 "participants": [{"email": "rep@acme.io"}, {"email": "cto@acme.io"}]}])
    finally:
        db.close()

    code, text = cli("relink", "--workspace", "Acme")
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert code == 0 and {"resolve_references", "stage_normalization", "linker", "computed_accounts"} <= set(lines)
    # the connectors' own steps run too (the CLI loads every connector, as a sync or the Slack app does)
    assert {"salesforce_merges", "monday_task_deals", "google_drive_links"} <= set(lines)
    assert "conversations.email_match 1" in lines["linker"]
    assert "conversations.internal 1; conversations.external 1" in lines["internal_filter"]
    assert len({line.index(" ms") for line in lines.values()}) == 1  # one column for the timings

    code, again = cli("relink", "--workspace", "Acme", "--json")
    assert code == 0 and again["workspace_id"] == ws
    assert [s["name"] for s in again["steps"]] == list(lines) and not any(s["changed"] for s in again["steps"])
    code, text = cli("relink", "--workspace", "Acme")
    assert all(line.endswith("no changes") for line in text.splitlines())
