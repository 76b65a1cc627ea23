"""The import batch lifecycle: pending (preview) → applied → rolled_back.

- `preview` copies the file under `$PANDORA_HOME/imports/<batch>/` and reads that copy once: classifies it,
  maps its columns, parses every row and stores a pending batch (entity, mapping, counts, 5 sample rows as they
  would be stored, errors, warnings). It writes nothing to entity tables. The parsed rows are kept beside the
  copy (`parsers.ParsedPages`), keyed by everything they depend on.
- `apply` writes, in one transaction through the one upsert path, the rows preview kept (or parses the copy
  again when anything they depend on changed since, e.g. a stage mapping), serialising the next page in a worker
  thread while the server loads the current one; it records for every row it inserted or updated what it wrote
  (and the prior image of updated rows) in `import_batch_changes`; then the post-sync pipeline links the rows.
- `rollback` is true: inserted rows are deleted and updated rows get their prior values back. A row changed
  since by a later batch (or anything else) makes it refuse, naming the later change, unless forced.
"""
from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from connectors.file_import.mapping import ENTITIES, apply_overrides, map_columns
from connectors.file_import.read import open_table
from connectors.file_import.parsers import BulkGcPause, DamagedPages, ForkedMap, ParsedPages
from connectors.file_import.transform import SOURCE, RowError, StageGuess, Transformer
from core.db.upsert import PreparedRows, prepare_rows, table_columns, upsert_rows
from core.errors import InputError, NotFound
from core.pipeline import run_post_sync
from core.pipeline.references import clear_dangling_references

CHUNK = 5_000  # rows a page: one COPY, one change record, one stored page
FIRST_PART = 2_000  # apply sends the first page in parts of this many rows (see serialised)
MAX_STORED_ERRORS = 500
SAMPLE_ROWS = 5


class ImportConflict(InputError):
    code = "import_conflict"


# ---------------------------------------------------------------------------------------------------- helpers

def _saved_mappings(conn, workspace_id) -> dict[str, dict[str, str]]:
    row = conn.execute(
        "SELECT metadata->'saved_mappings' AS m FROM connections"
        " WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
        {"workspace_id": workspace_id, "name": SOURCE},
    ).fetchone()
    return (row and row["m"]) or {}


def _stage_map(conn, workspace_id) -> dict[str, str]:
    rows = conn.execute(
        "SELECT raw_stage, stage_normalized FROM stage_mappings WHERE workspace_id = %(workspace_id)s AND source = %(source)s",
        {"workspace_id": workspace_id, "source": SOURCE},
    ).fetchall()
    return {r["raw_stage"]: r["stage_normalized"] for r in rows}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A sample row as it would be stored, in JSON terms (dates as ISO text, amounts as numbers)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        if isinstance(v, Decimal):
            return float(v)
        return v

    return {k: plain(v) for k, v in row.items()}


def _classify(settings, headers, sample, entity: str | None):
    """(entity, ColumnMapping-like dict, classification dict, warnings)."""
    from connectors.file_import.classifier import classify

    if entity:
        if entity not in ENTITIES:
            raise InputError(f"--entity must be one of {', '.join(ENTITIES)}, got {entity!r}", field="entity")
        mapping = map_columns(headers, entity, sample)
        return entity, mapping.columns, {"entity": entity, "confidence": 1.0, "method": "user"}, list(mapping.warnings)
    result = classify(headers, sample, api_key=settings.fireworks_api_key, base_url=settings.fireworks_base_url,
                      model=settings.classify_model)
    warnings = list(result.warnings)
    if result.fallback_reason:
        warnings.append(f"heuristic classification ({result.fallback_reason})")
    info = {"entity": result.entity, "confidence": result.confidence, "method": result.method, "model": result.model,
            "fallback_reason": result.fallback_reason}
    return result.entity, dict(result.columns), info, warnings


