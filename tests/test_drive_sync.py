"""Google Drive sync against the fake Drive: the first listing (subfolders, shared drives, paging, folder paths,
native files without size), the start token taken before it, the change feed (new, modified, trashed, removed,
moved out, restored, paging), an expired page token, folder changes, token refresh, rate limits, kill-and-resume
and the post-sync pipeline."""
from __future__ import annotations

from datetime import datetime, timezone

from core.connections import update_metadata
from core.sync.orchestrator import SyncEngine
from tests.fakes.drive_api import SHEET
from tests.test_drive_support import (  # noqa: F401 (fixtures)
    FAST, ROOT, connect, connected, connection, connector, documents, drive, engine, listing_requests, rows,
    workspace,
)
from tests.support import kill_sync_when

FIRST_SYNC = {"Q2 Pipeline Review", "territories.csv", "Acme Corp Proposal", "Acme MSA.pdf", "Kickoff deck",
              "Globex pricing", "Initech Order Form"}


def run(engine, ws, **kwargs):
    report = engine.run(ws["id"], "google_drive", **kwargs)
    assert report.status == "succeeded", report.error
    return report


def cursors(db, ws) -> dict:
    return rows(db, ws, "SELECT sync_cursors FROM connections WHERE workspace_id = %s")[0]["sync_cursors"]


def live(db, ws) -> set[str]:
    return {t for t, r in documents(db, ws).items() if r["deleted_at"] is None}


def test_first_sync_lists_the_chosen_folders_subfolders_and_shared_drive(engine, connected, drive):
    report = run(engine, connected)
    docs = documents(engine.db, connected)
    assert set(docs) == FIRST_SYNC                                  # nothing from Personal, no folders
    assert docs["Acme Corp Proposal"]["folder_path"] == "/Sales/Customers/Acme Corp"
    assert docs["Q2 Pipeline Review"]["folder_path"] == "/Sales"
    assert docs["Initech Order Form"]["folder_path"] == "/Deals Room/Initech"
    review = docs["Q2 Pipeline Review"]
    assert review["size_bytes"] is None and review["mime_type"] == "application/vnd.google-apps.document"
    assert review["owner"] == "Jon Snow" and review["owner_email"] == "jon.snow@example.com"
    assert review["url"].startswith("https://docs.google.com/document/d/1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789")
    assert review["source_id"] == "1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    assert review["source_updated_at"] == datetime(2026, 5, 1, 7, 25, 37, 512000, tzinfo=timezone.utc)
    assert review["source_created_at"] == datetime(2026, 4, 2, 10, 0, tzinfo=timezone.utc)
    assert review["source_data"]["webViewLink"] == review["url"] and "_scope" not in review["source_data"]
    assert docs["territories.csv"]["size_bytes"] == 20431                 # the size Drive reports
    assert {t: d["doc_type"] for t, d in docs.items()} == {
        "Q2 Pipeline Review": "other", "territories.csv": "other", "Acme Corp Proposal": "proposal",
        "Acme MSA.pdf": "contract", "Kickoff deck": "deck", "Globex pricing": "proposal",
        "Initech Order Form": "contract"}
    assert report.counts["documents"]["inserted"] == 7


def test_listing_pages_through_files_list_and_reads_the_shared_drive_as_a_drive(engine, connected, drive):
    run(engine, connected)
    listed = listing_requests(drive)
    sales = [q for q in listed if q["q"].startswith(f"'{ROOT}' in parents")]
    assert len(sales) == 1 and sales[0]["pageSize"] == "2"
    acme = [q for q in listed if q["q"].startswith(f"'{drive.seed.acme}' in parents")]
    assert len(acme) == 2 and "pageToken" not in acme[0] and acme[1]["pageToken"].startswith("~!!~")
    assert all(q["q"].endswith("trashed = false and mimeType != 'application/vnd.google-apps.folder'")
               for q in listed)
    [room] = [q for q in listed if q.get("corpora") == "drive"]
    assert room["driveId"] == drive.seed.drive and room["includeItemsFromAllDrives"] == "true"
    assert room["supportsAllDrives"] == "true"


