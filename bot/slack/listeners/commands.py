"""The `/pandora` slash command.

The ack listener answers Slack at once. Commands that open a form (`connect hubspot`, `context`, `quota`)
are routed right there, because views.open must use the trigger_id within 3 seconds; everything else is
routed in a lazy listener, which posts the answer in the channel (replacing a progress message for syncs and
skills) or, where the bot cannot post, answers through the command's response_url.
"""
from __future__ import annotations

from bot.slack import registry
from bot.slack.listeners.common import answer, failures_told, open_modal


def _words(body: dict) -> list[str]:
    from bot.router import normalize, tokenize

    return tokenize(normalize(body.get("text") or ""))


def opens_modal(words: list[str]) -> bool:
    return bool(words) and words[0].lower() in registry.MODAL_COMMANDS


def register(app, deps) -> None:
    def ack_pandora(ack, body, client, context, respond, logger):
        ack()
        words = _words(body)
        if not opens_modal(words):
            return  # the lazy listener answers
        channel, user = body.get("channel_id"), body.get("user_id")
        with failures_told(client, channel=channel, user=user, respond=respond):
            workspace_id = context.get("workspace_id")
            from bot.router import route

            reply = route(deps.db, deps.settings, workspace_id, body.get("text") or "", source="slack",
                          user_id=user, channel_id=channel)
            if reply.modal:
                open_modal(deps, client, workspace_id, reply.modal, body["trigger_id"])
            else:  # e.g. `context show`, or an unknown source: a private answer
                respond(text=reply.text[:3000], blocks=reply.blocks or None, response_type="ephemeral")

    def run_pandora(body, client, context, respond, logger):
        if opens_modal(_words(body)):
            return
        channel, user = body.get("channel_id"), body.get("user_id")
        with failures_told(client, channel=channel, user=user, respond=respond):
            answer(deps, client, context.get("workspace_id"), body.get("text") or "", channel=channel, user=user,
                   respond=respond)

    for command in registry.COMMANDS:
        app.command(command)(ack=ack_pandora, lazy=[run_pandora])
