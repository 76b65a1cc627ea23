from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from core.db.upsert import upsert_rows
from core.errors import InputError
from core.workspaces import create_workspace


def deal(sid, **kw):
    row = {"source": "hubspot", "source_id": sid, "name": f"Deal {sid}", "amount": Decimal("1000"),
           "close_date": date(2026, 3, 31), "source_data": {"id": sid, "properties": {"x": 1}}}
    row.update(kw)
    return row


def fetch(conn, ws, table="deals"):
    return {r["source_id"]: r for r in conn.execute(
        f"SELECT * FROM {table} WHERE workspace_id = %s", (ws["id"],)).fetchall()}


def test_first_write_inserts_then_a_repeat_changes_nothing(db, workspace):
    with db.connection() as conn:
        first = upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")])
        before = fetch(conn, workspace)
        again = upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")])
        after = fetch(conn, workspace)
    assert first.counts() == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert again.counts() == {"inserted": 0, "updated": 0, "unchanged": 2}
    assert after["1"]["updated_at"] == before["1"]["updated_at"]


def test_a_changed_value_updates_only_that_row(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")])
    with db.connection() as conn:
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=Decimal("2500.50")), deal("2")])
        rows = fetch(conn, workspace)
    assert result.counts() == {"inserted": 0, "updated": 1, "unchanged": 1}
    assert rows["1"]["amount"] == Decimal("2500.50")
    assert rows["1"]["updated_at"] > rows["2"]["updated_at"]


def test_new_and_existing_rows_mix_in_one_page(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1")])
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", stage="won"), deal("3")])
    assert result.counts() == {"inserted": 1, "updated": 1, "unchanged": 0}


def test_columns_a_row_does_not_mention_are_left_alone(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1", owner="Dana")])
        conn.execute("UPDATE deals SET deal_risk = 70 WHERE workspace_id = %s", (workspace["id"],))
        upsert_rows(conn, "deals", workspace["id"], [{"source": "hubspot", "source_id": "1", "amount": 5}])
        row = fetch(conn, workspace)["1"]
    assert (row["owner"], row["deal_risk"], row["amount"]) == ("Dana", 70, 5)


def test_capture_prior_hands_back_ids_and_the_old_image(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=100)])
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=200), deal("2")], capture_prior=True)
        rows = fetch(conn, workspace)
    assert result.inserted_ids == [rows["2"]["id"]]
    [prior] = result.prior
    assert prior["source_id"] == "1" and Decimal(str(prior["amount"])) == 100
    assert prior["id"] == str(rows["1"]["id"])


def test_capture_prior_on_a_first_load_returns_inserted_ids(db, workspace):
    with db.connection() as conn:
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")], capture_prior=True)
        rows = fetch(conn, workspace)
    assert sorted(map(str, result.inserted_ids)) == sorted(str(r["id"]) for r in rows.values())


def test_force_compares_every_row_and_still_counts_unchanged(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")])
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2", name="renamed")], force=True)
    assert result.counts() == {"inserted": 0, "updated": 1, "unchanged": 1}


def test_same_value_written_differently_is_not_an_update(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1", amount="1000.50")])
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=Decimal("1000.5"))])
    assert result.updated == 0 and result.unchanged == 1


def test_duplicate_keys_in_one_page_keep_the_last(db, workspace):
    with db.connection() as conn:
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", name="old"), deal("1", name="new")])
        rows = fetch(conn, workspace)
    assert result.inserted == 1 and rows["1"]["name"] == "new"


def test_two_workspaces_with_the_same_source_ids_never_touch_each_other(db, workspace):
    with db.connection() as conn:
        other = create_workspace(conn, "Globex")
        upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=100), deal("2")])
        result = upsert_rows(conn, "deals", other["id"], [deal("1", amount=999), deal("2")])
        mine, theirs = fetch(conn, workspace), fetch(conn, other)
    assert result.counts() == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert mine["1"]["amount"] == 100 and theirs["1"]["amount"] == 999
    assert mine["1"]["id"] != theirs["1"]["id"]
    with db.connection() as conn:
        upsert_rows(conn, "deals", other["id"], [deal("1", amount=5)])
        assert fetch(conn, workspace)["1"]["amount"] == 100


def test_unknown_column_is_named(db, workspace):
    with db.connection() as conn, pytest.raises(InputError) as err:
        upsert_rows(conn, "deals", workspace["id"], [deal("1", dealname="x")])
    assert err.value.details["field"] == "dealname"


def test_protected_columns_cannot_be_written(db, workspace):
    with db.connection() as conn, pytest.raises(InputError):
        upsert_rows(conn, "deals", workspace["id"], [deal("1", workspace_id="00000000-0000-0000-0000-000000000000")])


def test_row_without_source_id_is_named(db, workspace):
    with db.connection() as conn, pytest.raises(InputError) as err:
        upsert_rows(conn, "deals", workspace["id"], [deal("1"), {"source": "hubspot", "name": "x"}])
    assert err.value.details["row"] == 2


def test_bad_value_is_an_input_error_and_writes_nothing(db, workspace):
    with pytest.raises(InputError) as err:
        with db.connection() as conn:
            upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2", amount="lots")])
    assert "amount" in err.value.message or err.value.details.get("field") == "amount"
    with db.connection() as conn:
        assert fetch(conn, workspace) == {}


def test_not_an_entity_table(db, workspace):
    with db.connection() as conn, pytest.raises(InputError):
        upsert_rows(conn, "workspaces", workspace["id"], [deal("1")])


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1.5, None, True], "c": {"d": "é \\ \"q\" \n\t\x01"}},
    {1: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    {"n": float("nan"), "i": float("inf"), "big": 10**30, "dec": Decimal("1.10"), "day": date(2026, 3, 1)},
    ["top", "level", "list"], "a bare string", 42, None, {}, [],
], ids=["nested", "keys", "numbers-and-defaults", "list", "string", "int", "null", "empty-dict", "empty-list"])
def test_json_columns_are_serialised_as_the_json_module_writes_them(value):
    """The upsert calls the json module's C encoder directly (for speed): its text must be json.dumps's, with the
    backslashes COPY needs doubled."""
    import json

    from core.db.upsert import _json_text

    expected = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    assert _json_text(value) == expected.replace("\\", "\\\\")
