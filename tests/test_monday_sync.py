"""monday.com against the fake GraphQL API: board items → tasks with parsed columns, items_page/next_items_page
paging, cursor expiry (mid-walk and after a pause) restarting the board cleanly, the complexity budget (paced and
exhausted), HTTP-200 errors, auth, incremental runs, archived/deleted items, deal links and the post-sync run."""
from __future__ import annotations

from datetime import date, datetime, timezone

from core.db.upsert import upsert_rows
from core.pipeline import run_post_sync
from tests.fakes.monday_api import BOARD, FIXTURE_COLUMNS, cell, column, fixture
from tests.test_monday_support import (  # noqa: F401  (fixtures)
    connect, connector, db, engine, monday, task_count, tasks, vault, workspace)
from tests.support import rows

FIXTURE_IDS = {"9876543210", "9876543211", "9876543212", "9876543213"}


def test_board_items_become_tasks_with_parsed_columns(db, vault, workspace, connector, monday, engine):
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    got = tasks(db, workspace)
    assert set(got) == FIXTURE_IDS
    msa = got["9876543210"]
    assert msa["title"] == "Send MSA to Acme" and msa["project"] == "Deal desk tasks"
    assert msa["status"] == "Working on it" and msa["completed_at"] is None
    assert msa["due_date"] == date(2026, 5, 8)
    assert msa["assignee"] == "Jon Snow" and msa["assignee_email"] == "jon.snow@example.com"
    assert msa["url"] == f"https://example-team.monday.com/boards/{BOARD}/pulses/9876543210"
    assert msa["custom_fields"] == {"Account": "Acme Corp", "Amount": 12000, "group": "This week"}
    assert msa["source_updated_at"] == datetime(2026, 5, 1, 7, 25, 37, tzinfo=timezone.utc)
    assert msa["source_data"]["board"] == {"id": BOARD, "name": "Deal desk tasks"}
    assert msa["deleted_at"] is None and msa["deal_source_id"] is None
    done = got["9876543211"]
    assert done["status"] == "Done"
    assert done["completed_at"] == datetime(2026, 5, 1, 7, 25, 37, tzinfo=timezone.utc)  # the status's changed_at
    assert done["assignee"] is None and done["due_date"] is None
    [meta] = rows(db, workspace, "SELECT metadata FROM connections WHERE workspace_id = %s")
    assert {u["id"] for u in meta["metadata"]["users"]} == {"4012345", "4012346"}
    assert [b["id"] for b in meta["metadata"]["board_info"]] == [BOARD]


def test_requests_carry_the_token_and_api_version(db, vault, workspace, connector, monday, engine):
    connect(db, vault, workspace)
    assert engine.run(workspace["id"], "monday").status == "succeeded"
    headers = monday.requests[0]["headers"]
    assert headers["Authorization"] == "monday-test-token" and headers["API-Version"] == "2024-10"
    assert all("complexity {" in r["query"] for r in monday.requests)
    assert [r["variables"]["page"] for r in monday.requests if "users(" in r["query"]] == [1, 2, 3]  # once a sync


def test_items_are_paged_with_items_page_then_next_items_page(db, vault, workspace, connector, monday, engine):
    for i in range(3):
        monday.add_item(BOARD, f"Extra {i}")
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert len(tasks(db, workspace)) == 7
    walk = monday.item_requests()
    assert len(walk) == 4  # 7 items, 2 per page
    assert "boards(ids: $board)" in walk[0]["query"] and "next_items_page" not in walk[0]["query"]
    assert walk[0]["variables"] == {"board": [BOARD], "limit": 2}
    cursors = [r["variables"]["cursor"] for r in walk[1:]]
    assert all("next_items_page(" in r["query"] for r in walk[1:]) and len(set(cursors)) == 3
    assert all(set(r["variables"]) == {"cursor", "limit"} for r in walk[1:])  # only what the query declares


