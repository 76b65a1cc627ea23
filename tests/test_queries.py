"""The query builder, through the deals module: every filter kind, sorting, limit/offset and keyset paging,
bad input, injection attempts and tenant isolation. Data is written through `upsert_rows` only.

All tests share one database (cloning one per test costs ~0.5 s); a test that needs its own rows makes its
own workspace, which is exactly the isolation the query layer promises."""
from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal

import pytest

from core.db.upsert import upsert_rows
from core.errors import InputError, NotFound
from core.queries import accounts, deals
from core.workspaces import create_workspace


@pytest.fixture(scope="module")
def qdb(module_db):
    return module_db


@pytest.fixture
def conn(qdb):
    with qdb.connection() as connection:
        yield connection


def new_workspace(db) -> str:
    with db.connection() as c:
        return str(create_workspace(c, f"Queries {uuid.uuid4().hex[:8]}")["id"])


def write(db, ws, table, rows) -> dict[str, uuid.UUID]:
    """Upsert rows (source hubspot) and return {source_id: id} of the table."""
    with db.connection() as c:
        upsert_rows(c, table, ws, [{"source": "hubspot", **r} for r in rows])
        found = c.execute(f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws,)).fetchall()
    return {r["source_id"]: r["id"] for r in found}


def seed_pipeline(db, ws) -> dict[str, uuid.UUID]:
    acct = write(db, ws, "accounts", [
        {"source_id": "acme", "name": "Acme Corp", "domain": "acme.io"},
        {"source_id": "globex", "name": "Globex", "domain": "globex.com"},
    ])
    return write(db, ws, "deals", [
        {"source_id": "d1", "name": "Acme expansion", "amount": 50000, "stage_normalized": "negotiation",
         "close_date": "2026-03-10", "owner": "Sarah Chen", "account_id": acct["acme"], "probability": 80},
        {"source_id": "d2", "name": "Acme renewal", "amount": 20000, "stage_normalized": "closed_won",
         "close_date": "2026-01-15", "owner": "Sarah Chen", "account_id": acct["acme"]},
        {"source_id": "d3", "name": "Globex pilot", "amount": 12000, "stage_normalized": "evaluation",
         "close_date": "2026-03-31", "owner": "Raj Patel", "account_id": acct["globex"]},
        {"source_id": "d4", "name": "Globex platform", "stage_normalized": "awareness", "owner": "Raj Patel",
         "account_id": acct["globex"]},
        {"source_id": "d5", "name": "Initech 100% discount_deal", "amount": 8000, "close_date": "2026-04-02",
         "account_name": "Initech"},
        {"source_id": "d6", "name": "Umbrella lost", "amount": 30000, "stage_normalized": "closed_lost",
         "close_date": "2026-02-01", "owner": "Sarah Chen"},
        {"source_id": "d7", "name": "Hooli old", "amount": 99000, "stage_normalized": "decision",
         "close_date": "2026-03-15", "owner": "Raj Patel", "deleted_at": "2026-02-20T10:00:00+00:00"},
    ])


@pytest.fixture(scope="module")
def ws(qdb) -> str:
    workspace = new_workspace(qdb)
    seed_pipeline(qdb, workspace)
    return workspace


def found(conn, ws, **filters) -> set[str]:
    return {d["name"] for d in deals.query(conn, ws, filters=filters, limit=500).items}


# ---------------------------------------------------------------------------------------------------- filters

def test_owner_filter_ignores_case_and_takes_a_list(conn, ws):
    assert found(conn, ws, owner="sarah chen") == {"Acme expansion", "Acme renewal", "Umbrella lost"}
    assert found(conn, ws, owner=["RAJ PATEL", "nobody"]) == {"Globex pilot", "Globex platform"}


def test_status_open_counts_a_deal_without_stage_as_open(conn, ws):
    assert found(conn, ws, status="open") == {"Acme expansion", "Globex pilot", "Globex platform",
                                              "Initech 100% discount_deal"}
    assert found(conn, ws, status="closed") == {"Acme renewal", "Umbrella lost"}
    assert found(conn, ws, status="won") == {"Acme renewal"}
    assert found(conn, ws, status=["won", "lost"]) == {"Acme renewal", "Umbrella lost"}
    assert found(conn, ws, stage=["Negotiation", "evaluation"]) == {"Acme expansion", "Globex pilot"}


