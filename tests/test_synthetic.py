"""The Demo Co generator: deterministic, scalable, internally consistent, and idempotent through the upsert path."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone

import pytest

from core.errors import InputError
from core.pipeline.references import REFERENCES
from core.quotas import fiscal_quarter, list_quotas, previous_quarter, set_rep_quota, upsert_quota_period
from core.synthetic import COMPANY_DOMAIN, ENTITY_ORDER, PER_SCALE, generate, write_dataset
from core.synthetic.vocab import OPEN_STAGES, STAGES

TODAY = date(2026, 5, 14)
NOW = datetime.combine(TODAY, time(12), tzinfo=timezone.utc)
CLOSED = ("closed_won", "closed_lost")


@pytest.fixture(scope="module")
def ds():
    return generate(seed=7, scale=1, today=TODAY)


def by_sid(rows):
    return {r["source_id"]: r for r in rows}


def last_activity(ds):
    last = {}
    for a in ds["activities"]:
        if a["deal_source_id"]:
            last[a["deal_source_id"]] = max(last.get(a["deal_source_id"], a["occurred_at"]), a["occurred_at"])
    return last


# --- determinism and size -------------------------------------------------------------------------------

def test_same_seed_scale_and_day_give_an_identical_dataset(ds):
    assert generate(seed=7, scale=1, today=TODAY) == ds


def test_a_different_seed_gives_a_different_company(ds):
    other = generate(seed=8, scale=1, today=TODAY)
    assert [a["name"] for a in other["accounts"]] != [a["name"] for a in ds["accounts"]]
    assert [d["amount"] for d in other["deals"]] != [d["amount"] for d in ds["deals"]]


def test_scale_one_has_the_documented_sizes(ds):
    counts = ds.counts()
    assert len(ds.reps) == 8 and len({r.team for r in ds.reps}) == 2
    assert [p.role for p in ds.people].count("sales_manager") == 1
    for table, per in PER_SCALE.items():
        assert per * 0.9 <= counts[table] <= per * 1.1, table
    assert counts["deal_stage_history"] > counts["deals"]


def test_scale_multiplies_every_count(ds):
    double = generate(seed=7, scale=2, today=TODAY)
    assert len(double.reps) == 16
    for table in ENTITY_ORDER:
        assert 1.8 <= len(double[table]) / len(ds[table]) <= 2.2, table


def test_scale_ten_keeps_names_domains_and_source_ids_unique():
    big = generate(seed=7, scale=10, today=TODAY)
    accounts = big["accounts"]
    assert len({a["name"] for a in accounts}) == len({a["domain"] for a in accounts}) == len(accounts) == 1500
    for table in ENTITY_ORDER:
        assert len({r["source_id"] for r in big[table]}) == len(big[table]), table
    assert len({p.email for p in big.people}) == len(big.people)


@pytest.mark.parametrize("scale", [0, -1, 1.5, True])
def test_scale_must_be_a_positive_whole_number(scale):
    with pytest.raises(InputError):
        generate(scale=scale, today=TODAY)


def test_rows_of_a_table_share_one_set_of_columns_and_never_carry_post_sync_columns(ds):
    owned_by_post_sync = {"account_id", "deal_id", "contact_id", "is_internal", "link_method", "linked_at",
                          "internal_classification_reason", "days_in_stage", "deal_risk", "health_score"}
    for table in ENTITY_ORDER:
        keys = {frozenset(r) for r in ds[table]}
        assert len(keys) == 1, table
        assert not (set(next(iter(keys))) & owned_by_post_sync), table
        assert all(r["source"] == "demo" and r["source_id"] for r in ds[table])


# --- people, accounts, contacts -------------------------------------------------------------------------

def test_reps_are_at_the_company_domain_with_a_manager(ds):
    managers = {p.name for p in ds.people if p.role == "sales_manager"}
    assert all(p.email.endswith(f"@{COMPANY_DOMAIN}") for p in ds.people)
    assert all(r.manager in managers for r in ds.reps)


def test_accounts_have_unique_names_and_domains_and_a_rep_owner(ds):
    accounts = ds["accounts"]
    reps = {r.name for r in ds.reps}
    assert len({a["name"] for a in accounts}) == len({a["domain"] for a in accounts}) == len(accounts)
    assert all(a["owner"] in reps and a["industry"] and a["employee_count"] > 0 for a in accounts)


def test_every_contact_email_is_at_its_accounts_domain(ds):
    accounts = by_sid(ds["accounts"])
    with_email = [c for c in ds["contacts"] if c["email"]]
    assert len(with_email) > 0.95 * len(ds["contacts"])
    for c in with_email:
        assert c["email"].endswith("@" + accounts[c["account_source_id"]]["domain"])
    assert len({c["email"] for c in with_email}) == len(with_email)


def test_records_are_created_before_anything_refers_to_them(ds):
    accounts, contacts = by_sid(ds["accounts"]), by_sid(ds["contacts"])
    for d in ds["deals"]:
        assert accounts[d["account_source_id"]]["source_created_at"] < d["source_created_at"]
    for c in contacts.values():
        assert accounts[c["account_source_id"]]["source_created_at"] <= c["source_created_at"] <= NOW


# --- deals and stage history ----------------------------------------------------------------------------

def test_open_deals_are_in_open_stages_and_closed_deals_closed_in_the_past(ds):
    for d in ds["deals"]:
        if d["closed_at"] is None:
            assert d["stage_normalized"] in OPEN_STAGES
        else:
            assert d["stage_normalized"] in CLOSED
            assert d["close_date"] <= TODAY and d["closed_at"] <= NOW
            assert d["closed_at"].date() == d["close_date"]
    assert set(Counter(d["stage_normalized"] for d in ds["deals"])) == set(STAGES)


def test_raw_stage_probability_and_forecast_category_match_the_normalized_stage(ds):
    allowed = {"closed_won": {"closed"}, "closed_lost": {"not_forecasted"}}
    for d in ds["deals"]:
        label, _, probability = STAGES[d["stage_normalized"]]
        assert d["stage"] == label and d["probability"] == probability and 0 <= probability <= 100
        assert d["forecast_category"] in allowed.get(
            d["stage_normalized"], {"commit", "best_case", "pipeline", "not_forecasted"})


def test_amounts_center_on_mid_market_deal_sizes(ds):
    new_business = sorted(d["amount"] for d in ds["deals"] if d["amount"] and d["deal_type"] == "new_business")
    assert 40_000 <= new_business[len(new_business) // 2] <= 60_000


def test_deals_are_created_before_they_close_and_open_ones_mostly_close_soon(ds):
    quarter = fiscal_quarter(TODAY)
    horizon = fiscal_quarter(fiscal_quarter(quarter.end_date + timedelta(days=1)).end_date + timedelta(days=1)).end_date
    open_deals = [d for d in ds["deals"] if d["closed_at"] is None]
    for d in ds["deals"]:
        if d["close_date"]:
            assert d["source_created_at"].date() <= d["close_date"]
    soon = [d for d in open_deals if d["close_date"] and TODAY < d["close_date"] <= horizon]
    assert len(soon) > 0.8 * len(open_deals)


def test_stage_history_runs_from_creation_to_the_current_stage(ds):
    history = defaultdict(list)
    for h in ds["deal_stage_history"]:
        history[h["deal_source_id"]].append(h)
    for d in ds["deals"]:
        rows = sorted(history[d["source_id"]], key=lambda h: int(h["source_id"].rsplit(":", 1)[1]))
        assert rows[0]["entered_at"] == d["source_created_at"]
        assert rows[-1]["stage_normalized"] == d["stage_normalized"] and rows[-1]["exited_at"] is None
        assert rows[-1]["entered_at"] == d["stage_entered_at"]
        for before, after in zip(rows, rows[1:]):
            assert before["exited_at"] == after["entered_at"] > before["entered_at"]
        assert all(h["stage"] == STAGES[h["stage_normalized"]][0] for h in rows)


def test_a_few_deals_move_backwards_a_stage(ds):
    order = {s: i for i, s in enumerate(STAGES)}
    history = defaultdict(list)
    for h in ds["deal_stage_history"]:
        history[h["deal_source_id"]].append(order[h["stage_normalized"]])
    regressed = [sid for sid, steps in history.items() if any(b < a for a, b in zip(steps, steps[1:]))]
    assert 5 <= len(regressed) <= 0.15 * len(ds["deals"])


def test_the_pipeline_has_hygiene_and_data_quality_findings(ds):
    open_deals = [d for d in ds["deals"] if d["closed_at"] is None]
    last = last_activity(ds)
    stale = [d for d in open_deals if (NOW - last[d["source_id"]]).days >= 14]
    assert 0.1 * len(open_deals) <= len(stale) <= 0.4 * len(open_deals)
    assert any(d["close_date"] and d["close_date"] < TODAY for d in open_deals)     # past due
    assert any(d["close_date"] is None for d in open_deals)
    assert any(d["amount"] is None for d in open_deals)
    assert any(d["next_step"] for d in open_deals) and any(not d["next_step"] for d in open_deals)


# --- engagement -----------------------------------------------------------------------------------------

def test_deal_activities_happen_within_the_deals_life(ds):
    deals = by_sid(ds["deals"])
    for a in ds["activities"]:
        assert a["occurred_at"] <= NOW
        if a["deal_source_id"]:
            d = deals[a["deal_source_id"]]
            assert d["source_created_at"] <= a["occurred_at"] <= (d["closed_at"] or NOW)
            assert a["account_source_id"] == d["account_source_id"]
    assert set(Counter(a["activity_type"] for a in ds["activities"])) == {"email", "call", "meeting", "note"}


def test_internal_meetings_have_only_company_participants(ds):
    internal = [c for c in ds["conversations"] if "<>" not in c["title"]]
    assert 0.1 * len(ds["conversations"]) <= len(internal) <= 0.3 * len(ds["conversations"])
    for c in internal:
        assert all(p["email"].endswith(f"@{COMPANY_DOMAIN}") and p["affiliation"] == "internal" for p in c["participants"])
    titles = {c["title"] for c in internal}
    assert any(t.startswith("1:1 ") for t in titles) and any("pipeline review" in t for t in titles)


def test_external_meetings_include_customer_contacts_and_some_guests_without_email(ds):
    contacts = {c["email"] for c in ds["contacts"] if c["email"]}
    external = [c for c in ds["conversations"] if "<>" in c["title"]]
    for c in external:
        assert c["organizer_email"].endswith(f"@{COMPANY_DOMAIN}")
        assert any(p["affiliation"] == "external" and p["email"] in contacts for p in c["participants"])
    assert any(p["email"] is None for c in external for p in c["participants"])


def test_conversation_crm_hints_point_at_generated_records(ds):
    accounts, deals = by_sid(ds["accounts"]), by_sid(ds["deals"])
    hinted = [c["source_data"]["crm_context"] for c in ds["conversations"] if "crm_context" in c["source_data"]]
    assert hinted and any("deal_source_id" in h for h in hinted)
    for h in hinted:
        assert h["account_source_id"] in accounts
        if "deal_source_id" in h:
            assert deals[h["deal_source_id"]]["account_source_id"] == h["account_source_id"]


def test_some_open_tasks_are_overdue(ds):
    overdue = [t for t in ds["tasks"] if t["status"] in ("open", "in_progress") and t["due_date"] < TODAY]
    assert overdue
    assert all(t["completed_at"] for t in ds["tasks"] if t["status"] == "completed")


def test_documents_name_their_account(ds):
    accounts = by_sid(ds["accounts"])
    for doc in ds["documents"]:
        hint = doc["source_data"]["crm_context"]
        assert accounts[hint["account_source_id"]]["name"] in doc["title"]
    assert {"proposal", "contract", "deck"} <= {d["doc_type"] for d in ds["documents"]}


def test_converted_leads_point_at_their_contact_account_and_deal(ds):
    contacts, deals = by_sid(ds["contacts"]), by_sid(ds["deals"])
    converted = [lead for lead in ds["leads"] if lead["is_converted"]]
    assert 0.3 * len(ds["leads"]) <= len(converted) <= 0.5 * len(ds["leads"])
    for lead in converted:
        contact, deal = contacts[lead["converted_contact_source_id"]], deals[lead["converted_deal_source_id"]]
        assert contact["account_source_id"] == deal["account_source_id"] == lead["converted_account_source_id"]
        assert lead["email"] == contact["email"]
        assert lead["source_created_at"] < lead["converted_at"] <= deal["source_created_at"]
        assert deal["lead_source"] == lead["lead_source"]
    assert all(lead["converted_at"] is None for lead in ds["leads"] if not lead["is_converted"])


# --- quotas ---------------------------------------------------------------------------------------------

def test_quotas_cover_the_current_and_previous_quarter_for_every_rep(ds):
    names = [q.name for q in ds.quotas]
    assert names == [previous_quarter(TODAY).name, fiscal_quarter(TODAY).name] == ["FY2026 Q1", "FY2026 Q2"]
    for plan in ds.quotas:
        assert {r[0] for r in plan.reps} == {r.name for r in ds.reps}
        assert plan.team_quota == sum(r[2] for r in plan.reps)


@pytest.mark.parametrize("day, fy_start, name, start, end", [
    (date(2026, 5, 14), 1, "FY2026 Q2", date(2026, 4, 1), date(2026, 6, 30)),
    (date(2026, 12, 31), 1, "FY2026 Q4", date(2026, 10, 1), date(2026, 12, 31)),
    (date(2026, 1, 15), 2, "FY2026 Q4", date(2025, 11, 1), date(2026, 1, 31)),
    (date(2026, 11, 5), 10, "FY2027 Q1", date(2026, 10, 1), date(2026, 12, 31)),
])
def test_fiscal_quarters_follow_the_fiscal_year_start(day, fy_start, name, start, end):
    q = fiscal_quarter(day, fy_start)
    assert (q.name, q.start_date, q.end_date) == (name, start, end)


def test_quota_writes_are_idempotent_upserts(db, workspace):
    with db.connection() as conn:
        first = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), 500_000)
        again = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), 500_000)
        raised = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), 600_000)
        assert first == again == raised
        assert set_rep_quota(conn, workspace["id"], first, "Sam Lee", "sam@democo.io", 150_000) is True
        assert set_rep_quota(conn, workspace["id"], first, "Sam Lee", "sam@democo.io", 150_000) is False
        [period] = list_quotas(conn, workspace["id"])
    assert period["team_quota"] == 600_000
    assert period["reps"] == [{"rep_name": "Sam Lee", "rep_email": "sam@democo.io", "quota_amount": 150_000}]


# --- writing --------------------------------------------------------------------------------------------

def test_writing_twice_leaves_everything_unchanged_the_second_time(db, workspace, ds):
    first = write_dataset(db, workspace["id"], ds)
    second = write_dataset(db, workspace["id"], ds)
    assert first == {t: {"inserted": len(ds[t]), "updated": 0, "unchanged": 0} for t in ENTITY_ORDER}
    assert second == {t: {"inserted": 0, "updated": 0, "unchanged": len(ds[t])} for t in ENTITY_ORDER}


def test_a_small_page_size_writes_the_same_rows(db, workspace, ds):
    counts = write_dataset(db, workspace["id"], ds, page_size=97)
    with db.connection() as conn:
        deals = conn.execute("SELECT count(*) AS n FROM deals WHERE workspace_id = %(w)s", {"w": workspace["id"]}).fetchone()
    assert counts["deals"]["inserted"] == deals["n"] == len(ds["deals"])


def test_after_writing_every_reference_resolves_and_quotas_exist(db, workspace, ds):
    write_dataset(db, workspace["id"], ds)
    ws = {"w": workspace["id"]}
    with db.connection() as conn:
        unresolved_deals = conn.execute(
            "SELECT count(*) AS n FROM deals WHERE workspace_id = %(w)s AND account_source_id IS NOT NULL"
            " AND account_id IS NULL", ws).fetchone()["n"]
        unresolved = {
            f"{table}.{id_col}": conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE workspace_id = %(w)s AND {src} IS NOT NULL AND {id_col} IS NULL",
                ws).fetchone()["n"]
            for table, id_col, src, _ in REFERENCES
        }
        quotas = list_quotas(conn, workspace["id"])
    assert unresolved_deals == 0
    assert not any(unresolved.values()), unresolved
    current = fiscal_quarter(TODAY)
    period = next(p for p in quotas if p["start_date"] == current.start_date)
    assert period["name"] == current.name and len(period["reps"]) == 8
    assert float(period["team_quota"]) == sum(float(r["quota_amount"]) for r in period["reps"])