def test_cursor_expiring_mid_walk_restarts_the_board_without_duplicates(db, vault, workspace, connector, monday,
                                                                        engine):
    for i in range(4):
        monday.add_item(BOARD, f"Extra {i}")
    monday.expire_cursors(after_requests=3)  # the third item-page request finds the walk's cursor expired
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    walk = monday.item_requests()
    firsts = [i for i, r in enumerate(walk) if "next_items_page" not in r["query"]]
    assert firsts == [0, 3]  # the board walk started over after the expired cursor
    assert task_count(db, workspace) == (8, 8)


def test_a_walk_killed_and_resumed_after_its_cursor_expired_restarts_cleanly(db, vault, workspace, connector,
                                                                               monday, engine):
    for i in range(4):
        monday.add_item(BOARD, f"Extra {i}")
    boom = {"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    monday.script = [None, (200, boom)]
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "failed" and "Internal server error" in report.error
    assert len(tasks(db, workspace)) == 2  # the first page was committed with its cursor
    monday.advance(3601)  # the process was down longer than a cursor lives
    monday.requests.clear()
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert report.resumed
    walk = monday.item_requests()
    assert "next_items_page" in walk[0]["query"] and "next_items_page" not in walk[1]["query"]
    assert task_count(db, workspace) == (8, 8)


def test_a_failed_walk_resumes_at_its_saved_cursor(db, vault, workspace, connector, monday, engine):
    boom = {"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    monday.script = [None, (200, boom)]
    connect(db, vault, workspace)
    assert engine.run(workspace["id"], "monday").status == "failed"
    monday.requests.clear()
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded" and report.resumed
    walk = monday.item_requests()
    assert len(walk) == 1 and "next_items_page" in walk[0]["query"]  # page 1 is not fetched again
    assert task_count(db, workspace) == (4, 4)


def test_the_client_paces_itself_before_the_complexity_budget_runs_out(db, vault, workspace, connector, monday,
                                                                       engine, sleeps):
    for i in range(4):
        monday.add_item(BOARD, f"Extra {i}")
    monday.budget_per_minute = 200  # a page of two items costs 30: a few pages per minute
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert any(w >= 30 for w in sleeps), sleeps  # waited for the budget's reset
    assert monday.exhausted == 0 and task_count(db, workspace) == (8, 8)


def test_an_exhausted_complexity_budget_is_waited_out(db, vault, workspace, connector, monday, engine, sleeps):
    exhausted = fixture("error_complexity_budget_exhausted.json")
    exhausted["errors"][0]["extensions"]["retry_in_seconds"] = 42
    monday.script = [None, (200, exhausted)]
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert 42 in sleeps
    assert task_count(db, workspace) == (4, 4)


def test_field_limit_and_rate_limits_are_honoured(db, vault, workspace, connector, monday, engine, sleeps):
    monday.add_item(BOARD, "Fifth")  # three pages: one limit on each
    field_limit = fixture("error_field_limit_exceeded.json")
    http200 = dict(field_limit, error_data={"retry_in_seconds": 4, "entity": "boards"})
    monday.script = [(429, field_limit), None, (200, http200), None,
                     (429, {"error_message": "Rate Limit Exceeded", "status_code": 429}, {"Retry-After": "7"})]
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert [s for s in sleeps if s in (15, 4, 7)] == [15, 4, 7] and monday.script == []
    assert task_count(db, workspace) == (5, 5)


def test_an_http_200_error_with_partial_data_fails_the_sync_with_its_message(db, vault, workspace, connector,
                                                                              monday, engine):
    partial = {"data": {"boards": [{"id": BOARD, "items_page": None}]},
               "errors": [{"message": "Column value not found", "path": ["boards", 0, "items_page"],
                           "extensions": {"code": "ColumnValueException", "status_code": 200}}]}
    monday.script = [(200, partial)]
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "failed"
    assert "ColumnValueException" in report.error and "Column value not found" in report.error
    assert tasks(db, workspace) == {}


def test_a_rejected_token_asks_to_reconnect(db, vault, workspace, connector, monday, engine):
    connect(db, vault, workspace, token="wrong-token")
    report = engine.run(workspace["id"], "monday")
    assert report.status == "failed" and "reconnect Monday.com" in report.error
    assert report.exception.code == "auth_error"
    [conn] = rows(db, workspace, "SELECT status FROM connections WHERE workspace_id = %s")
    assert conn["status"] == "error"


def test_an_unauthorized_error_with_http_200_asks_to_reconnect(db, vault, workspace, connector, monday, engine):
    monday.unauthorized = True
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "failed" and report.exception.code == "auth_error"
    assert "User unauthorized to perform action" in report.error and "reconnect Monday.com" in report.error


def test_an_incremental_run_asks_only_for_recently_updated_items(db, vault, workspace, connector, monday, engine):
    for i in range(3):
        monday.add_item(BOARD, f"Old {i}", updated_at="2026-03-0%dT10:00:00Z" % (i + 1))
    connect(db, vault, workspace)
    assert engine.run(workspace["id"], "monday").status == "succeeded"
    assert len(tasks(db, workspace)) == 7
    monday.update_item("9876543210", name="Send MSA to Acme (v2)")
    monday.requests.clear()
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    first = monday.item_requests()[0]["variables"]["qp"]["rules"][0]
    assert first == {"column_id": "__last_updated__", "compare_value": ["EXACT", "2026-04-30"],
                     "operator": "greater_than_or_equals", "compare_attribute": "UPDATED_AT"}
    assert report.counts["tasks"]["fetched"] == 4  # the items of 2026-05-01 and later, never March's
    assert report.counts["tasks"]["updated"] == 1
    assert tasks(db, workspace)["9876543210"]["title"] == "Send MSA to Acme (v2)"


def test_archived_and_deleted_items_are_marked_and_restored_ones_come_back(db, vault, workspace, connector, monday,
                                                                           engine):
    connect(db, vault, workspace)
    assert engine.run(workspace["id"], "monday").status == "succeeded"
    monday.archive_item("9876543210")
    monday.delete_item("9876543211")
    monday.update_item("9876543212", name="Security review (renamed)")  # an activity entry that removes nothing
    monday.requests.clear()
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    looked_up = [i for r in monday.requests if "exclude_nonactive" in r["query"] for i in r["variables"]["ids"]]
    assert sorted(looked_up) == ["9876543210", "9876543211"]  # the renamed item is not looked up
    got = tasks(db, workspace)
    assert got["9876543210"]["deleted_at"] is not None and got["9876543211"]["deleted_at"] is not None
    assert got["9876543210"]["title"] == "Send MSA to Acme"  # the row and its fields stay
    assert got["9876543212"]["deleted_at"] is None
    monday.restore_item("9876543210")
    assert engine.run(workspace["id"], "monday").status == "succeeded"
    assert tasks(db, workspace)["9876543210"]["deleted_at"] is None
    assert task_count(db, workspace) == (4, 4)


def test_tasks_link_to_deals_by_crm_url_and_by_name(db, vault, workspace, connector, monday, engine):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [
            {"source": "hubspot", "source_id": "9001", "name": "Acme renewal"},
            {"source": "salesforce", "source_id": "0065g00000AbCdEAAV", "name": "Globex expansion"},
            {"source": "hubspot", "source_id": "9002", "name": "Initech pilot"}])
    board = monday.add_board("555", "Onboarding", [*FIXTURE_COLUMNS, column("deal", "Deal", "text")])
    monday.add_item(board["id"], "Kickoff Acme", [cell("link", "link", "HubSpot", {
        "url": "https://app.hubspot.com/contacts/4711/record/0-3/9001", "text": "HubSpot"})], item_id="701")
    monday.add_item(board["id"], "Kickoff Globex", [cell(
        "deal", "text", "https://acme.lightning.force.com/lightning/r/Opportunity/0065g00000AbCdE/view",
        "https://acme.lightning.force.com/lightning/r/Opportunity/0065g00000AbCdE/view")], item_id="702")
    monday.add_item(board["id"], "Kickoff Initech", [cell("deal", "text", "initech PILOT ", "initech PILOT ")],
                    item_id="703")
    monday.add_item(board["id"], "Kickoff nobody", [cell("deal", "text", "No such deal", "No such deal")],
                    item_id="704")
    connect(db, vault, workspace, boards=["555"])
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    linked = {r["source_id"]: r for r in rows(db, workspace, "SELECT t.source_id, t.deal_source_id, t.custom_fields,"
                                               " d.source_id AS deal FROM tasks t LEFT JOIN deals d ON d.workspace_id ="
                                               " t.workspace_id AND d.id = t.deal_id WHERE t.workspace_id = %s")}
    assert set(linked) == {"701", "702", "703", "704"}  # only the chosen board
    assert linked["701"]["deal"] == "9001" and linked["701"]["custom_fields"]["deal_crm"] == "hubspot"
    assert linked["702"]["deal"] == "0065g00000AbCdEAAV" and linked["702"]["deal_source_id"] == "0065g00000AbCdEAAV"
    assert linked["703"]["deal"] == "9002" and linked["703"]["custom_fields"]["deal_name"] == "initech PILOT"
    assert linked["704"]["deal"] is None and linked["704"]["custom_fields"]["deal_name"] == "No such deal"
    monday.update_item("703", cells=[cell("deal", "text", "", None)])  # the deal was taken off the item
    assert engine.run(workspace["id"], "monday").status == "succeeded"
    [row] = rows(db, workspace, "SELECT deal_id FROM tasks WHERE workspace_id = %s AND source_id = '703'")
    assert row["deal_id"] is None
    with db.connection() as conn:  # HubSpot deletes (archives) the deal 701 names: no deal is left to link
        upsert_rows(conn, "deals", workspace["id"], [{"source": "hubspot", "source_id": "9001", "name": "Acme renewal",
                                                      "deleted_at": datetime.now(timezone.utc)}])
    run_post_sync(db, workspace["id"], incremental=True)
    [row] = rows(db, workspace, "SELECT deal_id FROM tasks WHERE workspace_id = %s AND source_id = '701'")
    assert row["deal_id"] is None


def test_subitems_are_tasks_of_their_parent_board_and_follow_the_parent_deal(db, vault, workspace, connector,
                                                                             monday, engine):
    """A chosen board's subitems column names its subitems board, which is synced with it: each subitem is a
    task of the parent board (its project) with `parent_item`, its cells read with the subitems board's columns; a
    subitem naming no deal takes its parent's and follows it when the parent moves, one naming its own keeps it;
    a deleted subitem is marked through the activity log, its own board's or its parent's."""
    from tests.fakes.monday_api import STATUS_LABELS

    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [
            {"source": "hubspot", "source_id": "9001", "name": "Acme renewal"},
            {"source": "hubspot", "source_id": "9002", "name": "Initech pilot"}])
    monday.add_board("555", "Onboarding", [*FIXTURE_COLUMNS, column("deal", "Deal", "text")])
    monday.subitems_board("555", "556", [column("state", "State", "status", STATUS_LABELS, [1]),
                                         column("deal", "Deal", "text")])
    monday.add_item("555", "Kickoff Acme", [cell("deal", "text", "Acme renewal", "Acme renewal")], item_id="701")
    monday.add_item("556", "Send welcome pack", [cell("state", "status", "Done", {
        "index": 1, "post_id": None, "changed_at": "2026-05-02T10:00:00.000Z"})], item_id="7011", parent="701",
        group={"id": "topics", "title": "Subitems"})
    monday.add_item("556", "Scope the Initech pilot", [cell("deal", "text", "Initech pilot", "Initech pilot")],
                    item_id="7012", parent="701")
    connect(db, vault, workspace, boards=["555"])
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    got = tasks(db, workspace)
    assert set(got) == {"701", "7011", "7012"}
    pack = got["7011"]
    assert pack["project"] == "Onboarding" and pack["custom_fields"] == {"group": "Subitems", "parent_item": "701"}
    assert pack["status"] == "Done" and pack["completed_at"] == datetime(2026, 5, 2, 10, tzinfo=timezone.utc)
    assert pack["source_data"]["board"] == {"id": "556", "name": "Subitems of Onboarding"}
    assert "parent_item" not in got["701"]["custom_fields"]
    [meta] = rows(db, workspace, "SELECT metadata FROM connections WHERE workspace_id = %s")
    assert [(b["id"], b.get("parent_board")) for b in meta["metadata"]["board_info"]] == [
        ("555", None), ("556", {"id": "555", "name": "Onboarding"})]

    def deals():
        return {r["source_id"]: r["deal"] for r in rows(
            db, workspace, "SELECT t.source_id, d.source_id AS deal FROM tasks t LEFT JOIN deals d"
                           " ON d.workspace_id = t.workspace_id AND d.id = t.deal_id WHERE t.workspace_id = %s")}

    assert deals() == {"701": "9001", "7011": "9001", "7012": "9002"}
    monday.update_item("701", cells=[cell("deal", "text", "Initech pilot", "Initech pilot")])
    monday.delete_item("7012")
    monday.delete_item("7011", logged_on="555")  # logged on the parent board: still read with its own columns
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert deals() == {"701": "9002", "7011": "9002", "7012": "9002"}
    got = tasks(db, workspace)
    assert got["7012"]["deleted_at"] is not None and got["7011"]["deleted_at"] is not None
    assert got["7011"]["status"] == "Done" and got["7011"]["custom_fields"] == pack["custom_fields"]