def _scan(reader, transformer: Transformer, filename: str, pages: ParsedPages, serialise):
    """Preview's one pass over the file: counts, first errors, sample rows; every page is kept for apply,
    serialised by `serialise(good rows)`. Two forked workers (`ForkedMap`) parse and keep the pages, each as if
    it were the first, and report on them here, in order, where what each page adds to the file's state is
    merged."""
    def parse_alone(numbered):
        number, chunk = numbered
        page, state = transformer.page_alone(chunk, MAX_STORED_ERRORS)
        good, errs, n = page
        return _report(page, state), pages.keep(number, lambda: (serialise(good), errs, n))

    rows = skipped = 0
    errors: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    with ForkedMap(enumerate(reader.chunks(CHUNK)), parse_alone) as parsed:
        for (number, chunk), (report, digest) in parsed:
            pages.kept(number, digest)
            page_errors, page_skipped, good, page_samples, state = report
            if not transformer.merge(state):  # its natural keys repeat an earlier page's: number them here
                pages.forget()
                page_errors, page_skipped, good, page_samples, _ = _report(transformer.page(chunk, MAX_STORED_ERRORS))
            rows += good + page_skipped
            skipped += page_skipped
            errors += [_error(RowError(*e), filename) for e in page_errors[:MAX_STORED_ERRORS - len(errors)]]
            samples += page_samples[:SAMPLE_ROWS - len(samples)]
    return rows, skipped, errors, samples


def _report(page, state=None) -> tuple:
    """What preview keeps of a page: (errors, rows skipped, good rows, the first sample rows, transform state)."""
    good, errors, skipped = page
    return errors, skipped, len(good), [_jsonable(out) for out in good[:SAMPLE_ROWS]], state


def astuple_prepared(prepared: PreparedRows) -> tuple:
    """A serialised page as the plain values a kept page holds: (cols, lines, digests)."""
    return prepared.cols, prepared.lines, prepared.hashes


def _page_signature(transformer: Transformer, writable) -> dict[str, Any]:
    """What a kept page depends on besides the file and the code: the transform, and the table's columns
    (their order, types and defaults decide the serialised lines)."""
    return {**transformer.signature(), "columns": [(c.name, c.type, str(c.fallback)) for c in writable.values()]}