def test_the_start_token_is_taken_before_the_listing_and_its_changes_are_applied(engine, connected, drive):
    added = []

    def add_after_listing_began(method, path, query):
        if query.get("q", "").startswith(f"'{drive.seed.acme}' in parents") and not added:   # Sales is listed
            added.append(drive.add_file("Late Sales note", ROOT, content="added while listing"))
        return False
    drive.block = add_after_listing_began
    run(engine, connected)
    log = [(p, q) for _m, p, q in drive.log]
    token_at = next(i for i, (p, _q) in enumerate(log) if p == "/drive/v3/changes/startPageToken")
    first_list = next(i for i, (p, q) in enumerate(log) if "mimeType != " in q.get("q", ""))
    assert token_at < first_list
    assert "Late Sales note" in documents(engine.db, connected)     # listed after Sales, found by the feed
    saved = cursors(engine.db, connected)["changes"]["cursor"]
    assert saved["token"] == str(drive.next_change)


def test_changes_feed_applies_new_modified_trashed_removed_and_moved_out_files(engine, connected, drive):
    run(engine, connected)
    s = drive.seed
    drive.log.clear()
    drive.add_file("Acme renewal notes", s.acme, content="renewal")
    drive.modify(s.proposal, name="Acme Corp Proposal v2")
    drive.trash(s.deck)
    drive.delete(s.msa)
    drive.move(s.pricing, s.personal)
    drive.modify(s.vacation, name="vacation 2026.txt")              # outside the chosen folders
    outside = drive.add_file("Someone else's doc", None)
    drive.delete(outside)                                           # removed, never stored
    report = run(engine, connected)
    assert listing_requests(drive) == []                            # no listing, only the feed
    docs = documents(engine.db, connected)
    assert live(engine.db, connected) == {"Q2 Pipeline Review", "territories.csv", "Acme Corp Proposal v2",
                                          "Initech Order Form", "Acme renewal notes"}
    assert docs["Acme renewal notes"]["folder_path"] == "/Sales/Customers/Acme Corp"
    for gone in ("Kickoff deck", "Acme MSA.pdf", "Globex pricing"):   # kept with their data, marked deleted
        assert docs[gone]["deleted_at"] is not None and docs[gone]["url"]
    assert not {"vacation 2026.txt", "vacation.txt", "Someone else's doc"} & set(docs)
    assert len(docs) == 8
    assert report.counts["documents"]["deleted"] == 3


def test_a_file_restored_from_the_trash_or_moved_back_comes_back(engine, connected, drive):
    run(engine, connected)
    s = drive.seed
    drive.trash(s.deck)
    drive.move(s.pricing, s.personal)
    run(engine, connected)
    assert not {"Kickoff deck", "Globex pricing"} & live(engine.db, connected)
    drive.modify(s.deck, trashed=False)
    drive.move(s.pricing, s.globex)
    run(engine, connected)
    assert {"Kickoff deck", "Globex pricing"} <= live(engine.db, connected)


def test_the_feed_follows_next_page_token_and_stores_the_last_pages_new_start_token(engine, connected, drive):
    run(engine, connected)
    start = cursors(engine.db, connected)["changes"]["cursor"]["token"]
    for n in range(5):
        drive.add_file(f"Note {n}", drive.seed.acme)
    drive.log.clear()
    run(engine, connected)
    feed = [q for q in drive.requests_to("/drive/v3/changes") if q.get("fields", "").startswith("nextPageToken,new")
            and q.get("pageSize") == "2"]
    assert [q["pageToken"] for q in feed][0] == start and len(feed) == 3
    assert feed[1]["pageToken"] != start and feed[0]["includeRemoved"] == "true"
    assert cursors(engine.db, connected)["changes"]["cursor"]["token"] == str(drive.next_change)
    assert {f"Note {n}" for n in range(5)} <= live(engine.db, connected)


def test_a_brand_new_folder_needs_no_relisting_its_files_come_through_the_feed(engine, connected, drive):
    run(engine, connected)
    initrode = drive.add_folder("Initrode", drive.seed.customers)
    drive.files[initrode]["createdTime"] = "2099-01-01T00:00:00.000Z"   # created after the last walk
    drive.add_file("Initrode discovery notes", initrode, content="notes")
    drive.log.clear()
    run(engine, connected)
    assert listing_requests(drive) == []
    assert documents(engine.db, connected)["Initrode discovery notes"]["folder_path"] == "/Sales/Customers/Initrode"


