"""Drag-and-drop imports end to end against the fake Slack Web API (real slack_sdk WebClient) and Postgres:
file → preview message with buttons → confirm → rows and counts → rollback; mapping edits; polite refusals."""
from __future__ import annotations

import dataclasses
import json

import pytest
from slack_sdk.models.views import View

from bot import import_flow, modals
from connectors.file_import import batch as batches

CHANNEL = "D0DM"
DEALS_CSV = (b"Record ID,Deal Name,Amount,Deal Stage,Close Date,Notes\n"
             b"1,Acme <!channel>,\"$120,000\",Contract Sent,2026-03-15,first\n"
             b"2,Globex - New,45500,Closed Won,2026-04-30,\n"
             b"3,Initech - Pilot,12.5k,Qualified To Buy,TBD,\n"
             b"4,Hooli - Platform,30000,Appointment Scheduled,2026-05-31,\n")


def deals(db, workspace):
    with db.connection() as conn:
        return {r["source_id"]: r for r in conn.execute(
            "SELECT source_id, name, amount FROM deals WHERE workspace_id = %(w)s", {"w": workspace["id"]}).fetchall()}


def buttons(message) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def texts(message) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def share(db, settings, slack_client, slack, workspace, name="deals.csv", content=DEALS_CSV, filetype="csv",
          mimetype="text/csv", file_id="F1", channel=CHANNEL):
    slack.add_file(file_id, name, content, filetype, mimetype, channels=[channel])
    import_flow.handle_file_shared(db, settings, slack_client, workspace["id"], file_id, channel, "U0USER")
    return slack.messages_in(channel)


def test_a_shared_csv_becomes_a_preview_with_buttons(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace)
    assert slack.downloads == ["F1"] and "xoxb-test" in slack.tokens_used
    assert message["blocks"][0]["text"]["text"] == "Import preview: deals.csv"
    body = texts(message)
    assert "*Columns*\\n`Record ID` → source_id\\n`Deal Name` → name\\n`Amount` → amount" in body  # file order
    assert "4 (3 importable, 1 with errors)" in body and "120,000" in body
    assert "deals.csv row 4, Close Date: 'TBD' is not a date" in body
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body  # a cell never pings anyone
    ids = buttons(message)
    assert set(ids) == {"import_confirm", "import_edit_mapping", "import_cancel"} == set(import_flow.ACTION_IDS) - {"import_rollback"}
    batch = batches.get_batch(db, workspace["id"], ids["import_confirm"])
    assert batch["status"] == "pending" and batch["filename"] == "deals.csv"
    assert deals(db, workspace) == {}
    assert not list((settings.pandora_home / "imports" / "incoming").iterdir())  # the download was cleaned up