def _serialised(entity: str, writable, number: int, good: list[dict[str, Any]]) -> list[tuple]:
    """A page's good rows as COPY lines (`astuple_prepared`); the first page in small parts, so the server
    starts loading after a part, not a page."""
    step = FIRST_PART if number == 0 else len(good) or 1
    return [astuple_prepared(prepare_rows(entity, writable, good[start:start + step]))
            for start in range(0, max(len(good), 1), step)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _error(err: RowError, filename: str) -> dict[str, Any]:
    where = f"{filename} row {err.row}" + (f", {err.column}" if err.column else "")
    return {**err.to_dict(), "message": f"{where}: {err.message}; row skipped"}


def _stage_warnings(transformer: Transformer) -> list[str]:
    return [
        f"stage {g.raw!r} is not mapped: guessed {g.normalized} ({g.reason}; {g.rows} rows). "
        f"Change it with `pandora stages set {g.raw!r} STAGE`"
        for g in transformer.stage_guesses.values() if not g.known
    ]


def _order_warning(conn, workspace_id, entity: str) -> list[str]:
    if entity not in ("contacts", "deals"):
        return []
    n = conn.execute("SELECT count(*) AS n FROM accounts WHERE workspace_id = %(workspace_id)s",
                     {"workspace_id": workspace_id}).fetchone()["n"]
    if n:
        return []
    return [f"no accounts in this workspace yet: {entity} will be linked to accounts when you import them "
            "(import accounts first for the best links)"]


# ---------------------------------------------------------------------------------------------------- preview

def preview(db, settings, workspace_id, path: str | Path, *, entity: str | None = None, sheet: str | None = None,
            overrides: dict[str, str] | None = None, filename: str | None = None, created_by: str | None = None
            ) -> dict[str, Any]:
    path = Path(path)
    filename = filename or path.name
    batch_id = uuid.uuid4()
    home = settings.pandora_home / "imports" / str(batch_id)
    stored = home / Path(filename).name
    pages = ParsedPages(home, stored.name)
    try:
        with open_table(path, sheet=sheet, max_bytes=settings.import_max_bytes, filename=filename):
            pass  # an unreadable file is refused before anything is stored
        # Everything below reads our copy: the counts, the kept pages and file_sha256 describe the same bytes.
        home.mkdir(parents=True)
        shutil.copyfile(path, stored)
        with open_table(stored, sheet=sheet, max_bytes=settings.import_max_bytes, filename=filename) as reader:
            info = reader.info
            sample = [cells for _, cells in reader.sample(10)]
            entity, columns, classification, warnings = _classify(settings, info.headers, sample, entity)
            with db.connection() as conn:
                saved = _saved_mappings(conn, workspace_id).get(entity, {})
                stage_map = _stage_map(conn, workspace_id)
                warnings += _order_warning(conn, workspace_id, entity)
                writable = table_columns(conn, entity)
            saved = {h: f for h, f in saved.items() if h in info.headers}
            columns = apply_overrides(columns, {**saved, **(overrides or {})}, entity)
            transformer = Transformer.build(entity, info.headers, columns, sample, stage_map=stage_map)
            pages.start()
            with BulkGcPause():
                rows, skipped, errors, samples = _scan(
                    reader, transformer, filename, pages,
                    lambda good: astuple_prepared(prepare_rows(entity, writable, good)))
        warnings += _stage_warnings(transformer)
        if skipped:
            warnings.append(f"{skipped} of {rows} rows have errors and will be skipped")
        sha = _sha256(stored)
        pages.seal(ParsedPages.key(_page_signature(transformer, writable), sha, CHUNK),
                   [astuple(g) for g in transformer.stage_guesses.values()])
        with db.connection() as conn:
            batch = conn.execute(
                """INSERT INTO import_batches (workspace_id, id, filename, file_size, file_sha256, sheet, entity, status,
                       classification, mapping, row_count, skipped, errors, warnings, sample_rows, created_by, options,
                       stored_path)
                   VALUES (%(workspace_id)s, %(id)s, %(filename)s, %(size)s, %(sha)s, %(sheet)s, %(entity)s, 'pending',
                       %(classification)s, %(mapping)s, %(rows)s, %(skipped)s, %(errors)s, %(warnings)s, %(samples)s,
                       %(created_by)s, %(options)s, %(stored)s)
                   RETURNING id""",
                {"workspace_id": workspace_id, "id": batch_id, "filename": filename, "size": stored.stat().st_size,
                 "sha": sha, "sheet": info.sheet, "entity": entity, "classification": Jsonb(classification),
                 "mapping": Jsonb(columns), "rows": rows, "skipped": skipped, "errors": Jsonb(errors),
                 "warnings": Jsonb(warnings), "samples": Jsonb(samples), "created_by": created_by,
                 "options": Jsonb({"sheet": sheet, "overrides": overrides or {}, "format": info.format,
                                   "header_row": info.header_row}), "stored": str(stored)},
            ).fetchone()
    except BaseException:
        pages.discard()
        shutil.rmtree(home, ignore_errors=True)
        raise
    return get_batch(db, workspace_id, batch["id"])


# ---------------------------------------------------------------------------------------------------- apply

def _load(conn, workspace_id, batch_id, *, lock: bool = False) -> dict[str, Any]:
    try:
        uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound(f"no import batch {batch_id!r} in this workspace") from None
    row = conn.execute(
        "SELECT * FROM import_batches WHERE workspace_id = %(workspace_id)s AND id = %(id)s"
        + (" FOR UPDATE" if lock else ""),
        {"workspace_id": workspace_id, "id": str(batch_id)},
    ).fetchone()
    if row is None:
        raise NotFound(f"no import batch {batch_id} in this workspace")
    return row


_CHANGES_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS _import_changes (row_id uuid, source text, source_id text,"
                  " prior jsonb, written_hash text) ON COMMIT DROP")

# Updated rows, merged into import_batch_changes. A row this batch inserted on an earlier page (the file names
# the same record twice) stays 'inserted' (rollback deletes it) with the digest written last, which supersedes
# the one kept in import_batch_inserts.
_RECORD_UPDATES = """
INSERT INTO import_batch_changes (workspace_id, batch_id, entity, row_id, action, prior, written_hash)
SELECT %(workspace_id)s, %(batch_id)s, %(entity)s, s.row_id,
       CASE WHEN mine.source_id IS NULL THEN 'updated' ELSE 'inserted' END,
       CASE WHEN mine.source_id IS NULL THEN s.prior END, s.written_hash
  FROM _import_changes s
  LEFT JOIN (SELECT i.source, u.source_id
               FROM import_batch_inserts i CROSS JOIN LATERAL unnest(i.source_ids) AS u (source_id)
              WHERE i.workspace_id = %(workspace_id)s AND i.batch_id = %(batch_id)s AND i.entity = %(entity)s
            ) mine ON mine.source = s.source AND mine.source_id = s.source_id
ON CONFLICT (workspace_id, batch_id, entity, row_id) DO UPDATE SET written_hash = EXCLUDED.written_hash
"""


def _array_literal(texts: list[str]) -> str:
    """A text[] literal of `texts`, each element quoted (a list parameter is adapted element by element in
    Python: ten times slower for the 10,000 source ids of a page)."""
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in texts) + "}"


