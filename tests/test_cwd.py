from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from core.context import get_context, update_section
from core.db.upsert import upsert_rows
from core.errors import InputError
from core.pipeline import PipelineRun, steps
from core.pipeline.cwd import conversations_without_deals, flag_conversations_without_deals
from core.workspaces import create_workspace

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
REP = {"name": "Rita Rep", "email": "rita@democo.io", "affiliation": "internal"}
SAM = {"name": "Sam Seller", "email": "sam@democo.io", "affiliation": "internal"}


def ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def guest(n: int = 1, domain: str = "acme.io") -> list[dict]:
    return [{"name": f"Guest {i}", "email": f"guest{i}@{domain}", "affiliation": "external"} for i in range(n)]


def write(db, ws, table, rows):
    with db.connection() as conn:
        upsert_rows(conn, table, ws["id"], [{"source": "gong" if table == "conversations" else "hubspot", **r}
                                             for r in rows])


def ids(db, ws, table) -> dict[str, uuid.UUID]:
    with db.connection() as conn:
        return {r["source_id"]: r["id"] for r in conn.execute(
            f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws["id"],))}


def accounts(db, ws, *names) -> dict[str, uuid.UUID]:
    write(db, ws, "accounts", [{"source_id": n, "name": n.title()} for n in names])
    return ids(db, ws, "accounts")


def deals(db, ws, acct: dict, *specs: tuple[str, str, str | None]) -> None:
    """(source_id, account source_id, stage_normalized)"""
    write(db, ws, "deals", [{"source_id": s, "name": s, "account_id": acct[a], "stage_normalized": st}
                            for s, a, st in specs])


def call(source_id: str, account_id, days: float, *, title: str = "Weekly sync", secs: int = 1800,
         people: list[dict] | None = None, **extra) -> dict:
    return {"source_id": source_id, "account_id": account_id, "started_at": ago(days), "title": title,
            "duration_seconds": secs, "participants": [REP, *guest()] if people is None else people, **extra}


def run_cwd(db, ws, *, since=None, as_of=AS_OF, noted: dict | None = None) -> dict[str, int]:
    """The CWD step alone; `noted`: what earlier steps of the same run recorded ({"deals.stage_normalized": ids})."""
    with db.connection() as conn:
        run = PipelineRun(str(ws["id"]), since, get_context(conn, ws["id"]), as_of)
        for key, ids in (noted or {}).items():
            run.note(key, ids)
        return flag_conversations_without_deals(conn, run)


def flags(db, ws) -> dict[str, tuple | None]:
    with db.connection() as conn:
        return {r["source_id"]: (r["cwd_severity"], r["cwd_cause"], r["cwd_call_type"]) if r["cwd_severity"] else None
                for r in conn.execute("SELECT source_id, cwd_severity, cwd_cause, cwd_call_type FROM conversations"
                                      " WHERE workspace_id = %s", (ws["id"],))}


def severities(db, ws) -> dict[str, str | None]:
    return {k: v and v[0] for k, v in flags(db, ws).items()}


def now(db):
    with db.connection() as conn:
        return conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]


def test_cwd_runs_after_the_linker_and_the_internal_filter():
    order = {s.name: s.order for s in steps()}
    assert order["cwd"] == 50
    assert all(order[name] < 50 for name in ("internal_filter", "linker") if name in order)


def test_several_calls_at_an_account_with_no_open_deal_are_high(db, workspace):
    a = accounts(db, workspace, "lost", "single")
    deals(db, workspace, a, ("d1", "lost", "closed_lost"), ("d2", "single", "closed_won"))
    write(db, workspace, "conversations", [
        call("c1", a["lost"], 10, secs=400), call("c2", a["lost"], 40, secs=400),
        call("c3", a["single"], 10, secs=400),  # one call at an account that had deals: low
    ])
    assert run_cwd(db, workspace) == {"high": 2, "low": 1}
    assert severities(db, workspace) == {"c1": "high", "c2": "high", "c3": "low"}


def test_an_intro_or_demo_call_a_week_old_with_two_people_is_high(db, workspace):
    a = accounts(db, workspace, "two", "alone", "fresh")
    deals(db, workspace, a, *[(f"d{n}", name, "closed_lost") for n, name in enumerate(a)])
    write(db, workspace, "conversations", [
        call("c1", a["two"], 8, title="Intro call", secs=200),
        call("c2", a["alone"], 8, title="Intro call", secs=200, people=[REP]),  # a no-show
        call("c3", a["fresh"], 3, title="Product demo", secs=200),
    ])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "high", "c2": "low", "c3": "medium"}


