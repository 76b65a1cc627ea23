"""Pandora's Slack app: the Bolt app (app.py), its listeners by kind (listeners/), posting replies (post.py)
and the one list of commands, events and scopes the manifest must match (registry.py)."""