def _record_changes(conn, workspace_id, batch_id, entity: str, result, page: int) -> None:
    """Remember what page `page` of the apply wrote (with the digest it wrote), keeping the first action per
    row: a row the batch inserted and a later line of the same file updated is still 'inserted'.

    Everything comes from `result`, so the entity table is never read back. Inserted rows (upsert_rows with
    inserted_by_key) go in by key, one import_batch_inserts row per page and source (two arrays: one statement,
    no per-row index entries, no ids to draw); updated rows, by id with their prior image, as
    import_batch_changes rows."""
    ident = {"workspace_id": workspace_id, "batch_id": batch_id, "entity": entity}
    by_source: dict[str, tuple[list[str], list[str]]] = {}
    for source, source_id, digest in result.inserted_rows:
        ids, digests = by_source.setdefault(source, ([], []))
        ids.append(source_id)
        digests.append(digest)
    for source, (ids, digests) in by_source.items():
        conn.execute(
            "INSERT INTO import_batch_inserts (workspace_id, batch_id, entity, page, source, source_ids,"
            " written_hashes) VALUES (%(workspace_id)s, %(batch_id)s, %(entity)s, %(page)s, %(source)s,"
            " %(ids)s::text[], %(hashes)s::text[])",
            {**ident, "page": page, "source": source, "ids": _array_literal(ids), "hashes": _array_literal(digests)})
    if not result.prior:
        return
    digests = {str(row_id): digest for row_id, action, digest in result.written_rows if action == "updated"}
    conn.execute(_CHANGES_STAGE)
    conn.execute("TRUNCATE _import_changes")
    with conn.cursor().copy("COPY _import_changes (row_id, source, source_id, prior, written_hash) FROM STDIN") as copy:
        for prior in result.prior:
            copy.write_row((prior["id"], prior["source"], prior["source_id"], Jsonb(prior),
                            digests[str(prior["id"])]))
    conn.execute(_RECORD_UPDATES, ident)


def confirm(db, workspace_id, batch_id) -> None:
    """pending → confirmed (committed on its own, so a failed apply leaves a visible trace)."""
    with db.connection() as conn:
        batch = _load(conn, workspace_id, batch_id, lock=True)
        if batch["status"] not in ("pending", "confirmed", "failed"):
            raise InputError(f"batch {batch_id} is {batch['status']}; only a pending batch can be applied", field="status")
        conn.execute("UPDATE import_batches SET status = 'confirmed', confirmed_at = now(), updated_at = now()"
                     " WHERE workspace_id = %(workspace_id)s AND id = %(id)s", {"workspace_id": workspace_id, "id": batch["id"]})


