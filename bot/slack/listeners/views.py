"""Modal submissions (view_submission): one listener per callback id of bot/modals.py.

A submission is validated and saved in the ack listener, because its errors must come back in the ack
(response_action="errors" shows them under the fields) and a next step replaces the modal
(response_action="update"). What the submission saved is then told to the user in their DM with Pandora, and
any slow follow-up (`ModalOutcome.after`) runs after the ack.
"""
from __future__ import annotations

import logging

from bot.slack.listeners.common import explain, tell

log = logging.getLogger("pandora.slack")


def callback_ids() -> tuple[str, ...]:
    """Every modal's callback id (bot/modals.py owns the list; each gets a submission listener here)."""
    from bot import modals

    return tuple(modals.CALLBACK_IDS)


def _first_block_id(view: dict) -> str | None:
    for block in view.get("blocks") or []:
        if block.get("type") == "input" and block.get("block_id"):
            return block["block_id"]
    return None


def register(app, deps) -> None:
    def on_submit(ack, body, view, client, context):
        user = (body.get("user") or {}).get("id")
        callback_id = view.get("callback_id")
        try:
            from bot import modals

            outcome = modals.submit(deps.db, deps.settings, context.get("workspace_id"), view, client=client)
        except Exception as exc:  # noqa: BLE001 — shown under the first field, never a traceback
            if not hasattr(exc, "message"):
                log.exception("submission of %s failed", callback_id)
            block_id = _first_block_id(view)
            if block_id:
                ack(response_action="errors", errors={block_id: explain(exc)[:500]})
            else:
                ack()
                tell(client, None, user, f":warning: {explain(exc)}")
            return
        if outcome.errors:
            ack(response_action="errors", errors=outcome.errors)
            return
        if outcome.next_view:
            ack(response_action="update", view=outcome.next_view)
        else:
            ack()
        if outcome.message and user:
            tell(client, None, user, outcome.message)
        if outcome.after is not None:
            try:
                outcome.after()
            except Exception as exc:  # noqa: BLE001
                log.exception("follow-up of %s failed", callback_id)
                tell(client, None, user, f":warning: {explain(exc)}")

    for callback_id in callback_ids():
        app.view(callback_id)(on_submit)
