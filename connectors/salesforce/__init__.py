"""Salesforce: the OAuth connector (connector.py) and its post-sync steps (steps.py). `register()` adds both;
`connectors.load_all()` calls it at start-up."""
from __future__ import annotations


def register():
    from core.sync import registry
    from connectors.salesforce import steps  # noqa: F401  (registers the post-sync steps on import)
    from connectors.salesforce.connector import SalesforceConnector

    return registry.register(SalesforceConnector())
