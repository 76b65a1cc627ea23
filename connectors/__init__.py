"""Source connectors. `load_all()` registers every connector package with `core.sync.registry`
(core never imports this package: the bot and CLI call `load_all()` at start-up)."""
from __future__ import annotations

_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Connector packages register themselves here as they land (hubspot, salesforce, gong, ...).
    from connectors.hubspot.connector import register as _hubspot; _hubspot()  # noqa: E702
    from connectors.salesforce import register as _salesforce; _salesforce()  # noqa: E702
    from connectors.fireflies import register as _fireflies; _fireflies()  # noqa: E702
    from connectors.gong import register as _gong; _gong()  # noqa: E702
    from connectors.google_drive import register as _google_drive; _google_drive()  # noqa: E702
    from connectors.monday import register as _monday; _monday()  # noqa: E702
