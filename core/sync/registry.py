"""Which connectors exist. `connectors/` fills this at start-up (core never imports connectors/)."""
from __future__ import annotations

from core.errors import NotFound
from core.sync.protocol import Connector

_CONNECTORS: dict[str, Connector] = {}


def register(connector: Connector) -> Connector:
    _CONNECTORS[connector.name] = connector
    return connector


def unregister(name: str) -> None:
    _CONNECTORS.pop(name, None)


def get(name: str) -> Connector:
    try:
        return _CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(_CONNECTORS)) or "none yet"
        raise NotFound(f"no connector named {name!r} (available: {known})") from None


def names() -> list[str]:
    return sorted(_CONNECTORS)
