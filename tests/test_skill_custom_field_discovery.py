"""custom-field-discovery on a tiny won/lost set; every expected figure is worked out by hand.

Deals (11 live + 1 deleted), custom field `segment`:
  won  D1 SMB 10k, D2 SMB 10k, D3 SMB 10k, D4 Ent 30k      lost D5 SMB 10k, D6 Ent 30k, D7 Ent 30k, D8 Ent 30k
  open D9 Ent; D10 won with segment ''; D11 lost without segment; D12 deleted, won SMB (never counts).
  Filled 9 of 11. Among won deals with a segment (4): SMB 3, Ent 1; among lost (4): SMB 1, Ent 3.
Accounts: acc1 tier T1 (D1, D2 won), acc2 tier T2 (D5, D6 lost), acc3 tier T1 (D7 lost).
Contacts (linked to deals by name): c1 econ (D1 won, D5 lost), c2 tech (D2 won), c3 econ (D6 lost).
Leads converted into deals: L1 webinar → D1 won, L2 webinar → D5 lost, L3 ads → D2 won; L4 ads unconverted.
"""
from __future__ import annotations

from functools import partial
from statistics import pstdev

import pytest

from core.pipeline import run_post_sync
from skills import registry
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="csv_import")
new_workspace = partial(support.new_workspace_id, label="Fields")

SEGMENTS = {"D1": ("closed_won", "SMB", 10000), "D2": ("closed_won", "SMB", 10000), "D3": ("closed_won", "SMB", 10000),
            "D4": ("closed_won", "Ent", 30000), "D5": ("closed_lost", "SMB", 10000),
            "D6": ("closed_lost", "Ent", 30000), "D7": ("closed_lost", "Ent", 30000),
            "D8": ("closed_lost", "Ent", 30000), "D9": ("evaluation", "Ent", 30000),
            "D10": ("closed_won", "", 5000), "D11": ("closed_lost", None, 5000)}
ACCOUNT_OF = {"D1": "acc1", "D2": "acc1", "D5": "acc2", "D6": "acc2", "D7": "acc3"}


@pytest.fixture(scope="module")
def result(module_db, module_settings):
    db, ws = module_db, new_workspace(module_db)
    write(db, ws, "accounts", [{"source_id": "acc1", "name": "One", "custom_fields": {"tier": "T1"}},
                               {"source_id": "acc2", "name": "Two", "custom_fields": {"tier": "T2"}},
                               {"source_id": "acc3", "name": "Three", "custom_fields": {"tier": "T1"}}])
    deals = []
    for i, (sid, (stage, segment, amount)) in enumerate(SEGMENTS.items()):
        custom = {"pipeline_type": "new", "hs_object_id": str(1000 + i)}
        if segment is not None:
            custom["segment"] = segment
        if sid in ("D1", "D2"):
            custom["notes_flag"] = "yes"
        deals.append({"source_id": sid, "name": sid, "stage_normalized": stage, "amount": amount,
                      "account_source_id": ACCOUNT_OF.get(sid), "custom_fields": custom})
    deals.append({"source_id": "D12", "name": "D12", "stage_normalized": "closed_won", "amount": 10000,
                  "custom_fields": {"segment": "SMB"}, "deleted_at": "2026-01-01T00:00:00Z"})
    write(db, ws, "deals", deals)
    write(db, ws, "contacts", [
        {"source_id": "c1", "email": "c1@x.io", "custom_fields": {"buyer_type": "econ", "associated_deals": ["D1", "D5"]}},
        {"source_id": "c2", "email": "c2@x.io", "custom_fields": {"buyer_type": "tech", "associated_deals": ["D2"]}},
        {"source_id": "c3", "email": "c3@x.io", "custom_fields": {"buyer_type": "econ", "associated_deals": ["D6"]}}])
    write(db, ws, "leads", [
        {"source_id": "L1", "is_converted": True, "converted_deal_source_id": "D1", "custom_fields": {"campaign": "webinar"}},
        {"source_id": "L2", "is_converted": True, "converted_deal_source_id": "D5", "custom_fields": {"campaign": "webinar"}},
        {"source_id": "L3", "is_converted": True, "converted_deal_source_id": "D2", "custom_fields": {"campaign": "ads"}},
        {"source_id": "L4", "custom_fields": {"campaign": "ads"}}])
    run_post_sync(db, ws)
    return run_skill(db, module_settings, ws, "custom-field-discovery")


