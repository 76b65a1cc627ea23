"""Gong (v2): tracked reps' calls → conversations. See `connectors.gong.connector`."""
from __future__ import annotations


def register():
    from connectors.gong.connector import register as _register

    return _register()