def test_a_long_first_call_at_an_account_that_never_had_a_deal_is_high(db, workspace):
    a = accounts(db, workspace, "new", "old", "short")
    deals(db, workspace, a, ("d1", "old", "closed_lost"))
    write(db, workspace, "conversations", [
        call("c1", a["new"], 12, secs=900),
        call("c2", a["old"], 12, secs=900),      # the account had a deal before: not a first contact
        call("c3", a["short"], 12, secs=600),    # 600 s is not long
    ])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "high", "c2": "low", "c3": "low"}


def test_calls_at_an_account_with_an_open_deal_are_medium_and_probably_unlinked(db, workspace):
    a = accounts(db, workspace, "open", "nostage")
    deals(db, workspace, a, ("d1", "open", "evaluation"), ("d2", "open", "closed_lost"), ("d3", "nostage", None))
    write(db, workspace, "conversations", [
        call("c1", a["open"], 20, title="Intro call"), call("c2", a["open"], 30),
        call("c3", a["nostage"], 20, title="Demo"),  # a NULL stage counts as open
    ])
    run_cwd(db, workspace)
    assert flags(db, workspace) == {
        "c1": ("medium", "deal_not_linked", "intro_demo"),
        "c2": ("medium", "deal_not_linked", "other"),
        "c3": ("medium", "deal_not_linked", "intro_demo"),
    }


def test_calls_younger_than_a_week_are_medium_even_when_they_would_be_high(db, workspace):
    a = accounts(db, workspace, "new")
    write(db, workspace, "conversations", [
        call("c1", a["new"], 6.9, title="Intro call"), call("c2", a["new"], 7, title="Intro call")])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "medium", "c2": "high"}


def test_likely_causes(db, workspace):
    a = accounts(db, workspace, "brief", "cold", "unknown", "warm", "recent", "open")
    deals(db, workspace, a, ("d1", "open", "decision"))
    write(db, workspace, "conversations", [
        call("c1", a["brief"], 10, secs=299, people=[REP, *guest(1)]),
        call("c2", a["cold"], 40, secs=1500),
        call("c3", a["unknown"], 40, secs=900),                   # old, mid-length, then silence
        call("c4", a["warm"], 40, secs=1500), call("c5", a["warm"], 29, secs=280, people=[REP, *guest(2)]),
        call("c6", a["recent"], 30, secs=300),
        call("c7", a["open"], 10, secs=60),
        call("c8", a["unknown"], 60, secs=None),
    ])
    run_cwd(db, workspace)
    assert {k: v[1] for k, v in flags(db, workspace).items()} == {
        "c1": "early_stage", "c2": "disqualified_not_logged", "c3": "unknown", "c4": "deal_not_created",
        "c5": "unknown", "c6": "deal_not_created", "c7": "deal_not_linked", "c8": "unknown",
    }


CALL_TYPES = {
    "Acme <> Demo Co — Intro call": "intro_demo",
    "Discovery": "intro_demo",
    "Product overview": "intro_demo",
    "Introduction to Acme": "intro_demo",
    "Demo follow-up": "follow_up",
    "Next steps": "follow_up",
    "Business case review": "review",
    "Pilot check-in": "review",
    "Q3 QBR": "review",
    "Acme <> Demo Co — Weekly sync": "other",   # the workspace's own name is not a demo
    "Production incident": "other",
    None: "other",
}


def test_call_type_comes_from_the_title_without_the_workspaces_own_name(db, workspace):
    with db.connection() as conn:
        update_section(conn, workspace["id"], "business_model", {"company_name": "Demo Co"})
    a = accounts(db, workspace, "acme")
    titled = list(CALL_TYPES.items())
    write(db, workspace, "conversations", [call(f"c{n}", a["acme"], 10, title=t) for n, (t, _) in enumerate(titled)])
    run_cwd(db, workspace)
    got = flags(db, workspace)
    assert {t: got[f"c{n}"][2] for n, (t, _) in enumerate(titled)} == CALL_TYPES