def test_a_folder_created_during_the_sync_is_looked_up_and_listed_next_time(engine, connected, drive):
    run(engine, connected)
    made = []

    def create_while_reading_the_feed(method, path, query):
        if path == "/drive/v3/changes" and query.get("pageSize") != "1" and not made:
            made.append(drive.add_folder("Initrode", drive.seed.customers))
            drive.add_file("Initrode discovery notes", made[0], content="notes")
            drive.add_file("Other note", ROOT)                  # so the folder's change is on the next page
            drive.modify(made[0], name="Initrode Inc")
        return False
    drive.block = create_while_reading_the_feed
    run(engine, connected)
    assert documents(engine.db, connected)["Initrode discovery notes"]["folder_path"] == "/Sales/Customers/Initrode Inc"
    assert any(p == f"/drive/v3/files/{made[0]}" for _m, p, _q in drive.log)    # looked up, not in the tree
    assert connection(engine.db, engine.vault, connected)["metadata"]["relist"] is True
    drive.block = None
    drive.log.clear()
    run(engine, connected)
    assert listing_requests(drive)                     # it may have come in with files: list everything


def test_an_expired_page_token_falls_back_to_a_full_listing_with_a_fresh_token(engine, connected, drive):
    run(engine, connected)
    drive.delete(drive.seed.review)          # the feed that would have said so is lost below
    drive.add_file("Fresh doc", drive.seed.acme)
    drive.invalidate_tokens()
    drive.log.clear()
    report = run(engine, connected)
    assert listing_requests(drive)                                   # listed everything again
    assert live(engine.db, connected) == FIRST_SYNC - {"Q2 Pipeline Review"} | {"Fresh doc"}
    assert documents(engine.db, connected)["Q2 Pipeline Review"]["deleted_at"] is not None   # not seen: swept
    meta = connection(engine.db, engine.vault, connected)["metadata"]
    assert meta["listing"]["reason"] == "the saved changes page token expired"
    assert cursors(engine.db, connected)["changes"]["cursor"]["token"] == str(drive.next_change)
    assert report.counts["documents"]["unchanged"] >= 5              # a listing rewrites nothing unchanged
    drive.log.clear()
    run(engine, connected)
    assert listing_requests(drive) == []                             # back to the feed


def test_a_renamed_folder_makes_the_run_a_listing_that_updates_paths(engine, connected, drive):
    run(engine, connected)
    drive.modify(drive.seed.acme, name="ACME Corporation")
    drive.log.clear()
    run(engine, connected)
    assert listing_requests(drive)
    assert connection(engine.db, engine.vault, connected)["metadata"]["listing"]["reason"] == \
        "folders were moved or renamed"
    assert documents(engine.db, connected)["Acme Corp Proposal"]["folder_path"] == "/Sales/Customers/ACME Corporation"


def test_files_of_a_folder_moved_out_are_soft_deleted_by_the_listing_sweep(engine, connected, drive):
    run(engine, connected)
    drive.move(drive.seed.globex, drive.seed.personal)
    report = run(engine, connected)
    assert documents(engine.db, connected)["Globex pricing"]["deleted_at"] is not None
    assert report.counts["documents"]["deleted"] == 1
    assert len(live(engine.db, connected)) == 6


def test_changing_the_chosen_folders_relists_and_drops_what_is_no_longer_chosen(engine, connected, drive):
    run(engine, connected)
    with engine.db.connection() as conn:
        update_metadata(conn, connected["id"], "google_drive", {"folders": [drive.seed.acme], "shared_drives": []})
    run(engine, connected)
    assert live(engine.db, connected) == {"Acme Corp Proposal", "Acme MSA.pdf", "Kickoff deck"}
    assert documents(engine.db, connected)["Acme Corp Proposal"]["folder_path"] == "/Acme Corp"


def test_a_full_resync_lists_again(engine, connected, drive):
    run(engine, connected)
    drive.log.clear()
    run(engine, connected, full=True)
    assert len(drive.requests_to("/drive/v3/changes/startPageToken")) == 1 and listing_requests(drive)


def test_no_folders_chosen_is_a_clear_error(engine, workspace, drive, connector):
    connect(engine.db, engine.vault, workspace, drive, folders=[], shared_drives=[])
    report = engine.run(workspace["id"], "google_drive")
    assert report.status == "failed" and "no folders or shared drives chosen" in report.error