def test_close_date_range_is_inclusive_and_leaves_out_undated_deals(conn, ws):
    assert found(conn, ws, close_date_from="2026-03-10", close_date_to="2026-03-31") == {"Acme expansion",
                                                                                         "Globex pilot"}


def test_amount_range_compares_numbers(conn, ws):
    assert found(conn, ws, amount_min="12000", amount_max=30000) == {"Globex pilot", "Acme renewal", "Umbrella lost"}
    assert found(conn, ws, amount_min=Decimal("50000.00")) == {"Acme expansion"}


def test_search_needs_every_term_in_the_deal_or_account_name(conn, ws):
    assert found(conn, ws, search="acme EXP") == {"Acme expansion"}
    assert found(conn, ws, search="globex.com") == {"Globex pilot", "Globex platform"}  # the account's domain
    assert found(conn, ws, search="initech") == {"Initech 100% discount_deal"}  # the name the source wrote


def test_search_treats_like_wildcards_as_text(conn, ws):
    assert found(conn, ws, search="100%") == {"Initech 100% discount_deal"}
    assert found(conn, ws, search="_") == {"Initech 100% discount_deal"}
    assert found(conn, ws, search="%") == {"Initech 100% discount_deal"}


def test_has_account_separates_linked_from_unlinked_deals(conn, ws):
    assert found(conn, ws, has_account=False) == {"Initech 100% discount_deal", "Umbrella lost"}
    assert found(conn, ws, has_account="true") == {"Acme expansion", "Acme renewal", "Globex pilot", "Globex platform"}


def test_deleted_deals_appear_only_with_include_deleted(conn, ws):
    assert "Hooli old" not in found(conn, ws)
    assert found(conn, ws, include_deleted=True, owner="raj patel") == {"Globex pilot", "Globex platform", "Hooli old"}


def test_none_means_no_filter_and_an_empty_list_matches_nothing(conn, ws):
    assert found(conn, ws, owner=None, amount_min=None) == found(conn, ws)
    assert found(conn, ws, owner=[]) == found(conn, ws, status=[]) == found(conn, ws, id=[]) == set()


@pytest.mark.parametrize("name, value", [
    ("amount_min", "lots"), ("close_date_from", "tomorrow"), ("close_date_to", "2026-02-30"),
    ("stage", "won-ish"), ("status", "maybe"), ("account_id", "acme"), ("has_account", "perhaps"),
    ("owner", 42), ("owner", "a\x00b"), ("amount_max", float("nan")), ("amount_min", "1e999999"),
    ("include_deleted", "sometimes"), ("search", ["acme"]),
])
def test_a_bad_value_is_an_input_error_naming_the_parameter(conn, ws, name, value):
    with pytest.raises(InputError) as err:
        deals.query(conn, ws, filters={name: value})
    assert err.value.details["field"] == name and name in err.value.message


def test_an_unknown_filter_is_named_and_the_valid_ones_listed(conn, ws):
    with pytest.raises(InputError) as err:
        deals.query(conn, ws, filters={"amount_gt": 5})
    assert err.value.details["field"] == "amount_gt"
    assert "'amount_gt'" in err.value.message and "amount_min" in err.value.message


def test_unknown_sort_and_bad_direction_are_input_errors(conn, ws):
    with pytest.raises(InputError, match="unknown sort 'amount_usd'.*valid sorts: close_date, amount"):
        deals.query(conn, ws, sort="amount_usd")
    with pytest.raises(InputError) as err:
        deals.query(conn, ws, direction="sideways")
    assert err.value.details["field"] == "direction"


def test_injection_attempts_are_values_or_refused_names(conn, ws):
    evil = "x' OR '1'='1'; DROP TABLE deals; --"
    assert found(conn, ws, owner=evil) == set()
    assert found(conn, ws, search=evil) == set()
    for bad in ({"sort": "amount; DROP TABLE deals"}, {"direction": "asc; DROP TABLE deals"},
                {"filters": {"owner = owner OR 1=1 --": "x"}}, {"sort": "d.amount"}):
        with pytest.raises(InputError):
            deals.query(conn, ws, **bad)
    assert deals.query(conn, ws).total == 6  # still there, nothing leaked