def test_a_conversation_linked_to_a_deal_drops_out(db, workspace):
    a = accounts(db, workspace, "acme")
    deals(db, workspace, a, ("d1", "acme", "closed_lost"))
    write(db, workspace, "conversations", [call("c1", a["acme"], 10), call("c2", a["acme"], 20)])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "high", "c2": "high"}
    write(db, workspace, "conversations", [call("c1", a["acme"], 10, deal_id=ids(db, workspace, "deals")["d1"])])
    assert run_cwd(db, workspace) == {"cleared": 1, "low": 1}  # c2 is now the account's only CWD call
    assert severities(db, workspace) == {"c1": None, "c2": "low"}


def test_internal_conversations_are_never_flagged(db, workspace):
    a = accounts(db, workspace, "acme")
    deals(db, workspace, a, ("d1", "acme", "closed_lost"))
    write(db, workspace, "conversations", [
        call("c1", a["acme"], 10, is_internal=True), call("c2", a["acme"], 10, is_internal=False),
        call("c3", a["acme"], 10),  # not classified yet: treated as external
    ])
    run_cwd(db, workspace)
    assert set(severities(db, workspace).items()) == {("c1", None), ("c2", "high"), ("c3", "high")}
    write(db, workspace, "conversations", [call("c3", a["acme"], 10, is_internal=True)])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": None, "c2": "low", "c3": None}


def test_only_calls_inside_the_lookback_window_are_flagged(db, workspace):
    a = accounts(db, workspace, "acme", "other")
    write(db, workspace, "conversations", [
        call("c1", a["acme"], 89, secs=500), call("c2", a["acme"], 91, secs=500),
        call("c3", a["acme"], -1, secs=500),  # tomorrow: not a call yet
        call("c4", None, 10), call("c5", a["other"], 60, secs=500),
    ])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "low", "c2": None, "c3": None, "c4": None, "c5": "low"}
    assert run_cwd(db, workspace, as_of=AS_OF + timedelta(days=2)) == {"cleared": 1, "medium": 1}  # c1 aged out
    with db.connection() as conn:
        update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"cwd_lookback_days": 30}})
    assert run_cwd(db, workspace) == {"cleared": 2}
    assert severities(db, workspace) == {"c1": None, "c2": None, "c3": None, "c4": None, "c5": None}


def test_a_second_run_changes_nothing_and_never_touches_updated_at(db, workspace):
    a = accounts(db, workspace, "acme", "globex")
    deals(db, workspace, a, ("d1", "globex", "negotiation"))
    write(db, workspace, "conversations", [call("c1", a["acme"], 10, secs=500), call("c2", a["globex"], 3)])
    with db.connection() as conn:
        stamps = conn.execute("SELECT source_id, updated_at FROM conversations ORDER BY 1").fetchall()
    assert run_cwd(db, workspace) == {"low": 1, "medium": 1}
    assert run_cwd(db, workspace) == {}
    assert run_cwd(db, workspace, since=now(db)) == {}
    with db.connection() as conn:
        assert conn.execute("SELECT source_id, updated_at FROM conversations ORDER BY 1").fetchall() == stamps


def _query_world(db, ws):
    a = accounts(db, ws, "acme", "globex")
    write(db, ws, "accounts", [
        {"source_id": "acme", "name": "Acme", "domain": "acme.io", "industry": "Software", "employee_count": 250,
         "owner": "Olivia Owner", "owner_email": "olivia@democo.io", "last_activity_at": ago(1)},
        {"source_id": "globex", "name": "Globex", "domain": "globex.com", "owner": "Greg Owner",
         "owner_email": "greg@democo.io"},
    ])
    deals(db, ws, a, ("d1", "acme", "evaluation"), ("d2", "acme", "closed_won"), ("d3", "acme", "closed_lost"),
          ("d4", "acme", "closed_lost"))
    jane = {"name": "Jane Buyer", "email": "jane@globex.com", "affiliation": "external"}
    write(db, ws, "conversations", [
        call("c1", a["acme"], 10, title="Acme sync", organizer_email="RITA@democo.io", call_url="https://gong/c1"),
        call("c2", a["globex"], 12, title="Globex intro call", organizer_email="jane@globex.com",
             people=[jane, SAM, REP]),
        call("c3", a["globex"], 20, title="Globex follow-up", people=[jane]),
        call("c4", a["acme"], 2, title="Acme pricing", organizer_email="rita@democo.io"),
        call("c5", a["acme"], 1, title="Acme on the deal", deal_id=ids(db, ws, "deals")["d1"]),
        call("c6", a["acme"], 1, title="Pipeline review", is_internal=True, people=[REP, SAM]),
    ])
    run_cwd(db, ws)
    return a


