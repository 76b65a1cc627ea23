"""Fireflies.ai conversation connector (GraphQL): tracked reps' transcripts metadata → conversations."""
from __future__ import annotations


def register():
    from connectors.fireflies.connector import FirefliesConnector
    from core.sync import registry

    return registry.register(FirefliesConnector())