def apply(db, settings, workspace_id, batch_id, *, run_pipeline: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    confirm(db, workspace_id, batch_id)
    try:
        return _apply(db, settings, workspace_id, batch_id, run_pipeline, started)
    except Exception as exc:
        message = exc.message if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        with db.connection() as conn:
            conn.execute(
                "UPDATE import_batches SET status = 'failed', warnings = warnings || %(w)s, updated_at = now()"
                " WHERE workspace_id = %(workspace_id)s AND id = %(id)s AND status = 'confirmed'",
                {"workspace_id": workspace_id, "id": str(batch_id), "w": Jsonb([f"apply failed: {message}"])})
        raise


def _apply(db, settings, workspace_id, batch_id, run_pipeline: bool, started: float) -> dict[str, Any]:
    with db.connection() as conn:
        batch = _load(conn, workspace_id, batch_id, lock=True)
        if batch["status"] != "confirmed":
            raise InputError(f"batch {batch_id} is {batch['status']}; it was applied by someone else", field="status")
        stored = Path(batch["stored_path"] or "")
        if not stored.is_file():
            raise InputError(f"the file of batch {batch_id} ({batch['filename']}) is no longer available; import it again")
        entity, columns = batch["entity"], batch["mapping"]
        stage_map = _stage_map(conn, workspace_id)
        inserted = updated = unchanged = skipped = 0
        errors: list[dict[str, Any]] = []
        kept = ParsedPages(stored.parent, stored.name)
        with open_table(stored, sheet=batch["sheet"], max_bytes=settings.import_max_bytes,
                        filename=batch["filename"]) as reader:
            sample = [cells for _, cells in reader.sample(10)]
            transformer = Transformer.build(entity, reader.info.headers, columns, sample, stage_map=stage_map)
            # What preview parsed, unless anything the rows depend on changed since (e.g. `pandora stages set`).
            writable = table_columns(conn, entity)
            cached = kept.load(ParsedPages.key(_page_signature(transformer, writable), _sha256(stored), CHUNK))

            def write(parts: list[tuple], page_errors: list, page_skipped: int) -> None:
                nonlocal inserted, updated, unchanged, skipped, errors, recorded
                skipped += page_skipped
                errors += [_error(RowError(*e), batch["filename"])
                           for e in page_errors[:MAX_STORED_ERRORS - len(errors)]]
                for cols, lines, hashes in parts:
                    prepared = PreparedRows(entity, writable, cols, lines, hashes)
                    result = upsert_rows(conn, entity, workspace_id, prepared, capture_prior=True,
                                         inserted_by_key=True)
                    _record_changes(conn, workspace_id, batch["id"], entity, result, recorded)
                    recorded += 1
                    inserted, updated = inserted + result.inserted, updated + result.updated
                    unchanged += result.unchanged

            sent = recorded = 0  # pages written, parts recorded
            guesses: list[tuple] = []
            with BulkGcPause():
                if cached:  # serialised by preview: straight to the server
                    spans, guesses = cached
                    # the next page is read and checked while the server loads this one (reading and hashing
                    # release the GIL), so the server never waits for the disk between pages
                    with ThreadPoolExecutor(1) as reader_thread:
                        try:
                            pending = reader_thread.submit(kept.read, spans[0]) if spans else None
                            for number in range(len(spans)):
                                part, page_errors, page_skipped = pending.result()
                                if number + 1 < len(spans):
                                    pending = reader_thread.submit(kept.read, spans[number + 1])
                                write([part], page_errors, page_skipped)
                                sent += 1
                        except DamagedPages:  # the rest from the file (the pages before it parsed again, not sent)
                            cached = None
                if not cached:
                    def parsed_page(numbered):  # in a worker: a page parsed again, alone, and serialised
                        number, chunk = numbered
                        (good, errs, n), state = transformer.page_alone(chunk, MAX_STORED_ERRORS)
                        return _serialised(entity, writable, number, good), errs, n, state

                    # two workers parse and serialise the next pages while the server loads this one
                    with ForkedMap(enumerate(reader.chunks(CHUNK)), parsed_page) as produced:
                        for (number, chunk), (parts, errs, n, state) in produced:
                            if not transformer.merge(state):  # natural keys of an earlier page: parse it here
                                good, errs, n = transformer.page(chunk, MAX_STORED_ERRORS)
                                parts = _serialised(entity, writable, number, good)
                            if number >= sent:
                                write(parts, errs, n)
                    guesses = [astuple(g) for g in transformer.stage_guesses.values()]
        for guess in (StageGuess(*g) for g in guesses):
            conn.execute(
                "INSERT INTO stage_mappings (workspace_id, source, raw_stage, stage_normalized, origin, confidence)"
                " VALUES (%(workspace_id)s, %(source)s, %(raw)s, %(stage)s, %(origin)s, %(confidence)s)"
                " ON CONFLICT (workspace_id, source, raw_stage) DO NOTHING",
                {"workspace_id": workspace_id, "source": SOURCE, "raw": guess.raw, "stage": guess.normalized,
                 "origin": "default" if guess.known else "inferred", "confidence": guess.confidence},
            )
        overrides = (batch["options"] or {}).get("overrides") or {}
        conn.execute(
            "INSERT INTO connections (workspace_id, connector_name, metadata)"
            " VALUES (%(workspace_id)s, %(name)s, jsonb_build_object('saved_mappings', jsonb_build_object(%(entity)s::text, %(overrides)s::jsonb)))"
            " ON CONFLICT (workspace_id, connector_name) DO UPDATE SET metadata = jsonb_set(connections.metadata, '{saved_mappings}',"
            "   COALESCE(connections.metadata->'saved_mappings', '{}') || jsonb_build_object(%(entity)s::text,"
            "   COALESCE(connections.metadata->'saved_mappings'->%(entity)s, '{}') || %(overrides)s::jsonb)),"
            "   last_sync_at = now(), last_sync_status = 'succeeded', updated_at = now()",
            {"workspace_id": workspace_id, "name": SOURCE, "entity": entity, "overrides": Jsonb(overrides)},
        )
        conn.execute(
            "UPDATE import_batches SET status = 'applied', inserted = %(inserted)s, updated = %(updated)s,"
            " skipped = %(skipped)s, errors = %(errors)s, applied_at = now(),"
            " updated_at = now() WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": workspace_id, "id": batch["id"], "inserted": inserted, "updated": updated,
             "skipped": skipped, "errors": Jsonb(errors)},
        )
    kept.discard()  # applied: the parsed pages are no longer needed (rollback uses import_batch_changes)
    result = get_batch(db, workspace_id, batch_id)
    result["unchanged"] = unchanged
    if run_pipeline:
        with db.connection() as conn:
            if inserted >= 1000:  # fresh statistics before the pipeline joins the new rows
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(entity)))
        result["steps"] = run_post_sync(db, workspace_id, incremental=True)
    _log_run(db, workspace_id, entity, {"fetched": inserted + updated + unchanged + skipped, "inserted": inserted,
                                        "updated": updated, "unchanged": unchanged}, result.get("steps", []),
             int((time.perf_counter() - started) * 1000))
    return result


