"""Shared setup for the HubSpot tests: a seeded fake portal, a connected workspace and the sync engine.

The portal holds the fixture records (../shared/fixtures/hubspot) plus what the fixtures lack: associations,
custom properties, stage-history dates and one engagement of each kind."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.hubspot.connector import HubSpotConnector
from core.connections import save_connection
from core.sync import registry
from tests.fakes.hubspot_api import FIXTURES, FakeHubSpot, Portal, record
from tests.support import rows

TOKEN = "pat-na1-portal-one"
BASE = datetime(2025, 6, 1, tzinfo=timezone.utc)
FAST = {"per_10s": 100_000, "search_per_second": 100_000}   # tests don't wait on the rate limiters


def fixture(name: str) -> dict:
    with open(f"{FIXTURES}/{name}") as fh:
        return json.load(fh)


def seed_portal(portal: Portal) -> Portal:
    for object_type, files in {
        "deals": ("deals_list_page1_CONSTRUCTED.json", "deals_list_page2_last_CONSTRUCTED.json"),
        "contacts": ("contacts_list_page1_CONSTRUCTED.json", "contacts_list_page2_last_CONSTRUCTED.json"),
        "companies": ("companies_list_page1_CONSTRUCTED.json", "companies_list_page2_last_CONSTRUCTED.json"),
    }.items():
        for name in files:
            for rec in fixture(name)["results"]:
                portal.store(object_type).put(rec)
    deal = portal.store("deals").get(19171005526)["properties"]
    deal.update({"renewal_risk": "42.5", "is_strategic": "true", "regions": "emea;apac", "hs_is_closed": "false",
                 "hs_v2_date_entered_appointmentscheduled": "2026-01-12T15:04:11.231Z"})
    won = portal.store("deals").get(19171005528)["properties"]
    won.update({"hs_is_closed": "true", "hs_is_closed_won": "true",
                "hs_v2_date_entered_appointmentscheduled": "2025-12-01T12:00:00.000Z",
                "hs_v2_date_exited_appointmentscheduled": "2026-01-05T12:00:00.000Z",
                "hs_v2_date_entered_closedwon": "2026-03-15T10:11:12.131Z"})
    portal.properties["deals"] += [
        {"name": "renewal_risk", "type": "number", "hubspotDefined": False},
        {"name": "is_strategic", "type": "bool"},
        {"name": "regions", "type": "enumeration"},
        {"name": "dealname", "type": "string", "hubspotDefined": True},
    ]
    decision_maker = [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None},
                      {"category": "USER_DEFINED", "typeId": 37, "label": "Decision maker"}]
    portal.associations[("deals", "contacts")] = {
        "19171005526": [("100451", None), ("100452", decision_maker)],
        "19171005527": [("100453", None)],
    }
    primary = [{"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}]
    portal.associations[("deals", "companies")] = {
        "19171005526": [("5000526216", None), ("5000526215", primary)],
        "19171005527": [("5000526216", None)],
    }
    when = BASE
    engagements = {
        "calls": record(7001, "calls", when, hs_call_title="Discovery call", hs_call_direction="OUTBOUND",
                        hs_call_duration="95000", hs_timestamp=when.isoformat(), hubspot_owner_id="6166860",
                        hs_call_disposition="connected"),
        "meetings": record(7002, "meetings", when, hs_meeting_title="Demo", hs_timestamp=when.isoformat(),
                           hs_meeting_start_time="2025-06-01T10:00:00Z", hs_meeting_end_time="2025-06-01T10:45:00Z"),
        "emails": record(7003, "emails", when, hs_email_subject="Pricing", hs_email_direction="INCOMING_EMAIL",
                         hs_timestamp=when.isoformat()),
        "notes": record(7004, "notes", when, hs_note_body="Champion is Ada", hs_timestamp=when.isoformat()),
        "tasks": record(7005, "tasks", when, hs_task_subject="Send contract", hs_task_status="NOT_STARTED",
                        hs_task_priority="HIGH", hs_timestamp="2025-06-10T00:00:00Z"),
    }
    for object_type, rec in engagements.items():
        portal.store(object_type).put(rec)
        portal.associations[(object_type, "deals")] = {rec["id"]: [("19171005526", None)]}
        portal.associations[(object_type, "contacts")] = {rec["id"]: [("100452", None)]}
    return portal


@pytest.fixture
def hubspot():
    with FakeHubSpot() as fake:
        seed_portal(fake.add_portal(2431623, TOKEN))
        yield fake


@pytest.fixture
def connector(hubspot):
    from connectors import load_all

    load_all()  # first, so a later load_all (the sidecar's) cannot replace the fake-pointed connector
    c = HubSpotConnector(hubspot.url, list_page=2, search_page=3)
    with registry.registered(c):
        yield c


def connect(db, vault, workspace_id, credentials: dict | None = None, **metadata) -> None:
    with db.connection() as conn:
        save_connection(conn, vault, workspace_id, "hubspot", credentials or {"access_token": TOKEN},
                        metadata={"rate_limit": FAST, **metadata})


@pytest.fixture
def connected(db, vault, workspace, hubspot, connector):
    connect(db, vault, workspace["id"])
    return workspace


def later(minutes: int = 0) -> datetime:
    """A modification time after the fixtures' and before now (the list walk's cursor ceiling)."""
    return datetime.now(timezone.utc) - timedelta(hours=2) + timedelta(minutes=minutes)