def test_bad_column_json_is_kept_as_text_and_never_fails_the_sync(db, vault, workspace, connector, monday, engine):
    monday.add_item(BOARD, "Odd cells", [cell("status", "status", "Blocked", raw="{not json"),
                                         cell("date4", "date", "someday", {"date": "someday"}),
                                         cell("numbers", "numbers", "n/a", raw='"n/a"')], item_id="801")
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    odd = tasks(db, workspace)["801"]
    assert odd["status"] is None and odd["due_date"] is None
    assert odd["custom_fields"]["Status"] == "Blocked" and odd["custom_fields"]["Due date"] == "someday"
    assert odd["custom_fields"]["Amount"] == "n/a"
    assert sorted(odd["custom_fields"]["unparsed_columns"]) == ["Amount", "Due date", "Status"]


def test_every_active_board_is_synced_when_none_is_chosen(db, vault, workspace, connector, monday, engine):
    monday.add_board("601", "Second board")
    monday.add_board("602", "Old board", state="archived")
    monday.add_board("603", "Subitems of Second", kind="sub_items_board")
    monday.add_item("601", "Second board task", item_id="611")
    monday.add_item("602", "Archived board task", item_id="612")
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    assert set(tasks(db, workspace)) == FIXTURE_IDS | {"611"}
    board_pages = [r["variables"]["page"] for r in monday.requests if "boards(ids: $ids" in r["query"]]
    assert board_pages == [1, 2]  # three active boards, two per page


def test_the_post_sync_pipeline_runs_after_the_sync(db, vault, workspace, connector, monday, engine):
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "monday")
    assert report.status == "succeeded", report.error
    names = [s["name"] for s in report.steps]
    assert "resolve_references" in names and "monday_task_deals" in names and "computed_deals" in names
    [log] = rows(db, workspace, "SELECT status, steps FROM sync_log WHERE workspace_id = %s")
    assert log["status"] == "succeeded" and len(log["steps"]) == len(report.steps)


def test_check_auth_and_board_list(connector, monday):
    with connector.client({"api_token": "monday-test-token"}, {}) as client:
        account = connector.check_auth(client)
        monday.add_board("602", "Old board", state="archived")
        boards = connector.list_boards(client)
    assert account["user_email"] == "Jon.Snow@example.com" and account["account_slug"] == "example-team"
    assert boards == [{"id": BOARD, "name": "Deal desk tasks", "state": "active"}]
