"""Render a database's schema as stable text, for the checked-in snapshot test."""
from __future__ import annotations

import re

SNAPSHOT_QUERIES = {
    "column": """
        SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname, a.attnum""",
    "constraint": """
        SELECT c.relname || ' ' || pg_get_constraintdef(k.oid)
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         ORDER BY 1""",
    "index": """
        SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname""",
}


def render(conn) -> str:
    lines = []
    for kind, query in SNAPSHOT_QUERIES.items():
        for (text,) in conn.execute(query).fetchall():
            # NOT NULL constraints are catalogued as constraints from PostgreSQL 18 on; columns already say it.
            if kind == "constraint" and " NOT NULL " in f" {text} " and text.split(" ", 1)[1].startswith("NOT NULL"):
                continue
            lines.append(kind + " " + re.sub(r"\s+", " ", text).strip())
    return "\n".join(lines) + "\n"