def query(db, ws, **kw):
    with db.connection() as conn:
        return conversations_without_deals(conn, ws["id"], as_of=AS_OF, **kw)


def titles(result) -> list[str]:
    return [i["conversation"]["title"] for i in result["items"]]


def test_query_orders_by_severity_then_recency_and_enriches_accounts(db, workspace):
    a = _query_world(db, workspace)
    result = query(db, workspace)
    assert titles(result) == ["Globex intro call", "Globex follow-up", "Acme pricing", "Acme sync"]
    assert result["total"] == 4
    assert result["summary"] == {"high": 2, "medium": 2, "low": 0, "accounts": 2}
    c1 = result["items"][3]
    assert c1["conversation"] == {"id": str(ids(db, workspace, "conversations")["c1"]), "title": "Acme sync",
                                  "started_at": ago(10), "duration_seconds": 1800, "call_url": "https://gong/c1",
                                  "participant_count": 2}
    assert (c1["severity"], c1["cause"], c1["call_type"]) == ("medium", "deal_not_linked", "other")
    assert c1["account"] == {"id": str(a["acme"]), "name": "Acme", "domain": "acme.io", "industry": "Software",
                             "employee_count": 250, "open_deals": 1, "closed_won_deals": 1, "closed_lost_deals": 2,
                             "last_activity_at": ago(1), "last_conversation_at": ago(1)}
    assert result["items"][0]["account"]["open_deals"] == 0
    assert result["items"][0]["account"]["last_conversation_at"] == ago(12)


def test_rep_is_the_internal_organizer_else_first_internal_participant_else_account_owner(db, workspace):
    _query_world(db, workspace)
    reps = {i["conversation"]["title"]: i["rep"] for i in query(db, workspace)["items"]}
    assert reps == {
        "Acme sync": {"name": "Rita Rep", "email": "RITA@democo.io", "attributed_by": "organizer"},
        "Acme pricing": {"name": "Rita Rep", "email": "rita@democo.io", "attributed_by": "organizer"},
        "Globex intro call": {"name": "Sam Seller", "email": "sam@democo.io",
                              "attributed_by": "first_internal_participant"},  # the organizer is the buyer
        "Globex follow-up": {"name": "Greg Owner", "email": "greg@democo.io", "attributed_by": "account_owner"},
    }


def test_query_filters_by_severity_rep_account_and_days(db, workspace):
    a = _query_world(db, workspace)
    assert titles(query(db, workspace, severity="high")) == ["Globex intro call", "Globex follow-up"]
    assert titles(query(db, workspace, rep="rita@DEMOCO.io")) == ["Acme pricing", "Acme sync"]
    assert titles(query(db, workspace, rep="sam seller")) == ["Globex intro call"]
    assert titles(query(db, workspace, rep="greg@democo.io")) == ["Globex follow-up"]
    assert titles(query(db, workspace, account_id=str(a["acme"]))) == ["Acme pricing", "Acme sync"]
    assert titles(query(db, workspace, days=5)) == ["Acme pricing"]
    filtered = query(db, workspace, severity="medium", rep="Rita Rep", account_id=a["acme"], days=30)
    assert (filtered["total"], filtered["summary"]) == (2, {"high": 0, "medium": 2, "low": 0, "accounts": 1})


def test_query_pages_and_counts_the_whole_filtered_set(db, workspace):
    _query_world(db, workspace)
    page = query(db, workspace, limit=2, offset=1)
    assert titles(page) == ["Globex follow-up", "Acme pricing"]
    assert page["total"] == 4
    assert query(db, workspace, offset=10) == {
        "items": [], "total": 4, "summary": {"high": 2, "medium": 2, "low": 0, "accounts": 2}}


def test_query_refuses_bad_filters_with_a_clear_message(db, workspace):
    for bad in ({"severity": "urgent"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"days": 0},
                {"account_id": "acme"}):
        with pytest.raises(InputError, match=next(iter(bad))):
            query(db, workspace, **bad)


