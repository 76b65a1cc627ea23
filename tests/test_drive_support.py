"""Shared setup for the Google Drive tests (no tests of its own): a seeded fake Drive, the connector registered
against it, a connected workspace, and readers for what a sync stored.

The seeded Drive ("ids" in `Seed`):
  Sales (chosen, the fixtures' parent id)            Q2 Pipeline Review (Google Doc), territories.csv
    Customers / Acme Corp                            Acme Corp Proposal (Doc), Acme MSA.pdf, Kickoff deck (Slides)
    Customers / Globex                               Globex pricing (Sheet)
  Personal (not chosen)                              vacation.txt
  shared drive "Deals Room" (chosen) / Initech       Initech Order Form (Doc)
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from connectors.google_drive.connector import GoogleDriveConnector
from core.connections import get_connection, save_connection
from core.credentials import Vault
from core.sync import registry
from core.sync.orchestrator import SyncEngine
from tests.fakes.drive_api import APP_ID, APP_SECRET, DOC, SHEET, SLIDES, FakeDrive, load
from tests.support import new_workspace, rows

ROOT = "0AExampleFolderId"
FAST = {"per_second": 1000, "attempts": 4}


@dataclass
class Seed:
    customers: str
    acme: str
    globex: str
    personal: str
    drive: str
    initech: str
    review: str
    territories: str
    proposal: str
    msa: str
    deck: str
    pricing: str
    vacation: str
    order_form: str


def seed(fake: FakeDrive) -> Seed:
    fake.add_folder("Sales", None, folder_id=ROOT)
    review = fake.add_fixture_file(load("files_list_page1_CONSTRUCTED.json")["files"][0], ROOT,
                                   "Q2 pipeline: 14 deals, $2.1M.")
    territories = fake.add_fixture_file(load("files_list_last_page_CONSTRUCTED.json")["files"][0], ROOT,
                                        "region,rep\nEMEA,Jon\n")
    customers = fake.add_folder("Customers", ROOT)
    acme = fake.add_folder("Acme Corp", customers)
    globex = fake.add_folder("Globex", customers)
    proposal = fake.add_file("Acme Corp Proposal", acme, content="Proposal for Acme: 120 seats.")
    msa = fake.add_file("Acme MSA.pdf", acme, mime="application/pdf", content=b"%PDF-1.7 binary")
    deck = fake.add_file("Kickoff deck", acme, mime=SLIDES, content="Slide 1: Welcome Acme")
    pricing = fake.add_file("Globex pricing", globex, mime=SHEET, content="seats,price\n50,30000\n")
    personal = fake.add_folder("Personal", None)
    vacation = fake.add_file("vacation.txt", personal, mime="text/plain", content="beach")
    drive = fake.add_drive("Deals Room")
    initech = fake.add_folder("Initech", drive)
    order_form = fake.add_file("Initech Order Form", initech, content="Order form: Initech, 40 seats")
    return Seed(customers, acme, globex, personal, drive, initech, review, territories, proposal, msa, deck,
                pricing, vacation, order_form)


@pytest.fixture
def drive():
    with FakeDrive() as fake:
        fake.seed = seed(fake)
        yield fake


@pytest.fixture
def connector(drive):
    from connectors import load_all

    load_all()
    c = GoogleDriveConnector(drive.url, token_url=f"{drive.url}/token", page_size=2)
    with registry.registered(c):
        yield c


def credentials(drive: FakeDrive) -> dict:
    token = drive.issue_tokens()
    return {"access_token": token["access_token"], "refresh_token": token["refresh_token"],
            "expires_at": 1_800_000_000, "client_id": APP_ID, "client_secret": APP_SECRET}


def connect(db, vault, ws, drive: FakeDrive, creds: dict | None = None, **metadata) -> dict:
    creds = creds or credentials(drive)
    meta = {"folders": [ROOT], "shared_drives": [drive.seed.drive], "rate_limit": FAST, **metadata}
    with db.connection() as conn:
        save_connection(conn, vault, ws["id"], "google_drive", creds, metadata=meta)
    return creds


@pytest.fixture
def engine(module_db, module_settings, sleeps):
    """A sync engine over one database per test module (each test works in a workspace of its own)."""
    return SyncEngine(module_db, Vault.from_settings(module_settings), sleep=sleeps.append)


@pytest.fixture
def workspace(engine):
    return new_workspace(engine.db, "Drive")


@pytest.fixture
def connected(engine, workspace, drive, connector):
    connect(engine.db, engine.vault, workspace, drive)
    return workspace


def documents(db, ws) -> dict[str, dict]:
    """Drive rows by title."""
    return {r["title"]: r for r in rows(db, ws, "SELECT * FROM documents WHERE workspace_id = %s"
                                                " AND source = 'google_drive'")}


def connection(db, vault, ws) -> dict:
    with db.connection() as conn:
        row = get_connection(conn, ws["id"], "google_drive")
    return {**row, "credentials": vault.decrypt(row["credentials"])}


def listing_requests(drive: FakeDrive) -> list[dict]:
    """files.list requests for files (not the folder walk)."""
    return [q for q in drive.requests_to("/drive/v3/files") if "mimeType != " in q.get("q", "")]


__all__ = ["DOC", "SHEET", "SLIDES"]