def _log_run(db, workspace_id, entity: str, counts: dict[str, int], steps: list, ms: int) -> None:
    """Imports are recorded in sync_log like syncs (connector csv_import, trigger import), with their steps."""
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO sync_log (workspace_id, connector_name, trigger, status, counts, steps, records_fetched,"
            " finished_at, duration_ms) VALUES (%(workspace_id)s, %(name)s, 'import', 'succeeded', %(counts)s,"
            " %(steps)s, %(fetched)s, now(), %(ms)s)",
            {"workspace_id": workspace_id, "name": SOURCE, "counts": Jsonb({entity: counts}), "steps": Jsonb(steps),
             "fetched": counts["fetched"], "ms": ms},
        )


# ---------------------------------------------------------------------------------------------------- rollback

# Every row the batch wrote, once, with the digest it wrote last: import_batch_changes (updated rows, and
# inserted rows a later page rewrote) over import_batch_inserts (the rest of the inserted rows, by key: row_id
# is NULL for one that is gone).
_BATCH_ROWS = """
WITH batch_rows AS (
    SELECT c.row_id, c.prior->>'source_id' AS source_id, c.action, c.prior, c.written_hash
      FROM import_batch_changes c
     WHERE c.workspace_id = %(workspace_id)s AND c.batch_id = %(batch_id)s AND c.entity = %(entity)s
    UNION ALL
    SELECT t.id, u.source_id, 'inserted', NULL::jsonb, u.written_hash
      FROM import_batch_inserts i
     CROSS JOIN LATERAL unnest(i.source_ids, i.written_hashes) AS u (source_id, written_hash)
      LEFT JOIN {table} t ON t.workspace_id = %(workspace_id)s AND t.source = i.source AND t.source_id = u.source_id
     WHERE i.workspace_id = %(workspace_id)s AND i.batch_id = %(batch_id)s AND i.entity = %(entity)s
       AND NOT EXISTS (SELECT 1 FROM import_batch_changes c
                        WHERE c.workspace_id = i.workspace_id AND c.batch_id = i.batch_id AND c.entity = i.entity
                          AND c.row_id = t.id)
)
"""

