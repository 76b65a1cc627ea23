"""The one router: what each command answers, against a real Postgres (Demo Co for the skills), a real sync
engine over the local fake CRM, and the real digest/conversation modules when they are installed."""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import uuid

import pytest

from bot.demo import demo
from bot.render.blocks import validate
from bot.reply import Reply
from bot.router import normalize, route
from connectors.file_import import batch as batches
from core.connections import save_connection
from core.quotas import set_rep_quota, upsert_quota_period
from core.sync import registry as connectors
from tests.fakes.paged_api import PagedApi, make_deals
from tests.fakes.paged_connector import PagedConnector


@pytest.fixture(scope="module")
def demo_ws(module_db, module_settings):
    data, _ = demo(argparse.Namespace(seed=7, scale=1, today=None), module_settings)
    return str(data["workspace"]["id"])


@pytest.fixture
def ask(db, settings, workspace):
    """Route text in a fresh workspace of its own database."""
    def run(text: str, **kwargs) -> Reply:
        return route(db, settings, workspace["id"], text, **kwargs)
    return run


@pytest.fixture
def fakecrm():
    connectors.register(PagedConnector(page_size=4))
    yield
    connectors.unregister("fakecrm")


def _valid(reply: Reply) -> Reply:
    assert reply.text.strip()
    for page in [reply.blocks, *reply.more_blocks]:
        assert len(page) <= 50
        validate(page)
    json.dumps(reply.to_dict(), default=str)  # JSON-able for REST and --json
    return reply


def _blocks_text(reply: Reply) -> str:
    return json.dumps([reply.blocks, *reply.more_blocks], ensure_ascii=False)


def test_help_lists_every_command_with_an_example(ask):
    reply = _valid(ask("help"))
    assert reply.ok and reply.ephemeral
    for command in ("forecast", "status", "connect hubspot", "sync hubspot", "import", "context show", "quota show",
                    "digest set weekly mon 09:00 #revops", "hygiene", "risk", "quality", "scorecard", "icp"):
        assert command in reply.text, command
    assert {s["name"] for s in reply.data["skills"]} >= {"forecast-rollup", "pipeline-hygiene", "deal-risk-review"}
    assert "/pandora forecast" in _blocks_text(ask("/pandora help", source="slack"))
    commands = {s["name"]: s["command"] for s in reply.data["skills"]}
    # `digest` is the digest scheduler's command, `pipeline` the coverage skill's short name
    assert commands["weekly-digest"] == "weekly-digest" and commands["pipeline-coverage"] == "pipeline"


def test_empty_text_and_slash_prefix_and_mentions_are_help(ask):
    assert ask("").data == ask("/pandora").data == ask("<@U0BOT> help").data == ask("help").data


def test_normalize_strips_the_command_a_mention_and_smart_quotes():
    assert normalize("/pandora forecast  ") == "forecast"
    assert normalize("<@U123ABC|pandora> risk limit=3") == "risk limit=3"
    assert normalize("pandora say “hi”") == 'say "hi"'


def test_unknown_command_gets_help_and_is_not_ok(ask):
    reply = _valid(ask("frobnicate"))
    assert not reply.ok and "I don't know the command 'frobnicate'" in reply.text
    assert "forecast" in reply.text


def test_unbalanced_quotes_never_raise(ask):
    assert isinstance(ask('status "oops'), Reply)


@pytest.mark.parametrize("text, skill", [
    ("forecast", "forecast-rollup"), ("/pandora pipeline", "pipeline-coverage"), ("hygiene", "pipeline-hygiene"),
    ("risk", "deal-risk-review"), ("quality", "data-quality-audit"), ("scorecard", "rep-scorecard"),
    ("icp", "icp-profile"), ("deal_risk_review", "deal-risk-review"),
])
def test_skills_answer_by_name_or_alias(module_db, module_settings, demo_ws, text, skill):
    reply = _valid(route(module_db, module_settings, demo_ws, text, source="slack"))
    assert reply.ok and reply.data["skill"] == skill and reply.data["run_id"]
    assert reply.blocks[0]["type"] == "header" and reply.data["headline"] in reply.text
    with module_db.connection() as conn:
        run = conn.execute("SELECT skill, trigger, status FROM skill_runs WHERE workspace_id = %(w)s AND id = %(id)s",
                           {"w": demo_ws, "id": reply.data["run_id"]}).fetchone()
    assert dict(run) == {"skill": skill, "trigger": "slack", "status": "succeeded"}


def test_skill_parameters_are_passed_as_name_value_pairs(module_db, module_settings, demo_ws):
    lines = []
    reply = route(module_db, module_settings, demo_ws, "risk limit=3", progress=lines.append)
    assert reply.ok and reply.data["data"]["limit"] == 3 and len(reply.data["data"]["deals"]) == 3
    assert lines == ["Running deal-risk-review…"]


