"""Button clicks (block_actions). Each action id maps to one handler below; `ACTION_IDS` is what a test checks
against every action id the code puts into messages.

Buttons that open a modal do it in the ack listener (trigger_id valid for 3 s); buttons that do slow work
(apply an import, roll it back) ack first and work in a lazy listener, updating the message they sit on.
"""
from __future__ import annotations

from bot.modals_connect import OAUTH_LINK_ACTION
from bot.slack.listeners.common import OPEN_MODAL_ACTION, failures_told, open_modal

IMPORT_CONFIRM = "import_confirm"
IMPORT_EDIT_MAPPING = "import_edit_mapping"
IMPORT_CANCEL = "import_cancel"
IMPORT_ROLLBACK = "import_rollback"

# action id → bot.import_flow function run lazily with (db, settings, client, workspace_id, batch_id, channel, ts)
LAZY_IMPORT_ACTIONS = {IMPORT_CONFIRM: "confirm", IMPORT_CANCEL: "cancel", IMPORT_ROLLBACK: "rollback"}
# A link button in the connect modal: the browser does the work; we only ack.
OAUTH_LINK = OAUTH_LINK_ACTION
ACTION_IDS = (*LAZY_IMPORT_ACTIONS, IMPORT_EDIT_MAPPING, OPEN_MODAL_ACTION, OAUTH_LINK)


def _where(body: dict) -> tuple[str | None, str | None, str | None]:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
    return channel, ts, (body.get("user") or {}).get("id")


def _value(body: dict) -> str:
    return str((body.get("actions") or [{}])[0].get("value") or "")


def register(app, deps) -> None:
    def ack_only(ack):
        ack()

    def run_import_action(body, client, context):
        channel, ts, user = _where(body)
        action_id = (body.get("actions") or [{}])[0].get("action_id")
        with failures_told(client, channel=channel, user=user):
            from bot import import_flow

            handler = getattr(import_flow, LAZY_IMPORT_ACTIONS[action_id])
            handler(deps.db, deps.settings, client, context.get("workspace_id"), _value(body), channel, ts)

    def edit_mapping(ack, body, client, context):
        ack()
        channel, ts, user = _where(body)
        with failures_told(client, channel=channel, user=user):
            from bot.import_flow import open_mapping

            open_mapping(deps.db, client, context.get("workspace_id"), _value(body), body["trigger_id"], channel, ts)

    def open_modal_button(ack, body, client, context):
        ack()
        channel, _, user = _where(body)
        with failures_told(client, channel=channel, user=user):
            open_modal(deps, client, context.get("workspace_id"), _value(body), body["trigger_id"])

    for action_id in LAZY_IMPORT_ACTIONS:
        app.action(action_id)(ack=ack_only, lazy=[run_import_action])
    app.action(IMPORT_EDIT_MAPPING)(edit_mapping)
    app.action(OPEN_MODAL_ACTION)(open_modal_button)
    app.action(OAUTH_LINK)(ack_only)