def test_other_workspaces_never_leak_in(db, workspace):
    _query_world(db, workspace)
    with db.connection() as conn:
        other = create_workspace(conn, f"Other {uuid.uuid4().hex[:6]}")
    _query_world(db, other)
    a = accounts(db, other, "initech")
    write(db, other, "conversations", [call("x1", a["initech"], 10)])
    assert run_cwd(db, workspace) == {}
    run_cwd(db, other)
    assert query(db, workspace)["total"] == 4
    result = query(db, other)
    assert result["total"] == 5
    assert query(db, workspace, account_id=a["initech"])["total"] == 0
    mine = query(db, workspace)["items"][3]["account"]
    assert (mine["open_deals"], mine["closed_won_deals"], mine["closed_lost_deals"]) == (1, 1, 2)


def _incremental_world(db, ws):
    a = accounts(db, ws, "acme", "globex", "initech", "hooli")
    deals(db, ws, a, ("d1", "acme", "closed_lost"), ("d2", "initech", "closed_won"))
    write(db, ws, "conversations", [
        call("c1", a["acme"], 10), call("c2", a["acme"], 20), call("c3", a["globex"], 8, title="Intro"),
        call("c4", a["initech"], 15), call("c5", a["initech"], 3), call("c6", a["hooli"], 40, secs=1500),
    ])
    run_cwd(db, ws)
    return a


def test_an_incremental_run_after_one_change_equals_a_full_run(db, workspace):
    a = _incremental_world(db, workspace)
    before = flags(db, workspace)
    since = now(db)
    write(db, workspace, "conversations", [call("c1", a["acme"], 10, deal_id=ids(db, workspace, "deals")["d1"])])
    deals(db, workspace, a, ("d3", "globex", "qualification"))
    changed = run_cwd(db, workspace, since=since)
    after = flags(db, workspace)
    assert changed == {"cleared": 1, "low": 1, "medium": 1}
    assert after != before
    assert run_cwd(db, workspace) == {}  # the full run finds nothing left to do
    assert flags(db, workspace) == after


def test_an_incremental_run_sees_links_made_by_earlier_steps(db, workspace):
    """The linker sets deal_id without moving updated_at; the incremental run still clears the flag."""
    _incremental_world(db, workspace)
    since = now(db)
    with db.connection() as conn:  # what the linker step does: the new link and when it was made
        conn.execute("UPDATE conversations SET deal_id = %s, linked_at = now() WHERE workspace_id = %s AND source_id = 'c1'",
                     (ids(db, workspace, "deals")["d1"], workspace["id"]))
    assert run_cwd(db, workspace, since=since) == {"cleared": 1, "low": 1}
    assert run_cwd(db, workspace) == {}


def test_an_incremental_run_recomputes_the_accounts_a_conversation_and_a_deal_left(db, workspace):
    """A call the linker moves from Acme to Globex leaves Acme one CWD call fewer, so Acme's other call is no
    longer one of several (high → low); a sync moving Hooli's only open deal to Initech leaves Hooli's call without
    an open deal to blame (medium → high). Neither account is linked to anything that changed: the incremental
    run finds them by the accounts the rows left (migrations 0021 and 0018), and a full run has nothing left."""
    a = _incremental_world(db, workspace)
    deals(db, workspace, a, ("d4", "hooli", "qualification"))
    run_cwd(db, workspace)
    before = severities(db, workspace)
    assert (before["c1"], before["c6"]) == ("high", "medium")
    since = now(db)
    with db.connection() as conn:  # what the linker step does: the new link and when it was made
        conn.execute("UPDATE conversations SET account_id = %s, linked_at = now() WHERE workspace_id = %s"
                     " AND source_id = 'c2'", (a["globex"], workspace["id"]))
    deals(db, workspace, a, ("d4", "initech", "qualification"))
    run_cwd(db, workspace, since=since)
    after = severities(db, workspace)
    assert (after["c1"], after["c6"]) == ("low", "high")
    assert run_cwd(db, workspace) == {}


