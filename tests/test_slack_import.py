"""Drag-and-drop import end to end through the real Bolt app: a CSV shared in a DM → preview with buttons →
Confirm → rows in Postgres and counts in the message → Roll back → rows gone. Non-tabular files get a polite
explanation."""
from __future__ import annotations

from core.workspaces import get_workspace
from tests.fakes.slack_requests import USER_ID, block_action
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)

DM = "D0PANDORA"
DEALS_CSV = (b"Deal Name,Amount,Deal Stage,Close Date\n"
             b"Acme - Platform,\"$120,000\",Contract Sent,2026-03-15\n"
             b"Globex - New,45500,Closed Won,2026-04-30\n"
             b"Initech - Pilot,12.5k,Qualified To Buy,2026-06-30\n")


def _deals(db, settings) -> list[dict]:
    with db.connection() as conn:
        ws = get_workspace(conn, settings.default_workspace)
        return conn.execute("SELECT name, amount FROM deals WHERE workspace_id = %(w)s ORDER BY name",
                            {"w": ws["id"]}).fetchall()


def _buttons(message: dict) -> dict[str, dict]:
    return {el["action_id"]: el for block in message["blocks"] if block["type"] == "actions"
            for el in block["elements"]}


def _share(sender, slack, name: str, content: bytes, filetype: str, mimetype: str, file_id: str = "F1"):
    slack.add_file(file_id, name, content, filetype, mimetype, user=USER_ID, channels=[DM])
    return sender.event({"type": "file_shared", "file_id": file_id, "user_id": USER_ID, "channel_id": DM,
                         "file": {"id": file_id}, "event_ts": "1700.1"})


def test_a_shared_csv_is_previewed_confirmed_and_rolled_back(sender, slack, db, slack_settings):
    assert _share(sender, slack, "deals.csv", DEALS_CSV, "csv", "text/csv").status_code == 200
    assert slack.downloads == ["F1"]  # fetched from url_private with the bot token
    [preview] = slack.messages_in(DM)
    buttons = _buttons(preview)
    assert {"import_confirm", "import_edit_mapping", "import_cancel"} <= set(buttons)
    assert _deals(db, slack_settings) == []  # a preview writes nothing

    batch_id = buttons["import_confirm"]["value"]
    sender.interactive(block_action("import_confirm", batch_id, channel=DM, message_ts=preview["ts"]))
    deals = _deals(db, slack_settings)
    assert [d["name"] for d in deals] == ["Acme - Platform", "Globex - New", "Initech - Pilot"]
    assert [int(d["amount"]) for d in deals] == [120000, 45500, 12500]
    applied = slack.message(preview["ts"])
    assert "3" in applied["text"] and "import_rollback" in _buttons(applied)

    sender.interactive(block_action("import_rollback", batch_id, channel=DM, message_ts=preview["ts"]))
    assert _deals(db, slack_settings) == []
    assert "import_rollback" not in _buttons(slack.message(preview["ts"]))
    assert len(slack.messages_in(DM)) == 1  # one message, updated in place all along


def test_edit_mapping_opens_the_mapping_modal_with_the_trigger(sender, slack):
    _share(sender, slack, "deals.csv", DEALS_CSV, "csv", "text/csv")
    [preview] = slack.messages_in(DM)
    batch_id = _buttons(preview)["import_edit_mapping"]["value"]
    sender.interactive(block_action("import_edit_mapping", batch_id, channel=DM, message_ts=preview["ts"],
                                    trigger_id="trig-map"))
    [opened] = slack.calls_to("views.open")
    assert opened["trigger_id"] == "trig-map" and opened["view"]["callback_id"] == "mapping_submit"


def test_cancel_leaves_the_data_untouched(sender, slack, db, slack_settings):
    _share(sender, slack, "deals.csv", DEALS_CSV, "csv", "text/csv")
    [preview] = slack.messages_in(DM)
    batch_id = _buttons(preview)["import_cancel"]["value"]
    sender.interactive(block_action("import_cancel", batch_id, channel=DM, message_ts=preview["ts"]))
    assert _deals(db, slack_settings) == []
    assert "import_confirm" not in _buttons(slack.message(preview["ts"]))


def test_a_pdf_gets_a_polite_explanation(sender, slack):
    _share(sender, slack, "QBR deck.pdf", b"%PDF-1.7", "pdf", "application/pdf")
    [msg] = slack.messages_in(DM)
    assert "CSV" in msg["text"] and "QBR deck.pdf" in msg["text"]
    assert slack.downloads == []