# ---------------------------------------------------------------------------------------------------- sorting

def test_amount_sort_keeps_missing_amounts_last_in_both_directions(conn, ws):
    up = [d["amount"] for d in deals.query(conn, ws, sort="amount").items]
    down = [d["amount"] for d in deals.query(conn, ws, sort="amount", direction="DESC").items]
    assert up == [8000, 12000, 20000, 30000, 50000, None]
    assert down == [50000, 30000, 20000, 12000, 8000, None]


def test_stage_sort_follows_the_stage_vocabulary_not_the_alphabet(conn, ws):
    stages = [d["stage_normalized"] for d in deals.query(conn, ws, sort="stage").items]
    assert stages == ["awareness", "evaluation", "negotiation", "closed_won", "closed_lost", None]


def test_rows_carry_the_account_name_and_domain(conn, ws):
    row = deals.query(conn, ws, filters={"search": "pilot"}).items[0]
    assert (row["account_name"], row["account_domain"], row["amount"]) == ("Globex", "globex.com", Decimal("12000.00"))
    assert "source_data" not in row and "row_hash" not in row


# ---------------------------------------------------------------------------------------------------- paging

def test_limit_offset_pages_report_the_total_under_the_filters(conn, ws):
    first = deals.query(conn, ws, filters={"status": "open"}, limit=3)
    last = deals.query(conn, ws, filters={"status": "open"}, limit=3, offset=3)
    beyond = deals.query(conn, ws, filters={"status": "open"}, limit=3, offset=10)
    assert (len(first.items), first.total, first.next_cursor is not None) == (3, 4, True)
    assert (len(last.items), last.total, last.next_cursor) == (1, 4, None)
    assert (beyond.items, beyond.total) == ([], 4)
    assert first.to_dict().keys() == {"items", "total", "limit", "offset", "next_cursor"}


@pytest.mark.parametrize("paging", [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"offset": -1}, {"limit": True}])
def test_limit_and_offset_must_be_in_range(conn, ws, paging):
    with pytest.raises(InputError) as err:
        deals.query(conn, ws, **paging)
    assert err.value.details["field"] in paging


def walk(conn, ws, **kw) -> list[uuid.UUID]:
    seen, cursor, pages = [], None, 0
    while True:
        page = deals.query(conn, ws, limit=4, cursor=cursor, **kw)
        seen += [d["id"] for d in page.items]
        assert page.total == page.to_dict()["total"] and pages < 50
        cursor, pages = page.next_cursor, pages + 1
        if cursor is None:
            return seen


@pytest.fixture(scope="module")
def lumpy(qdb) -> str:
    """23 deals whose amounts, close dates and names repeat and are often missing."""
    workspace = new_workspace(qdb)
    write(qdb, workspace, "deals", [
        {"source_id": f"k{i}", "name": None if i % 5 == 0 else f"deal {i % 4}",
         "amount": None if i % 3 == 0 else (i % 4) * 1000, "close_date": None if i % 4 == 0 else f"2026-0{i % 3 + 1}-01"}
        for i in range(23)
    ])
    return workspace