# Rows changed since the batch was applied: gone, rewritten (another digest), or inserted again by a later
# batch after they were deleted (the same key: imports write one source, csv_import); the later batch is named.
_CONFLICTS = _BATCH_ROWS + """, later_inserts AS (
    SELECT u.source_id, b.applied_at,
           b.id || ' (' || b.filename || ', applied ' || to_char(b.applied_at, 'YYYY-MM-DD HH24:MI') || ')' AS batch
      FROM import_batch_inserts l
      JOIN import_batches b ON b.workspace_id = l.workspace_id AND b.id = l.batch_id
     CROSS JOIN LATERAL unnest(l.source_ids) AS u (source_id)
     WHERE l.workspace_id = %(workspace_id)s AND l.entity = %(entity)s
       AND b.status = 'applied' AND b.applied_at > %(applied_at)s
)
SELECT c.row_id, COALESCE(t.source_id, c.source_id) AS source_id, t.row_hash IS NULL AS gone,
       COALESCE(
           (SELECT b.id || ' (' || b.filename || ', applied ' || to_char(b.applied_at, 'YYYY-MM-DD HH24:MI') || ')'
              FROM import_batch_changes l
              JOIN import_batches b ON b.workspace_id = l.workspace_id AND b.id = l.batch_id
             WHERE l.workspace_id = %(workspace_id)s AND l.entity = %(entity)s AND l.row_id = c.row_id
               AND b.status = 'applied' AND b.applied_at > %(applied_at)s
             ORDER BY b.applied_at DESC LIMIT 1),
           (SELECT li.batch FROM later_inserts li WHERE li.source_id = COALESCE(t.source_id, c.source_id)
             ORDER BY li.applied_at DESC LIMIT 1)) AS later_batch
  FROM batch_rows c
  LEFT JOIN {table} t ON t.workspace_id = %(workspace_id)s AND t.id = c.row_id
 WHERE t.id IS NULL OR t.row_hash IS DISTINCT FROM c.written_hash
    OR COALESCE(t.source_id, c.source_id) IN (SELECT source_id FROM later_inserts)
 LIMIT 20
"""


def batch_rows(conn, workspace_id, batch_id, entity: str) -> list[dict[str, Any]]:
    """What an applied batch wrote: one {row_id, source_id, action, prior, written_hash} per row, in no set
    order (row_id NULL: an inserted row that is gone)."""
    stmt = sql.SQL(_BATCH_ROWS + "SELECT * FROM batch_rows").format(table=sql.Identifier(entity))
    return conn.execute(stmt, {"workspace_id": workspace_id, "batch_id": batch_id, "entity": entity}).fetchall()