def test_confirm_writes_rows_and_rollback_removes_them(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace)
    batch_id = buttons(message)["import_confirm"]
    import_flow.confirm(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    rows = deals(db, workspace)
    assert sorted(rows) == ["1", "2", "4"] and rows["1"]["amount"] == 120000
    (message,) = slack.messages_in(CHANNEL)
    assert "3 inserted, 0 updated, 0 unchanged, 1 skipped" in message["text"]
    assert buttons(message) == {"import_rollback": batch_id}
    updates = [c["text"] for c in slack.calls_to("chat.update")]
    assert any(t.startswith("Importing 3 deals from deals.csv") for t in updates)  # progress was shown
    import_flow.rollback(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    assert deals(db, workspace) == {}
    (message,) = slack.messages_in(CHANNEL)
    assert message["text"].startswith("Rolled back the import of deals.csv: 3 rows deleted") and buttons(message) == {}


def test_a_second_confirm_click_shows_the_applied_state_and_imports_once(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace)
    batch_id = buttons(message)["import_confirm"]
    import_flow.confirm(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    import_flow.confirm(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    (message,) = slack.messages_in(CHANNEL)
    assert "3 inserted" in message["text"] and buttons(message) == {"import_rollback": batch_id}
    assert len(deals(db, workspace)) == 3


def test_cancel_leaves_nothing_and_the_batch_cannot_be_applied_later(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace)
    batch_id = buttons(message)["import_cancel"]
    import_flow.cancel(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    (message,) = slack.messages_in(CHANNEL)
    assert message["text"] == "Import of deals.csv cancelled; nothing was written." and buttons(message) == {}
    assert batches.get_batch(db, workspace["id"], batch_id)["status"] == "cancelled"
    import_flow.confirm(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])  # a stale button
    assert deals(db, workspace) == {} and "cancelled" in slack.messages_in(CHANNEL)[0]["text"]


def test_a_refused_rollback_names_the_later_import_and_offers_nothing_destructive(db, settings, workspace, slack, slack_client):
    (first,) = share(db, settings, slack_client, slack, workspace)
    first_id = buttons(first)["import_confirm"]
    import_flow.confirm(db, settings, slack_client, workspace["id"], first_id, CHANNEL, first["ts"])
    changed = DEALS_CSV.replace(b"45500", b"47000")
    share(db, settings, slack_client, slack, workspace, name="deals_v2.csv", content=changed, file_id="F2")
    second = slack.messages_in(CHANNEL)[1]
    import_flow.confirm(db, settings, slack_client, workspace["id"], buttons(second)["import_confirm"], CHANNEL, second["ts"])
    import_flow.rollback(db, settings, slack_client, workspace["id"], first_id, CHANNEL, first["ts"])
    message = slack.message(first["ts"])
    assert "I didn't roll back the import of deals.csv" in message["text"] and "deals_v2.csv" in message["text"]
    assert "Nothing was changed" in message["text"] and buttons(message) == {}
    assert deals(db, workspace)["2"]["amount"] == 47000
    assert batches.get_batch(db, workspace["id"], first_id)["status"] == "applied"


def test_a_pdf_gets_a_polite_explanation_and_is_not_downloaded(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace, name="QBR deck.pdf", content=b"%PDF-1.7 ...",
                       filetype="pdf", mimetype="application/pdf")
    assert message["text"].startswith("I can import CSV and Excel exports; QBR deck.pdf looks like a PDF.")
    assert slack.downloads == [] and batches.list_batches(db, workspace["id"]) == []


def test_a_pdf_shared_in_a_channel_is_left_alone(db, settings, workspace, slack, slack_client):
    assert share(db, settings, slack_client, slack, workspace, name="QBR deck.pdf", content=b"%PDF-1.7 ...",
                 filetype="pdf", mimetype="application/pdf", channel="C0REVOPS") == []
    assert slack.downloads == []


def test_a_failed_download_becomes_a_clear_message(db, settings, workspace, slack, slack_client):
    slack.add_file("F1", "deals.csv", DEALS_CSV, "csv", "text/csv")
    slack.files["F1"]["url_private_download"] = f"{slack.root}/files-pri/{slack.team_id}-GONE/deals.csv"
    import_flow.handle_file_shared(db, settings, slack_client, workspace["id"], "F1", CHANNEL, "U0USER")
    (message,) = slack.messages_in(CHANNEL)
    assert message["text"].startswith("I couldn't import deals.csv: downloading deals.csv from Slack failed (HTTP 404)")
    assert "Traceback" not in message["text"] and batches.list_batches(db, workspace["id"]) == []


def test_a_missing_file_and_an_unreadable_csv_become_messages(db, settings, workspace, slack, slack_client):
    import_flow.handle_file_shared(db, settings, slack_client, workspace["id"], "F404", CHANNEL, "U0USER")
    share(db, settings, slack_client, slack, workspace, name="empty.csv", content=b"\n\n", file_id="F2")
    first, second = slack.messages_in(CHANNEL)
    assert first["text"] == "That didn't work: I couldn't open that file (Slack said file_not_found)"
    assert second["text"].startswith("I couldn't import empty.csv:") and buttons(second) == {}


def test_files_the_bot_uploaded_itself_are_ignored(db, settings, workspace, slack, slack_client):
    slack.add_file("F9", "forecast.png", b"\x89PNG....", "png", "image/png", user=slack.bot_user_id)
    import_flow.handle_file_shared(db, settings, slack_client, workspace["id"], "F9", CHANNEL, slack.bot_user_id)
    assert slack.messages_in(CHANNEL) == []


def test_edit_mapping_repreviews_the_file_and_updates_the_message(db, settings, workspace, slack, slack_client):
    (message,) = share(db, settings, slack_client, slack, workspace)
    old_id = buttons(message)["import_edit_mapping"]
    import_flow.open_mapping(db, slack_client, workspace["id"], old_id, "trigger-1", CHANNEL, message["ts"])
    (view,) = [c["view"] for c in slack.calls_to("views.open")]
    View(**view).validate_json()
    selects = {b["label"]["text"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(selects) == ["Record ID", "Deal Name", "Amount", "Deal Stage", "Close Date", "Notes"]  # file order
    assert selects["Amount"]["element"]["initial_option"]["value"] == "amount"

    def state(choices):
        return {"values": {b["block_id"]: {"value": {"type": "static_select", "selected_option": {
            "value": choices.get(label, b["element"]["initial_option"]["value"])}}} for label, b in selects.items()}}

    clash = modals.submit(db, settings, workspace["id"], {**view, "state": state({"Notes": "name"})})
    assert clash.errors == {selects["Notes"]["block_id"]: "name is already taken by 'Deal Name'; a field takes one column."}
    outcome = modals.submit(db, settings, workspace["id"], {**view, "state": state({"Close Date": "-", "Notes": "next_step"})},
                            client=slack_client)
    assert outcome.errors == {} and outcome.after is not None
    outcome.after()
    (message,) = slack.messages_in(CHANNEL)
    new_id = buttons(message)["import_confirm"]
    assert new_id != old_id and batches.get_batch(db, workspace["id"], old_id)["status"] == "cancelled"
    new = batches.get_batch(db, workspace["id"], new_id)
    assert new["mapping"]["Close Date"] is None and new["mapping"]["Notes"] == "next_step" and new["skipped"] == 0
    assert "4 (4 importable, 0 with errors)" in texts(message)


def test_an_excel_export_is_previewed_like_a_csv(db, settings, workspace, slack, slack_client, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Company name", "Company Domain Name", "Industry"])
    sheet.append(["Acme Inc", "acme.io", "Software"])
    sheet.append(["Globex", "globex.com", "Manufacturing"])
    book.save(tmp_path / "companies.xlsx")
    (message,) = share(db, settings, slack_client, slack, workspace, name="companies.xlsx",
                       content=(tmp_path / "companies.xlsx").read_bytes(), filetype="xlsx",
                       mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert message["blocks"][0]["text"]["text"] == "Import preview: companies.xlsx"
    batch_id = buttons(message)["import_confirm"]
    import_flow.confirm(db, settings, slack_client, workspace["id"], batch_id, CHANNEL, message["ts"])
    assert "2 inserted" in slack.messages_in(CHANNEL)[0]["text"]


def test_a_file_over_the_size_limit_is_refused_before_downloading(db, settings, workspace, slack, slack_client):
    small = dataclasses.replace(settings, import_max_bytes=100)
    slack.add_file("F1", "deals.csv", DEALS_CSV, "csv", "text/csv")
    import_flow.handle_file_shared(db, small, slack_client, workspace["id"], "F1", CHANNEL, "U0USER")
    (message,) = slack.messages_in(CHANNEL)
    assert message["text"] == ("I couldn't import deals.csv: it is 1 KB, over the 1 KB import limit; "
                               "split it into smaller files")
    assert slack.downloads == []