@pytest.mark.parametrize("sort", ["amount", "close_date", "name", "created"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_keyset_pages_visit_every_row_once_in_order_despite_ties_and_nulls(conn, lumpy, sort, direction):
    everything = deals.query(conn, lumpy, sort=sort, direction=direction, limit=500).items
    assert walk(conn, lumpy, sort=sort, direction=direction) == [d["id"] for d in everything]
    assert len(everything) == 23


def test_keyset_order_matches_the_documented_order(conn, lumpy):
    rows = deals.query(conn, lumpy, sort="amount", direction="desc", limit=500).items
    expected = sorted(rows, key=lambda d: (d["amount"] is None, -(d["amount"] or 0), [-b for b in d["id"].bytes]))
    assert [d["id"] for d in rows] == [d["id"] for d in expected]


def test_total_stays_the_whole_filtered_count_on_cursor_pages(conn, lumpy):
    first = deals.query(conn, lumpy, filters={"amount_min": 1000}, sort="amount", limit=5)
    second = deals.query(conn, lumpy, filters={"amount_min": 1000}, sort="amount", limit=5, cursor=first.next_cursor)
    assert first.total == second.total == 11 and len(second.items) == 5  # amount 1000-3000: i % 3 and i % 4


def forge(cursor: str, **changes) -> str:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps({**data, **changes}).encode()).decode()


def test_a_tampered_or_foreign_cursor_is_an_input_error(conn, ws, lumpy):
    cursor = deals.query(conn, ws, sort="amount", limit=2).next_cursor
    assert deals.query(conn, ws, sort="amount", limit=2, cursor=forge(cursor)).items  # a faithful re-encode works
    attempts = [
        ({"cursor": "not-a-cursor"}), ({"cursor": cursor[:-3]}), ({"cursor": forge(cursor, k="lots")}),
        ({"cursor": forge(cursor, i="1; DROP TABLE deals")}), ({"cursor": forge(cursor, f="0" * 16)}),
        ({"cursor": cursor, "sort": "close_date"}), ({"cursor": cursor, "direction": "desc"}),
        ({"cursor": cursor, "filters": {"status": "open"}}), ({"cursor": cursor, "offset": 2}),
    ]
    for kw in attempts:
        with pytest.raises(InputError) as err:
            deals.query(conn, ws, **{"sort": "amount", **kw})
        assert err.value.details["field"] in ("cursor", "offset")
    with pytest.raises(InputError):  # another workspace's cursor
        deals.query(conn, lumpy, sort="amount", cursor=cursor)


# ---------------------------------------------------------------------------------------------------- tenancy

def test_another_workspaces_deals_never_appear(qdb, conn, ws):
    other = new_workspace(qdb)
    theirs = seed_pipeline(qdb, other)  # the same source ids, names and owners
    mine = {d["id"] for d in deals.query(conn, ws, filters={"include_deleted": True}, limit=500).items}
    assert len(mine) == 7 and not mine & set(theirs.values())
    assert deals.query(conn, ws, filters={"id": list(theirs.values())}).total == 0
    with pytest.raises(NotFound):
        deals.get(conn, ws, theirs["d1"])
    their_account = deals.get(conn, other, theirs["d1"])["account_id"]
    with pytest.raises(NotFound):
        accounts.get(conn, ws, their_account)
    assert deals.open_pipeline(conn, ws)["deal_count"] == 4


# ---------------------------------------------------------------------------------------------------- helpers

def test_open_pipeline_sums_by_stage_and_owner_weighting_by_probability(conn, ws):
    p = deals.open_pipeline(conn, ws)
    # open: d1 50000 @80 % (own probability), d3 12000 @40 % (evaluation default), d4 no amount, d5 8000 no stage
    assert (p["deal_count"], p["amount"], p["weighted"]) == (4, 70000, 44800)
    assert [(s["stage"], s["deal_count"], s["amount"], s["weighted"]) for s in p["by_stage"]] == [
        ("awareness", 1, 0, 0), ("evaluation", 1, 12000, 4800), ("negotiation", 1, 50000, 40000), (None, 1, 8000, 0)]
    assert [(o["owner"], o["deal_count"], o["amount"], o["weighted"]) for o in p["by_owner"]] == [
        ("Sarah Chen", 1, 50000, 40000), ("Raj Patel", 2, 12000, 4800), (None, 1, 8000, 0)]


def test_open_pipeline_narrows_by_owner_and_close_window(conn, ws):
    raj = deals.open_pipeline(conn, ws, owner="raj patel")
    march = deals.open_pipeline(conn, ws, close_from="2026-03-01", close_to="2026-03-31")
    nobody = deals.open_pipeline(conn, ws, owner="Nobody")
    assert (raj["deal_count"], raj["amount"], raj["weighted"]) == (2, 12000, 4800)
    assert (march["deal_count"], march["amount"], march["weighted"]) == (2, 62000, 44800)
    assert (nobody["deal_count"], nobody["amount"], nobody["by_stage"]) == (0, 0, [])
