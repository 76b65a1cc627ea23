"""REST reads and actions over a real synthetic workspace (Demo Co, written through the one upsert path): the
seven query modules with filters and paging, single records, conversations without deals, relink, and
running a skill synchronously."""
from __future__ import annotations

from datetime import date

import pytest

from core.synthetic import generate, write_dataset
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace

ENTITIES = ("deals", "contacts", "accounts", "activities", "conversations", "tasks", "documents")


@pytest.fixture(scope="module")
def demo(module_db, module_settings):
    """One Demo Co workspace for the module (read-mostly tests) and a client with its key."""
    ws = new_workspace(module_db, "Demo")
    write_dataset(module_db, ws, generate(seed=7, scale=1, today=date.today()))  # CWD looks back from now
    client, jobs = make_client(module_db, module_settings)
    with client:
        yield Api(client, ws, new_key(module_db, ws), jobs)
    jobs.join()


@pytest.mark.parametrize("entity", ENTITIES)
def test_each_entity_lists_a_page_and_fetches_one_record(demo, entity):
    r = demo.get(f"/{entity}", limit=5)
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 5 and page["total"] > 5 and page["limit"] == 5 and page["next_cursor"]
    first = page["items"][0]
    one = demo.get(f"/{entity}/{first['id']}")
    assert one.status_code == 200 and one.json()["id"] == first["id"]


def test_cursor_paging_walks_every_deal_once(demo):
    seen, cursor = [], None
    total = demo.get("/deals", limit=1).json()["total"]
    while True:
        params = {"limit": 150, "sort": "amount"} | ({"cursor": cursor} if cursor else {})
        page = demo.get("/deals", **params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == total


def test_offset_paging_and_repeated_filters(demo):
    everything = demo.get("/deals", stage=["evaluation", "decision"], limit=500).json()
    assert everything["items"] and {d["stage_normalized"] for d in everything["items"]} <= {"evaluation", "decision"}
    second = demo.get("/deals", stage=["evaluation", "decision"], limit=3, offset=3).json()
    assert [d["id"] for d in second["items"]] == [d["id"] for d in everything["items"][3:6]]
    assert second["total"] == everything["total"]


def test_filters_narrow_the_list(demo):
    big = demo.get("/deals", amount_min="50000", limit=500).json()["items"]
    assert big and all(d["amount"] >= 50000 for d in big)
    internal = demo.get("/conversations", internal="true", limit=500).json()["items"]
    assert internal and all(c["is_internal"] for c in internal)


def test_a_deal_comes_with_its_account_and_contacts(demo):
    deal = next(d for d in demo.get("/deals", has_account="true", limit=50).json()["items"])
    full = demo.get(f"/deals/{deal['id']}").json()
    assert full["account"]["id"] == deal["account_id"] and isinstance(full["contacts"], list)


@pytest.mark.parametrize("params, field", [
    ({"no_such_filter": "1"}, "no_such_filter"),
    ({"amount_min": "lots"}, "amount_min"),
    ({"limit": "0"}, "limit"),
    ({"cursor": "forged"}, "cursor"),
    ({"sort": "colour"}, "sort"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(demo, params, field):
    r = demo.get("/deals", **params)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == field


def test_a_missing_record_is_404(demo):
    r = demo.get("/deals/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_conversations_without_deals(demo):
    r = demo.get("/conversations-without-deals", limit=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] > 0 and len(body["items"]) <= 5
    assert {"conversation", "severity", "account", "rep"} <= set(body["items"][0])
    high = demo.get("/conversations-without-deals", severity="high", limit=500).json()
    assert all(i["severity"] == "high" for i in high["items"]) and high["total"] == body["summary"]["high"]
    assert demo.get("/conversations-without-deals", severity="urgent").status_code == 400
    assert demo.get("/conversations-without-deals", days="soon").json()["error"]["field"] == "days"


def test_relink_runs_the_full_pipeline_and_reports_each_step(demo):
    r = demo.post("/import/relink")
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    names = [s["name"] for s in steps]
    assert "link_entities" in names or any("link" in n for n in names)
    assert all({"name", "ms", "changed"} <= set(s) for s in steps)
    assert r.json()["changed"] == 0  # the data was already linked by the writer's run: nothing to change


def test_running_a_skill_returns_its_result(demo, module_db):
    r = demo.post("/skills/hygiene/run", {"params": {}})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["skill"] == "pipeline-hygiene" and result["headline"] and result["run_id"]
    with module_db.connection() as conn:
        run = conn.execute("SELECT trigger, status FROM skill_runs WHERE workspace_id = %s AND id = %s",
                           (demo.workspace_id, result["run_id"])).fetchone()
    assert run == {"trigger": "api", "status": "succeeded"}


def test_an_unknown_skill_is_404_and_a_bad_parameter_400(demo):
    r = demo.post("/skills/astrology/run", {})
    assert r.status_code == 404 and "try one of" in r.json()["error"]["message"]
    r = demo.post("/skills/hygiene/run", {"params": {"zodiac": "leo"}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "zodiac"
    r = demo.post("/skills/hygiene/run", {"params": [], "extra": 1})
    assert r.status_code == 400


def test_an_empty_workspace_lists_nothing(module_db, demo):
    other = new_workspace(module_db, "Empty")
    api = Api(demo.client, other, new_key(module_db, other), demo.jobs)
    for entity in ENTITIES:
        page = api.get(f"/{entity}").json()
        assert page["items"] == [] and page["total"] == 0
