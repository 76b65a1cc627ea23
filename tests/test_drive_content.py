"""Document text on demand against the fake Drive: Docs/Slides exported as text, Sheets as CSV, text files
downloaded, the cache and when it goes stale, and the typed failures (export too large, not text, gone)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.google_drive.content import ExportTooLarge, FileGone, NotText, fetch_content
from core.errors import NotFound
from tests.test_drive_support import (  # noqa: F401 (fixtures)
    connected, connection, connector, documents, drive, engine, workspace,
)


@pytest.fixture
def synced(engine, connected, drive):
    report = engine.run(connected["id"], "google_drive")
    assert report.status == "succeeded", report.error
    return connected


def doc_id(db, ws, title):
    return documents(db, ws)[title]["id"]


def content_requests(drive):
    return [(p, q) for _m, p, q in drive.log if p.endswith("/export") or q.get("alt") == "media"]


def fetch(engine, ws, title, **kwargs):
    return fetch_content(engine.db, engine.vault, ws["id"], doc_id(engine.db, ws, title), **kwargs)


def test_a_google_doc_is_exported_as_text_and_cached(engine, synced, drive):
    got = fetch(engine, synced, "Acme Corp Proposal")
    assert got.text == "Proposal for Acme: 120 seats." and not got.cached
    assert content_requests(drive) == [(f"/drive/v3/files/{drive.seed.proposal}/export", {"mimeType": "text/plain"})]
    stored = documents(engine.db, synced)["Acme Corp Proposal"]
    assert stored["content"] == got.text and stored["content_fetched_at"] == got.fetched_at
    again = fetch(engine, synced, "Acme Corp Proposal")
    assert again.cached and again.text == got.text and len(content_requests(drive)) == 1


def test_sheets_export_as_csv_slides_as_text_and_text_files_download(engine, synced, drive):
    assert fetch(engine, synced, "Globex pricing").text == "seats,price\n50,30000\n"
    assert fetch(engine, synced, "Kickoff deck").text == "Slide 1: Welcome Acme"
    assert fetch(engine, synced, "territories.csv").text == "region,rep\nEMEA,Jon\n"
    assert [q for _p, q in content_requests(drive)] == [
        {"mimeType": "text/csv"}, {"mimeType": "text/plain"}, {"alt": "media", "supportsAllDrives": "true"}]


def test_content_is_fetched_again_after_the_file_changed(engine, synced, drive):
    fetch(engine, synced, "Acme Corp Proposal")
    drive.modify(drive.seed.proposal, content="Proposal v2: 150 seats.")
    assert fetch(engine, synced, "Acme Corp Proposal").cached        # the sync has not seen the change yet
    engine.run(synced["id"], "google_drive")
    got = fetch(engine, synced, "Acme Corp Proposal")
    assert not got.cached and got.text == "Proposal v2: 150 seats."


def test_content_older_than_max_age_is_fetched_again(engine, synced, drive):
    first = fetch(engine, synced, "Acme Corp Proposal")
    later = fetch(engine, synced, "Acme Corp Proposal", now=first.fetched_at + timedelta(days=8))
    assert not later.cached and len(content_requests(drive)) == 2
    assert fetch(engine, synced, "Acme Corp Proposal", max_age=timedelta(days=30),
                 now=first.fetched_at + timedelta(days=9)).cached


def test_an_export_over_drives_size_cap_is_a_typed_error_and_caches_nothing(engine, synced, drive):
    drive.export_limit = 10
    with pytest.raises(ExportTooLarge) as err:
        fetch(engine, synced, "Acme Corp Proposal")
    assert "'Acme Corp Proposal' is too large" in err.value.message and err.value.code == "export_too_large"
    assert documents(engine.db, synced)["Acme Corp Proposal"]["content"] is None


def test_binary_files_are_not_available_as_text_and_cost_no_request(engine, synced, drive):
    with pytest.raises(NotText) as err:
        fetch(engine, synced, "Acme MSA.pdf")
    assert "'Acme MSA.pdf'" in err.value.message and "isn't available as text" in err.value.message
    assert content_requests(drive) == []


def test_a_file_gone_from_drive_is_a_typed_error(engine, synced, drive):
    drive.delete(drive.seed.proposal)
    with pytest.raises(FileGone) as err:
        fetch(engine, synced, "Acme Corp Proposal")
    assert "'Acme Corp Proposal' is no longer in Google Drive" in err.value.message


def test_an_unknown_document_is_not_found(engine, synced):
    with pytest.raises(NotFound):
        fetch_content(engine.db, engine.vault, synced["id"], "00000000-0000-0000-0000-000000000000")


def test_an_expired_token_is_refreshed_and_stored_while_fetching(engine, synced, drive):
    old = connection(engine.db, engine.vault, synced)["credentials"]
    drive.expire(old["access_token"])
    assert fetch(engine, synced, "Acme Corp Proposal").text.startswith("Proposal for Acme")
    assert connection(engine.db, engine.vault, synced)["credentials"]["access_token"] in drive.tokens
