"""Events API listeners, one per event in bot/slack/registry.EVENTS (a test holds the two lists together).

Events are acknowledged by Bolt at once; the work runs in lazy listeners. @mentions are answered in a thread,
DMs in the DM; a shared file goes to the drag-and-drop import flow; the home tab shows the commands and the
workspace's status; app_uninstalled / tokens_revoked delete the team's stored tokens (its data stays).
"""
from __future__ import annotations

import logging

from bot.slack.listeners.common import answer, failures_told

log = logging.getLogger("pandora.slack")

HOME_MAX_BLOCKS = 100


def _noop_ack(ack):
    ack()


def register(app, deps) -> None:
    def on_mention(event, client, context):
        channel, user = event.get("channel"), event.get("user")
        thread_ts = event.get("thread_ts") or event.get("ts")
        with failures_told(client, channel=channel, user=user, thread_ts=thread_ts):
            answer(deps, client, context.get("workspace_id"), event.get("text") or "", channel=channel, user=user,
                   thread_ts=thread_ts)

    def on_message(event, client, context):
        # Only what a person typed in a DM with Pandora: edits, joins, file shares (file_shared handles those)
        # and other bots' messages are acknowledged and left alone.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        channel, user = event.get("channel"), event.get("user")
        with failures_told(client, channel=channel, user=user):
            answer(deps, client, context.get("workspace_id"), event.get("text") or "", channel=channel, user=user,
                   thread_ts=event.get("thread_ts"))

    def on_file_shared(event, client, context):
        if event.get("user_id") and event.get("user_id") == context.get("bot_user_id"):
            return  # our own chart uploads raise file_shared too
        workspace_id = context.get("workspace_id")
        if not workspace_id:
            return
        from bot.import_flow import handle_file_shared

        with failures_told(client, channel=event.get("channel_id"), user=event.get("user_id")):
            handle_file_shared(deps.db, deps.settings, client, workspace_id, event.get("file_id"),
                               event.get("channel_id"), event.get("user_id"))

    def on_home_opened(event, client, context):
        if event.get("tab", "home") != "home":
            return
        try:
            client.views_publish(user_id=event["user"], view=home_view(deps, context.get("workspace_id")))
        except Exception:  # noqa: BLE001 — an unpublished home tab keeps its previous content
            log.exception("could not publish the home tab")

    def on_uninstalled(body, context):
        _forget_team(deps, body, context)

    def on_tokens_revoked(event, body, context):
        if (event.get("tokens") or {}).get("bot"):  # user tokens alone leave the bot installed
            _forget_team(deps, body, context)

    app.event("app_mention")(ack=_noop_ack, lazy=[on_mention])
    app.event("message")(ack=_noop_ack, lazy=[on_message])          # message.im
    app.event("file_shared")(ack=_noop_ack, lazy=[on_file_shared])
    app.event("app_home_opened")(ack=_noop_ack, lazy=[on_home_opened])
    app.event("app_uninstalled")(ack=_noop_ack, lazy=[on_uninstalled])
    app.event("tokens_revoked")(ack=_noop_ack, lazy=[on_tokens_revoked])


HANDLED = {"app_mention": "app_mention", "message.im": "message", "file_shared": "file_shared",
           "app_home_opened": "app_home_opened", "app_uninstalled": "app_uninstalled",
           "tokens_revoked": "tokens_revoked"}
"""Manifest event name → the Events API type the listener above matches."""


def _forget_team(deps, body: dict, context) -> None:
    team_id = context.team_id or body.get("team_id")
    enterprise_id = context.enterprise_id or body.get("enterprise_id")
    if deps.resolver is not None:
        deps.resolver.forget(enterprise_id, team_id)
    from bot.slack.app import oauth_mode

    if not oauth_mode(deps.settings):
        log.warning("Slack team %s uninstalled Pandora (single-workspace mode: SLACK_BOT_TOKEN no longer works)",
                    team_id)
        return
    from bot.install_store import delete_installation

    deleted = delete_installation(deps.db, team_id, enterprise_id,
                                  is_enterprise_install=bool(context.is_enterprise_install))
    log.info("Slack team %s: %d installation(s) deleted", team_id, deleted)


def home_view(deps, workspace_id: str | None) -> dict:
    """The App Home tab: what Pandora answers, and the workspace's status (the router's own `status`)."""
    from bot.render.blocks import context as context_block
    from bot.render.blocks import divider, header, section
    from bot.router import route

    blocks = [header("Pandora"),
              section("GTM intelligence for RevOps, in Slack. Use `/pandora <command>`, mention @Pandora in a "
                      "channel, or ask me here in plain language. Drop a CSV or Excel export into this DM to "
                      "import it.")]
    if workspace_id:
        for text in ("help", "status"):
            reply = route(deps.db, deps.settings, workspace_id, text, source="slack")
            blocks += [divider(), *reply.blocks]
    else:
        blocks.append(context_block("This Slack workspace is not linked to a Pandora workspace yet."))
    if len(blocks) > HOME_MAX_BLOCKS:
        blocks = blocks[:HOME_MAX_BLOCKS - 1] + [context_block("(more with `/pandora status`)")]
    return {"type": "home", "blocks": blocks}