def rollback(db, workspace_id, batch_id, *, force: bool = False, run_pipeline: bool = True) -> dict[str, Any]:
    with db.connection() as conn:
        batch = _load(conn, workspace_id, batch_id, lock=True)
        if batch["status"] != "applied":
            raise InputError(f"batch {batch_id} is {batch['status']}; only an applied batch can be rolled back", field="status")
        entity = batch["entity"]
        table = sql.Identifier(entity)
        params = {"workspace_id": workspace_id, "batch_id": batch["id"], "entity": entity, "applied_at": batch["applied_at"]}
        conflicts = conn.execute(sql.SQL(_CONFLICTS).format(table=table), params).fetchall()
        if conflicts and not force:
            first = conflicts[0]
            by = (f"by batch {first['later_batch']}" if first["later_batch"]
                  else "since (by a later import, a sync or an edit)")
            what = "was deleted" if first["gone"] else f"was changed {by}"
            raise ImportConflict(
                f"cannot roll back batch {batch_id}: {len(conflicts)}{'+' if len(conflicts) == 20 else ''} of its "
                f"{entity} rows changed since it was applied; e.g. {entity} row {first['source_id'] or first['row_id']} "
                f"{what}. Roll back the later batch first, or pass --force to restore anyway", field="batch")
        deleted = conn.execute(sql.SQL(_BATCH_ROWS + "DELETE FROM {table} t USING batch_rows c"
                                       " WHERE c.action = 'inserted' AND t.workspace_id = %(workspace_id)s"
                                       " AND t.id = c.row_id").format(table=table), params).rowcount
        cols = [r["attname"] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " AND attname NOT IN ('workspace_id', 'id')", (entity,)).fetchall()]
        restored = conn.execute(sql.SQL(
            "UPDATE {table} t SET ({cols}) = ({vals}) FROM import_batch_changes c,"
            " jsonb_populate_record(NULL::{table}, c.prior) p"
            " WHERE c.workspace_id = %(workspace_id)s AND c.batch_id = %(batch_id)s AND c.entity = %(entity)s"
            " AND c.action = 'updated' AND t.workspace_id = c.workspace_id AND t.id = c.row_id").format(
                table=table, cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
                vals=sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c)) for c in cols)), params).rowcount
        cleared = clear_dangling_references(conn, workspace_id)
        conn.execute(
            "UPDATE import_batches SET status = 'rolled_back', rolled_back_at = now(), updated_at = now()"
            " WHERE workspace_id = %(workspace_id)s AND id = %(batch_id)s", params)
    result = get_batch(db, workspace_id, batch_id)
    result.update({"deleted": deleted, "restored": restored, "references_cleared": cleared, "forced": bool(conflicts)})
    if run_pipeline:
        result["steps"] = run_post_sync(db, workspace_id)
    return result


# ---------------------------------------------------------------------------------------------------- reading

def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch_id": str(row["id"]), "status": row["status"], "filename": row["filename"], "entity": row["entity"],
        "sheet": row["sheet"], "mapping": row["mapping"], "classification": row["classification"],
        "rows": row["row_count"], "inserted": row["inserted"], "updated": row["updated"], "skipped": row["skipped"],
        "errors": row["errors"], "warnings": row["warnings"], "sample_rows": row["sample_rows"],
        "created_at": row["created_at"], "applied_at": row["applied_at"], "rolled_back_at": row["rolled_back_at"],
    }


def get_batch(db, workspace_id, batch_id) -> dict[str, Any]:
    with db.connection() as conn:
        return _public(_load(conn, workspace_id, batch_id))


def list_batches(db, workspace_id, limit: int = 50) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM import_batches WHERE workspace_id = %(workspace_id)s ORDER BY created_at DESC LIMIT %(limit)s",
            {"workspace_id": workspace_id, "limit": limit},
        ).fetchall()
    return [{k: v for k, v in _public(r).items() if k not in ("sample_rows", "mapping", "classification")} for r in rows]
