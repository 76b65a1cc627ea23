"""monday.com: board items → tasks (connector.py) and the post-sync step that links them to deals (steps.py).
`register()` adds both; `connectors.load_all()` calls it at start-up."""
from __future__ import annotations


def register():
    from connectors.monday import steps  # noqa: F401  (registers the post-sync step on import)
    from connectors.monday.connector import MondayConnector
    from core.sync import registry

    return registry.register(MondayConnector())
