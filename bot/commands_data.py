"""Handlers for data commands: demo, connect, sync, scheduler."""
from __future__ import annotations


def register(add) -> None:
    pass
