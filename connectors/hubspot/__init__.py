"""HubSpot: the connector (`connector.py`, registered by `connectors.load_all`), its auth (`auth.py`), record
normalization (`normalize.py`, `engagements.py`, `values.py`), the per-page enrich step (`associations.py`) and
deal ↔ contact links from associations (`deal_contacts.py`: during sync and as a backfill)."""