def test_an_unknown_parameter_is_not_ok_and_names_it(module_db, module_settings, demo_ws):
    reply = _valid(route(module_db, module_settings, demo_ws, "forecast period=2026-Q3"))
    assert not reply.ok and "period" in reply.text and reply.data["error"]["field"] == "period"
    assert reply.data["error"]["code"] == "input_error"


def test_a_parameter_of_the_wrong_kind_is_not_ok_and_names_it(module_db, module_settings, demo_ws):
    reply = route(module_db, module_settings, demo_ws, "risk limit=lots")
    assert not reply.ok and "limit must be a whole number" in reply.text


def test_status_shows_connections_counts_pipeline_and_pending_imports(db, settings, workspace, vault, tmp_path, ask):
    wid = str(workspace["id"])
    with db.connection() as conn:
        save_connection(conn, vault, wid, "hubspot", {"token": "t"})
        conn.execute("UPDATE connections SET last_sync_status = 'failed', last_error = 'token expired',"
                     " last_sync_at = now() WHERE workspace_id = %(w)s", {"w": wid})
    csv = tmp_path / "deals.csv"
    csv.write_text("Deal Name,Amount,Stage,Close Date\nAcme,1000,Proposal,2026-03-01\nGlobex,2000,Won,2026-02-01\n")
    batch = batches.preview(db, settings, wid, str(csv), entity="deals")
    reply = _valid(ask("status"))
    assert reply.ok
    assert "hubspot" in reply.text and "failed" in reply.text and "token expired" in reply.text
    assert reply.data["counts"]["deals"] == 0 and reply.data["pipeline_ran_at"] is None
    assert [b["id"] for b in reply.data["pending_imports"]] == [str(batch["batch_id"])]
    assert "deals.csv" in reply.text and "Pending imports: 1" in reply.text


def test_status_counts_rows_per_entity(module_db, module_settings, demo_ws):
    reply = route(module_db, module_settings, demo_ws, "status")
    assert reply.data["counts"]["deals"] == 400 and reply.data["counts"]["accounts"] > 0
    assert reply.data["pipeline_ran_at"] is not None and "never" not in reply.text.split("Records:")[0].split("ran:")[1]


def test_status_of_a_missing_workspace_is_not_ok(db, settings):
    reply = route(db, settings, uuid.uuid4(), "status")
    assert not reply.ok and "no longer exists" in reply.text


def test_a_bug_becomes_a_one_line_error_not_a_traceback(settings, workspace):
    reply = _valid(route(None, settings, workspace["id"], "status"))  # no database handle: AttributeError inside
    assert not reply.ok and "Something went wrong on our side (AttributeError)" in reply.text
    assert reply.data["error"]["code"] == "internal_error" and "Traceback" not in reply.text


def test_without_a_workspace_only_help_answers(db, settings):
    assert route(db, settings, None, "help").ok
    reply = route(db, settings, None, "forecast", source="slack")
    assert not reply.ok and "No Pandora workspace is linked here yet" in reply.text


def test_import_explains_drag_and_drop_and_the_cli(ask):
    reply = _valid(ask("import"))
    assert reply.ok and "CSV or Excel" in reply.text and "pandora import FILE --workspace W" in reply.text


def test_connect_asks_for_the_connect_modal_and_says_the_cli_equivalent(ask, fakecrm):
    reply = _valid(ask("connect fakecrm"))
    assert reply.ok and reply.modal == "connect:fakecrm"
    assert "pandora connect fakecrm --workspace W --set token=…" in reply.text


def test_connect_an_unknown_source_lists_the_registered_connectors(ask, fakecrm):
    reply = _valid(ask("connect nosuchcrm"))
    assert not reply.ok and reply.modal is None and "fakecrm" in reply.text and "nosuchcrm" in reply.text
    missing = ask("connect")
    assert not missing.ok and "which source" in missing.text and "fakecrm" in missing.text


def test_connect_reps_needs_a_source_with_a_user_directory(ask, fakecrm):
    reply = ask("connect fakecrm reps")
    assert not reply.ok and "no user directory" in reply.text


