"""The one list of what the Slack app handles and needs: its slash command, the events it subscribes to, the
Web API methods it calls with the bot scope each needs, and the OAuth scopes it asks for.

The listeners register from these lists and tests/test_manifest.py checks manifest.yml against them (and the
listeners against the action/callback ids that modals and messages carry), so the manifest and the code cannot
drift apart. This module holds data only: it imports nothing from the rest of Pandora.
"""
from __future__ import annotations

COMMAND = "/pandora"
COMMANDS = (COMMAND,)

# Manifest event names (settings.event_subscriptions.bot_events). "message.im" is Slack's name for
# `message` events whose channel_type is "im".
EVENTS = ("app_mention", "message.im", "file_shared", "app_home_opened", "app_uninstalled", "tokens_revoked")

# Every Web API method the bot calls → the bot scope it needs (None: no scope, e.g. views.* only need a
# trigger_id or the app's own home tab). A new client call must be added here (a test scans the code).
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "oauth.v2.access": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.delete": "chat:write",        # the bot's own progress message, when the answer is private
    "views.open": None,
    "views.push": None,
    "views.update": None,
    "views.publish": None,
    "files.info": "files:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "users.info": "users:read",
    "conversations.info": "channels:read",
    "team.info": "team:read",
}

# Bot scopes requested at install (OAuth) — manifest.yml's oauth_config.scopes.bot must equal this list.
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",   # post digests into public channels the bot was not invited to
    "files:read",          # files.info + url_private downloads for drag-and-drop imports
    "files:write",         # chart uploads
    "app_mentions:read",
    "im:history",          # message.im events (DM questions)
    "im:read",
    "im:write",
    "channels:read",
    "groups:read",
    "users:read",
    "users:read.email",    # map Slack users to reps by email
    "team:read",
)

# Commands whose reply is a modal: the slash-command listener opens these views itself, in the ack phase,
# because views.open must happen within 3 seconds of the trigger.
MODAL_COMMANDS = ("connect", "context", "quota")
