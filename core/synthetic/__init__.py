"""A seeded, scalable generator of a believable B2B SaaS company ("Demo Co", selling to mid-market).

`generate(seed, scale, today)` is pure (no I/O) and deterministic for its arguments; `write_dataset` writes the
result into a workspace through the one upsert path and runs the post-sync pipeline. This package must never
write entity rows with its own SQL, and never fill columns that post-sync steps own (resolved ids,
`is_internal`, `link_method`, scores): it leaves hints (`*_source_id`, `source_data.crm_context`) instead.

Layout: `vocab` (word lists), `model` (Dataset, clock, random helpers), `org` (people, quotas, accounts,
contacts), `deals` (deals + stage history), `activities`, `meetings` (conversations), `workitems` (tasks,
documents), `leads`, `generator` (assembly), `writer` (the database side), `summary` (the demo report's numbers).
"""
from __future__ import annotations

from core.synthetic.generator import PER_SCALE, generate
from core.synthetic.model import ENTITY_ORDER, Dataset, Person, QuotaPlan
from core.synthetic.vocab import COMPANY_DOMAIN, COMPANY_NAME, SOURCE
from core.synthetic.writer import write_dataset, write_quotas

__all__ = ["COMPANY_DOMAIN", "COMPANY_NAME", "ENTITY_ORDER", "PER_SCALE", "SOURCE", "Dataset", "Person",
           "QuotaPlan", "generate", "write_dataset", "write_quotas"]
