"""The `csv_import` connector: CSV/Excel exports from any CRM → preview → apply → true rollback.

read.py (open and stream any tabular export) → mapping.py / classifier.py (what entity, which column is
what) → values.py (values as people write them) → transform.py (cells → entity rows) → batch.py (the
pending → applied → rolled_back lifecycle, through the one upsert path).
"""