def test_an_expired_access_token_is_refreshed_once_and_persisted(engine, connected, drive):
    old = connection(engine.db, engine.vault, connected)["credentials"]
    drive.expire(old["access_token"])
    run(engine, connected)
    assert [t["grant_type"] for t in drive.token_requests] == ["refresh_token"]
    assert drive.token_requests[0]["refresh_token"] == old["refresh_token"]
    saved = connection(engine.db, engine.vault, connected)["credentials"]
    assert saved["access_token"] != old["access_token"] and saved["access_token"] in drive.tokens
    assert saved["refresh_token"] == old["refresh_token"] and saved["expires_at"] > old["expires_at"] - 10**9
    assert len(documents(engine.db, connected)) == 7


def test_a_refused_refresh_says_reconnect_google_drive(engine, connected, drive):
    old = connection(engine.db, engine.vault, connected)["credentials"]
    drive.refresh_tokens.clear()
    drive.expire(old["access_token"])
    report = engine.run(connected["id"], "google_drive")
    assert report.status == "failed" and report.exception.code == "auth_error"
    assert "reconnect Google Drive" in report.error and old["access_token"] not in report.error


def test_403_and_429_rate_limits_are_retried_with_exponential_backoff(engine, connected, drive, sleeps):
    drive.fail(2, 403, "userRateLimitExceeded", when=lambda p: p == "/drive/v3/files")
    drive.fail(1, 429, "rateLimitExceeded", when=lambda p: p == "/drive/v3/changes")
    run(engine, connected)
    assert len(documents(engine.db, connected)) == 7
    assert len(sleeps) == 3                            # one wait per refused request, within the growing caps
    assert sleeps[0] <= 1.0 and sleeps[1] <= 2.0 and sleeps[2] <= 1.0


def test_a_rate_limit_outlasting_the_retries_fails_as_rate_limited(engine, workspace, drive, connector):
    connect(engine.db, engine.vault, workspace, drive, rate_limit={**FAST, "attempts": 2})
    drive.fail(5, 403, "userRateLimitExceeded")
    report = engine.run(workspace["id"], "google_drive")
    assert report.status == "failed" and report.exception.code == "rate_limited"
    assert "userRateLimitExceeded" in report.error


def test_the_post_sync_pipeline_runs_after_a_drive_sync(engine, connected, drive):
    report = run(engine, connected)
    assert "google_drive_links" in [s["name"] for s in report.steps]
    [log] = rows(engine.db, connected, "SELECT status, steps FROM sync_log WHERE workspace_id = %s")
    assert log["status"] == "succeeded" and any(s["name"] == "google_drive_links" for s in log["steps"])


def test_a_killed_listing_resumes_at_its_page_without_a_new_start_token(engine, connected, drive):
    db, vault, acme = engine.db, engine.vault, drive.seed.acme
    drive.block = lambda m, p, q: q.get("q", "").startswith(f"'{acme}' in parents") and "pageToken" in q
    kill_sync_when(db.url, vault, connected["id"], "google_drive", drive.blocked, "Acme's second page")
    before = set(documents(db, connected))
    assert {"Acme Corp Proposal", "Acme MSA.pdf", "Q2 Pipeline Review"} <= before and "Kickoff deck" not in before
    drive.block = None
    drive.release.set()
    drive.log.clear()
    report = SyncEngine(db, vault, sleep=lambda s: None).run(connected["id"], "google_drive")
    assert report.status == "succeeded" and report.resumed, report.error
    assert drive.requests_to("/drive/v3/changes/startPageToken") == []          # the pre-listing token is kept
    listed = listing_requests(drive)
    assert not any(q["q"].startswith(f"'{ROOT}' in parents") for q in listed)    # finished folders skipped
    assert [q.get("pageToken", "")[:4] for q in listed if q["q"].startswith(f"'{acme}'")] == ["~!!~"]
    total = rows(db, connected, "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM documents"
                                " WHERE workspace_id = %s")
    assert total[0]["n"] == total[0]["d"] == 7
    logs = rows(db, connected, "SELECT status FROM sync_log WHERE workspace_id = %s ORDER BY started_at")
    assert [r["status"] for r in logs] == ["aborted", "succeeded"]


def test_sheets_are_stored_with_their_type_and_no_size(engine, connected, drive):
    run(engine, connected)
    pricing = documents(engine.db, connected)["Globex pricing"]
    assert pricing["mime_type"] == SHEET and pricing["size_bytes"] is None
