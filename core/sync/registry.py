"""Which connectors exist. `connectors/` fills this at start-up (core never imports connectors/)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import NotFound
from core.sync.protocol import Connector

_CONNECTORS: dict[str, Connector] = {}


def register(connector: Connector) -> Connector:
    _CONNECTORS[connector.name] = connector
    return connector


def unregister(name: str) -> None:
    _CONNECTORS.pop(name, None)


@contextmanager
def registered(*connectors: Connector) -> Iterator[None]:
    """These connectors for the duration of the block, then whatever was registered under their names before
    (tests and benchmarks point a connector at a local fake server this way)."""
    saved = {c.name: _CONNECTORS.get(c.name) for c in connectors}
    for connector in connectors:
        register(connector)
    try:
        yield
    finally:
        for name, previous in saved.items():
            unregister(name)
            if previous is not None:
                register(previous)


def get(name: str) -> Connector:
    try:
        return _CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(_CONNECTORS)) or "none yet"
        raise NotFound(f"no connector named {name!r} (available: {known})") from None


def names() -> list[str]:
    return sorted(_CONNECTORS)