def test_sync_reports_progress_as_pages_land_and_the_counts(db, settings, workspace, vault, ask, fakecrm):
    with PagedApi(make_deals(9), require_token="t0k", block_on_page=2) as api:
        with db.connection() as conn:
            save_connection(conn, vault, workspace["id"], "fakecrm", {"token": "t0k"}, metadata={"base_url": api.url})
        lines: list[str] = []

        def progress(line: str) -> None:
            lines.append(line)
            if "4 deals" in line:
                api.release.set()  # page 1 is committed and reported: let page 2 through

        reply = _valid(ask("sync fakecrm", source="slack", progress=progress))
    assert reply.ok, reply.text
    assert lines[0] == "Syncing Fake CRM…" and lines[1] == "Syncing Fake CRM… 4 deals"
    assert lines[-1] == "Syncing Fake CRM… 9 deals"
    assert reply.data["counts"]["deals"]["inserted"] == 9 and reply.data["status"] == "succeeded"
    assert "9 new" in reply.text
    with db.connection() as conn:
        n = conn.execute("SELECT count(*) AS n FROM deals WHERE workspace_id = %(w)s", {"w": workspace["id"]}).fetchone()["n"]
        trigger = conn.execute("SELECT trigger FROM sync_log WHERE workspace_id = %(w)s", {"w": workspace["id"]}).fetchone()
    assert n == 9 and trigger["trigger"] == "slack"


def test_a_failed_sync_is_not_ok_and_says_how_to_fix_it(db, settings, workspace, vault, ask, fakecrm):
    with PagedApi(make_deals(3), require_token="rotated") as api:
        with db.connection() as conn:
            save_connection(conn, vault, workspace["id"], "fakecrm", {"token": "old"}, metadata={"base_url": api.url})
        reply = _valid(ask("sync fakecrm"))
    assert not reply.ok and reply.data["error"]["code"] == "auth_error"
    assert "Fake CRM sync failed" in reply.text and "connect fakecrm" in reply.text


def test_sync_of_a_source_that_is_not_connected_is_not_ok(ask, fakecrm):
    reply = ask("sync fakecrm")
    assert not reply.ok and "not connected" in reply.text


def test_context_opens_the_editor_or_shows_the_five_sections(ask):
    modal = _valid(ask("context"))
    assert modal.ok and modal.modal == "context" and "pandora context set" in modal.text
    shown = _valid(ask("context show"))
    assert shown.modal is None
    assert set(shown.data) == {"business_model", "team_structure", "goals_and_targets", "definitions",
                               "operational_maturity"}
    assert "sales_cycle_days" in shown.text and "Operational maturity" in shown.text
    one = ask("context show definitions")
    assert set(one.data) == {"definitions"}
    bad = ask("context show nonsense")
    assert not bad.ok and "nonsense" in bad.text


def test_quota_opens_the_editor_or_shows_this_periods_quotas(db, workspace, ask):
    modal = ask("quota")
    assert modal.modal == "quota" and "pandora quota set" in modal.text
    none = ask("quota show")
    assert none.ok and "No quota is set" in none.text
    from datetime import date

    from core.quotas import fiscal_quarter

    period = fiscal_quarter(date.today())
    with db.connection() as conn:
        pid = upsert_quota_period(conn, workspace["id"], period.name, "quarter", period.start_date, period.end_date, 500000)
        set_rep_quota(conn, workspace["id"], pid, "Dana Reyes", "dana@acme.io", 150000)
    shown = _valid(ask("quota show"))
    assert shown.ok and period.name in shown.text and "$500.0k" in shown.text and "Dana Reyes" in shown.text
    assert shown.data["active"]["source"] == "quota_period"


def test_digest_without_the_digest_module_gets_help(ask, monkeypatch):
    monkeypatch.setitem(sys.modules, "bot.digests", None)  # as if bot/digests.py were not installed
    reply = ask("digest list")
    assert not reply.data.get("error") and "Scheduled digests are not available" in reply.text
    assert "forecast" in reply.text


def test_free_text_without_the_conversation_module_gets_help(ask, monkeypatch):
    monkeypatch.setitem(sys.modules, "bot.conversation", None)
    reply = ask("which deals over 50k slipped this month?")
    assert not reply.ok and "plain language" in reply.text
    words = ask("forecast for next quarter")
    assert not words.ok and "forecast-rollup takes NAME=VALUE parameters" in words.text


@pytest.mark.skipif(importlib.util.find_spec("bot.digests") is None, reason="bot.digests not installed yet")
def test_digest_is_delegated_to_the_digest_module(ask):
    reply = _valid(ask("digest list", channel_id="C123"))
    assert isinstance(reply, Reply) and "Pandora commands" not in reply.text


@pytest.mark.skipif(importlib.util.find_spec("bot.conversation") is None, reason="bot.conversation not installed yet")
def test_free_text_is_delegated_to_the_conversation_module(module_db, module_settings, demo_ws):
    reply = _valid(route(module_db, module_settings, demo_ws, "which deals over 50k slipped this month?"))
    assert isinstance(reply, Reply) and "Pandora commands" not in reply.text
