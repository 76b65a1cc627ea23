"""data-quality-audit against hand counts from the definitions in skills/data_quality_audit.py.

The CWD step runs on its own (a pinned as_of), so no other pipeline step can re-link the hand-made rows.
Today is pinned to 2 March 2026."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import partial

import pytest

from core.context import get_context
from core.pipeline import PipelineRun
from core.pipeline.cwd import flag_conversations_without_deals
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="crm")
new_workspace = support.new_workspace

TODAY = date(2026, 3, 2)
AS_OF = datetime.combine(TODAY, time(12), tzinfo=timezone.utc)


def at(days_ago: int) -> datetime:
    return AS_OF - timedelta(days=days_ago)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def ids(db, ws, table) -> dict[str, str]:
    with db.connection() as conn:
        return {r["source_id"]: str(r["id"]) for r in conn.execute(
            f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws["id"],))}


@pytest.fixture(scope="module")
def acme(module_db):
    ws = new_workspace(module_db, "Acme")
    write(module_db, ws, "accounts", [
        {"source_id": "a1", "name": "Acme, Inc.", "domain": "acme.com"},
        {"source_id": "a2", "name": "ACME", "domain": "www.acme.com"},          # a1's twin by name and by domain
        {"source_id": "a3", "name": "Globex", "domain": "globex.io"},
        {"source_id": "a4", "name": "Globex Corporation"},                     # a3's twin by name
        {"source_id": "a5", "name": "Initech", "domain": "https://Initrode.com/"},
        {"source_id": "a6", "name": "Initrode LLC", "domain": "initrode.com"},  # a5's twin by domain
        {"source_id": "a7", "domain": " "},                                    # no name, blank domain
        {"source_id": "a8", "name": "Acme", "domain": "acme.com", "deleted_at": at(1)},
    ])
    a = ids(module_db, ws, "accounts")
    write(module_db, ws, "contacts", [
        {"source_id": "c1", "email": "Jane@Acme.com", "first_name": "Jane", "last_name": "Doe", "account_id": a["a1"]},
        {"source_id": "c2", "email": "jane@acme.com ", "first_name": "Jane"},                  # c1 again
        {"source_id": "c3", "email": "bob@globex.io", "first_name": "Bob", "last_name": "Roe", "account_id": a["a3"]},
        {"source_id": "c4", "first_name": "", "last_name": "Smith", "account_id": a["a3"]},
        {"source_id": "c5", "email": "bob@globex.io", "first_name": "Bob", "deleted_at": at(1)},
    ])

    def deal(source_id, stage, amount, close, owner, account, **more):
        return {"source_id": source_id, "name": source_id, "stage": stage, "stage_normalized": stage, "amount": amount,
                "close_date": day(close) if close is not None else None, "owner": owner,
                "account_id": a[account] if account else None, **more}

    write(module_db, ws, "deals", [
        deal("d1", "evaluation", 10000, -1, "Ann", "a1"),                                  # overdue
        deal("d2", "qualification", 0, 0, None, None, owner_email="bo@democo.io", account_name="Globex"),
        deal("d3", None, None, None, "  ", None),                                           # nothing filled
        deal("d4", "closed_won", 0, -100, "Ann", "a1"),                                     # $0 but closed
        deal("d5", "closed_lost", 5000, -5, None, "a3"),
        {**deal("d6", None, 20000, -10, "Bob", "a3"), "stage": "Custom Stage"},            # raw stage only; overdue
        deal("d7", "evaluation", 30000, -20, "Ann", "a1", deleted_at=at(1)),
    ])
    d = ids(module_db, ws, "deals")
    write(module_db, ws, "activities", [
        {"source_id": "x1", "activity_type": "email", "occurred_at": at(3), "deal_id": d["d1"], "account_id": a["a1"]},
        {"source_id": "x2", "activity_type": "email", "occurred_at": at(3), "account_id": a["a1"]},
        {"source_id": "x3", "activity_type": "note", "occurred_at": at(3)},
        {"source_id": "x4", "activity_type": "call", "occurred_at": at(3), "deal_id": d["d2"]},
        {"source_id": "x5", "activity_type": "call", "occurred_at": at(3), "deal_id": d["d1"], "deleted_at": at(1)},
    ])
    people = [{"email": "rep@democo.io", "affiliation": "internal"}, {"email": "bob@globex.io", "affiliation": "external"}]
    write(module_db, ws, "conversations", [
        {"source_id": "v1", "title": "Pricing", "started_at": at(5), "is_internal": False, "deal_id": d["d1"],
         "account_id": a["a1"]},
        {"source_id": "v2", "title": "Globex <> Demo Co — Discovery", "started_at": at(10), "duration_seconds": 900,
         "participants": people, "account_id": a["a3"]},                       # not classified yet: counts external
        {"source_id": "v3", "title": "Weekly pipeline review", "started_at": at(2), "is_internal": True},
        {"source_id": "v4", "title": "Intro", "started_at": at(4), "is_internal": False},
        {"source_id": "v5", "title": "Old", "started_at": at(4), "deal_id": d["d1"], "deleted_at": at(1)},
    ])
    with module_db.connection() as conn:
        flag_conversations_without_deals(conn, PipelineRun(str(ws["id"]), None, get_context(conn, ws["id"]), AS_OF))
    return ws, a, d, ids(module_db, ws, "contacts"), ids(module_db, ws, "conversations")


@pytest.fixture(scope="module")
def result(module_db, module_settings, acme):
    return run_skill(module_db, module_settings, acme[0]["id"], "quality", today=TODAY)


def m(result, key):
    return result.metric(key).value


def test_completeness_per_field_counts_filled_rows_of_every_deal(result):
    deals = result.data["completeness"]["deals"]
    assert deals["rows"] == 6                                          # d1-d6: open and closed, not deleted
    assert {f: v["filled"] for f, v in deals["fields"].items()} == {
        "amount": 5,        # d3 has none; $0 is a value (d2, d4)
        "stage": 5,         # d6 has only a raw stage
        "close_date": 5,
        "owner": 4,         # d3 blank, d5 none; d2 has an owner email
        "account": 4,       # d2 names an account but is not linked
    }
    assert deals["fields"]["owner"]["pct"] == Decimal("66.7")
    assert deals["score"] == Decimal("76.7")                          # 23 / 30


def test_completeness_of_contacts_and_accounts(result):
    contacts, accounts = result.data["completeness"]["contacts"], result.data["completeness"]["accounts"]
    assert contacts["rows"] == 4 and {f: v["filled"] for f, v in contacts["fields"].items()} == {
        "email": 3, "first_name": 3, "last_name": 3, "account": 3}
    assert contacts["score"] == Decimal("75.0")
    assert accounts["rows"] == 7 and {f: v["filled"] for f, v in accounts["fields"].items()} == {"name": 6, "domain": 5}
    assert accounts["score"] == Decimal("78.6")                       # (6/7 + 5/7) / 2


def test_overall_is_the_mean_of_the_entity_scores(result):
    assert m(result, "overall_completeness") == Decimal("76.7")       # (23/30 + 3/4 + 11/14) / 3 = 76.75 % → 76.7
    assert (m(result, "deals_completeness"), m(result, "contacts_completeness"), m(result, "accounts_completeness")) == (
        Decimal("76.7"), Decimal("75.0"), Decimal("78.6"))


def test_overdue_and_zero_amount_count_open_deals_only(result, acme):
    _, _, d, _, _ = acme
    assert (m(result, "overdue_deals"), m(result, "overdue_amount")) == (2, Decimal(30000))
    assert result.data["overdue"]["ids"] == [d["d6"], d["d1"]]       # d2 is due today; d5, d7 closed / deleted
    assert (m(result, "zero_amount_deals"), result.data["zero_amount"]["ids"]) == (1, [d["d2"]])  # not closed d4


def test_duplicate_accounts_by_normalized_name_or_domain(result, acme):
    _, a, _, _, _ = acme
    groups = {(g["kind"], g["key"]): sorted(g["ids"]) for g in result.data["duplicate_accounts"]["top"]}
    assert groups == {("name+domain", "acme"): sorted([a["a1"], a["a2"]]),   # found both ways, listed once
                      ("name", "globex"): sorted([a["a3"], a["a4"]]),
                      ("domain", "initrode.com"): sorted([a["a5"], a["a6"]])}
    assert (m(result, "duplicate_account_groups"), m(result, "duplicate_accounts")) == (3, 6)


def test_duplicate_contacts_by_email_ignoring_case_spaces_and_deleted_rows(result, acme):
    _, _, _, c, _ = acme
    [group] = result.data["duplicate_contacts"]["top"]
    assert (group["key"], sorted(group["ids"])) == ("jane@acme.com", sorted([c["c1"], c["c2"]]))
    assert (m(result, "duplicate_contact_groups"), m(result, "duplicate_contacts")) == (1, 2)


def test_linkage_percentages(result):
    # activities x1-x4: deal x1 x4, account x1 x2; exactly 50 % to a deal is not flagged
    assert (m(result, "activities_deal_linked"), m(result, "activities_account_linked")) == (Decimal("50.0"), Decimal("50.0"))
    assert result.data["linkage_flag"] is False
    # conversations v1 v2 v4 (v3 internal, v5 deleted): deal v1; account v1 v2
    assert (m(result, "conversations_deal_linked"), m(result, "conversations_account_linked")) == (
        Decimal("33.3"), Decimal("66.7"))


def test_cwd_summary_comes_from_the_cwd_query(result, acme):
    _, _, _, _, v = acme
    # v2: external, at Globex (a3), no deal, 10 days old; a3 has the open deal d6 -> medium, deal not linked
    assert result.data["cwd"]["total"] == 1 and m(result, "cwd_conversations") == 1
    assert (result.data["cwd"]["medium"], result.data["cwd"]["high"], result.data["cwd"]["accounts"]) == (1, 0, 1)
    [item] = result.data["cwd"]["top"]
    assert (item["id"], item["severity"], item["cause"]) == (v["v2"], "medium", "deal_not_linked")


def test_open_deals_missing_critical_fields(result, acme):
    _, _, d, _, _ = acme
    assert result.data["gaps"]["deals"] == 2
    assert [(g["id"], g["missing"]) for g in result.data["gaps"]["top"]] == [
        (d["d2"], ["account"]), (d["d3"], ["amount", "stage", "close_date", "owner", "account"])]


def test_headline_and_template_without_a_key(result):
    assert result.headline == ("Data quality: 76.7% of critical fields filled, 3 duplicate account groups, "
                               "1 duplicate contact emails, 50% of activities linked to a deal")
    assert result.ai_written is False
    assert result.sections[0].text.endswith("_Written from a template: no ANTHROPIC_API_KEY set._")


def test_a_low_linkage_is_flagged_and_an_empty_entity_is_left_out(module_db, module_settings):
    ws = new_workspace(module_db, "Sparse")
    write(module_db, ws, "contacts", [{"source_id": "c", "email": "a@b.io", "first_name": "A", "last_name": "B"}])
    write(module_db, ws, "activities", [{"source_id": f"x{i}", "occurred_at": at(1)} for i in range(3)])
    r = run_skill(module_db, module_settings, ws["id"], "quality", today=TODAY)
    assert m(r, "overall_completeness") == Decimal("75.0")           # contacts only: no account link
    assert m(r, "deals_completeness") is None and r.data["empty_entities"] == ["deals", "accounts"]
    assert r.data["linkage_flag"] is True and m(r, "activities_deal_linked") == Decimal("0.0")
    assert "No deals, accounts at all: left out of the overall completeness." in r.notes