def field(result, entity, key):
    return next(f for f in result.data["fields"] if (f["entity"], f["key"]) == (entity, key))


def by_value(f):
    return {v["value"]: v for v in f["values"]}


def test_fill_rate_and_cardinality_count_live_records_with_a_value(result):
    segment = field(result, "deals", "segment")
    assert (segment["records"], segment["filled"], segment["cardinality"]) == (11, 9, 2)
    assert segment["fill_rate"] == pytest.approx(9 / 11)
    assert (segment["won"], segment["lost"]) == (4, 4)


def test_deal_lift_is_won_share_over_lost_share(result):
    values = by_value(field(result, "deals", "segment"))
    assert values["SMB"]["lift"] == pytest.approx((3 / 4) / (1 / 4))
    assert values["Ent"]["lift"] == pytest.approx((1 / 4) / (3 / 4))
    assert values["SMB"]["win_rate"] == pytest.approx(3 / 4) and values["Ent"]["win_rate"] == pytest.approx(1 / 4)


def test_relevance_score_follows_the_original_formula(result):
    segment = field(result, "deals", "segment")
    cv = pstdev([10000, 30000]) / 20000
    assert segment["win_rate_spread"] == pytest.approx(0.5)
    assert segment["amount_cv"] == pytest.approx(cv)
    # fill min(20, 0.818 × 25) + spread min(40, 0.5 × 150) + 2 values 10 + 8 sampled deals 0 + min(10, cv × 20)
    assert segment["score"] == pytest.approx(20 + 40 + 10 + 0 + min(10, cv * 20))
    assert [(f["entity"], f["key"]) for f in result.data["top"]] == [("deals", "segment")]


def test_accounts_contacts_and_leads_get_lift_through_their_deals(result):
    tier = by_value(field(result, "accounts", "tier"))
    assert (tier["T1"]["won"], tier["T1"]["lost"], tier["T2"]["won"], tier["T2"]["lost"]) == (2, 1, 0, 2)
    assert tier["T1"]["lift"] == pytest.approx((2 / 2) / (1 / 3)) and tier["T2"]["lift"] == 0
    assert field(result, "accounts", "tier")["score"] == pytest.approx(min(20, 1.0 * 25) + 0 + 10 + 0 + 0)
    buyer = by_value(field(result, "contacts", "buyer_type"))
    assert buyer["econ"]["lift"] == pytest.approx((1 / 2) / (2 / 2))
    assert buyer["tech"]["lift"] is None and buyer["tech"]["won"] == 1       # won only
    campaign = by_value(field(result, "leads", "campaign"))
    assert campaign["webinar"]["lift"] == pytest.approx((1 / 2) / (1 / 1))
    assert campaign["ads"]["lift"] is None


def test_low_fill_constant_and_system_keys_are_not_candidates(result):
    assert field(result, "deals", "notes_flag")["filtered_reason"] == "fill rate 18% < 40%"
    assert field(result, "deals", "pipeline_type")["filtered_reason"] == "a single value"
    assert field(result, "deals", "hs_object_id")["filtered_reason"] == "system field (id or timestamp)"
    assert not any(f["key"] == "associated_deals" for f in result.data["fields"])  # arrays are not values


def test_result_is_compute_only_with_ranked_table_and_evidence(result):
    assert registry.get("custom-field-discovery").compute_only
    assert result.headline == "Custom fields: 1 of 7 look ICP-relevant; best deals.segment (score 80)"
    assert result.metric("candidates").value == 4
    assert result.tables[0].rows[0][:2] == ["deals.segment", "80"]
    [evidence] = result.evidence
    assert evidence.claim == "deals.segment = SMB: won deals" and len(evidence.ids) == 3
    assert not result.ai_written and "compute-only" in result.sections[0].text