def test_an_incremental_run_clears_the_flag_of_a_conversation_that_lost_its_account(db, workspace):
    """The linker unlinks a flagged conversation from its account (account_id NULL: no account in scope names it);
    the incremental run clears its flag as a full run would."""
    _incremental_world(db, workspace)
    since = now(db)
    with db.connection() as conn:
        conn.execute("UPDATE conversations SET account_id = NULL, linked_at = now() WHERE workspace_id = %s"
                     " AND source_id = 'c3'", (workspace["id"],))
    assert run_cwd(db, workspace, since=since) == {"cleared": 1}
    assert flags(db, workspace)["c3"] is None
    assert run_cwd(db, workspace) == {}


def test_an_incremental_run_picks_up_calls_that_crossed_an_age_boundary(db, workspace):
    """Nothing was synced in between: only the clock moved (previous run at `since`, this one at `as_of`)."""
    as_of = now(db) + timedelta(days=30)   # after every row's updated_at, like a real later run
    since = as_of - timedelta(days=2)
    a = accounts(db, workspace, "acme", "globex", "initech")
    deals(db, workspace, a, ("d1", "acme", "closed_lost"))
    write(db, workspace, "conversations", [
        {**call("c1", a["acme"], 0), "started_at": as_of - timedelta(days=8)},     # 6 days old at `since`
        {**call("c2", a["globex"], 0), "started_at": as_of - timedelta(days=91)},  # in the window at `since`
        {**call("c3", a["initech"], 0), "started_at": as_of - timedelta(days=31), "duration_seconds": 1500},
    ])
    run_cwd(db, workspace, as_of=since)
    assert flags(db, workspace) == {
        "c1": ("medium", "deal_not_created", "other"), "c2": ("high", "disqualified_not_logged", "other"),
        "c3": ("high", "deal_not_created", "other")}
    assert run_cwd(db, workspace, since=since, as_of=as_of) == {"low": 1, "cleared": 1, "high": 1}
    assert flags(db, workspace) == {
        "c1": ("low", "deal_not_created", "other"), "c2": None,
        "c3": ("high", "disqualified_not_logged", "other")}
    assert run_cwd(db, workspace, as_of=as_of) == {}


def test_an_incremental_run_sees_deals_that_closed_without_a_sync(db, workspace):
    """A changed stage mapping re-normalizes deals without moving updated_at; the flags must follow."""
    a = accounts(db, workspace, "acme", "globex")
    deals(db, workspace, a, ("d1", "acme", "evaluation"), ("d2", "globex", "closed_lost"))
    write(db, workspace, "conversations", [call("c1", a["acme"], 10, secs=500), call("c2", a["globex"], 10, secs=500)])
    run_cwd(db, workspace)
    assert severities(db, workspace) == {"c1": "medium", "c2": "low"}
    since = now(db)
    with db.connection() as conn:  # what the stage step does after a mapping change, noting the deals it moved
        moved = [r["id"] for r in conn.execute(
            "UPDATE deals SET stage_normalized = CASE source_id WHEN 'd1' THEN 'closed_lost' ELSE 'decision' END"
            " WHERE workspace_id = %s RETURNING id", (workspace["id"],))]
    assert run_cwd(db, workspace, since=since) == {}  # nothing a sync wrote, nothing noted: nothing to look at
    assert run_cwd(db, workspace, since=since, noted={"deals.stage_normalized": moved}) == {"low": 1, "medium": 1}
    assert flags(db, workspace) == {"c1": ("low", "deal_not_created", "other"),
                                    "c2": ("medium", "deal_not_linked", "other")}
    assert run_cwd(db, workspace) == {}


def test_rep_attribution_follows_the_internal_domains_when_known(db, workspace):
    """As in the internal filter, an email's domain beats the affiliation the recorder guessed."""
    with db.connection() as conn:
        update_section(conn, workspace["id"], "definitions", {"internal_domains": ["democo.io"]})
    a = accounts(db, workspace, "acme")
    write(db, workspace, "conversations", [call("c1", a["acme"], 10, organizer_email="pat@partner.com", people=[
        {"name": "Pat Partner", "email": "pat@partner.com", "affiliation": "internal"},
        {"name": "Rita Rep", "email": "rita@democo.io", "affiliation": "unknown"}, *guest()])])
    run_cwd(db, workspace)
    assert query(db, workspace)["items"][0]["rep"] == {
        "name": "Rita Rep", "email": "rita@democo.io", "attributed_by": "first_internal_participant"}
