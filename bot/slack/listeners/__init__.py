"""Bolt listeners by kind (commands, actions, views, events), registered in one place.

Each module's `register(app, deps)` adds its listeners; `deps` (bot/slack/app.Deps) carries the database and
settings by closure. Listeners ack first and do slow work lazily; none of them lets an exception reach Bolt.
"""
from __future__ import annotations

from bot.slack.listeners import actions, commands, events, views


def register(app, deps) -> None:
    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    events.register(app, deps)
