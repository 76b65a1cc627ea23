"""The one write path for entity rows: every sync, import and demo write goes through `upsert_rows`.

For one page of rows it:
0. resolves the source references (`account_source_id` → `account_id`, core.db.references) of the rows it
   writes to the rows of the same source stored already: one indexed lookup per reference, before the COPY of
   a first load, else for the rows step 3 finds changed (pages `prepare_rows` serialised ahead, the file
   import's, leave theirs to the post-sync step);
1. serialises each row once and digests it (`row_hash`, over the columns being written, not the resolved ids:
   a reference that resolves only later is not a change of the source's row);
2. while a stream looks like a first load, COPYs the page straight into the table inside a savepoint (a first
   load costs about what a plain COPY does); the first key that already exists rolls that page back and
   switches the stream to step 3;
3. looks the page's keys up in one indexed query and drops the rows whose stored `row_hash` matches: an
   unchanged re-sync never ships those rows to the server at all; if none of the rest exist, COPY them in;
4. otherwise COPYs them into a temp staging table and runs one
   `INSERT … ON CONFLICT (workspace_id, source, source_id) DO UPDATE … WHERE (old) IS DISTINCT FROM (new)`,
   so a row is only rewritten when a value actually changed.
It returns inserted / updated / unchanged counts and, on request, the ids of inserted rows and the full prior
image of updated rows (the file import's rollback restores from them), plus (id, action, row_hash) of every row
it wrote, so a caller can record what it wrote without reading the table back. A first load asked for those
generates the new rows' ids itself (random UUIDs, as the tables' gen_random_uuid() default would) instead of
looking them up. Step 1 can also run ahead of the write: `prepare_rows` (pure CPU, no connection, so a worker
thread can serialise the next page while the server loads this one) returns `PreparedRows`, which
`upsert_rows` takes in place of the rows.

It never commits: the caller's transaction decides, so a page and its sync cursor land together.
Columns a row does not mention are left as they are (on insert they take their defaults); columns owned by
post-sync steps (scores, resolved ids) should therefore not appear in connector rows. A resolved id that is not
found now leaves the stored one as it is (a target missing is not a reference removed).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from core.db.references import LABELS, resolve_page
from core.errors import InputError

ENTITY_TABLES = (
    "accounts", "contacts", "deals", "deal_stage_history", "activities",
    "conversations", "tasks", "calls", "documents", "leads",
)
# Never written from row dicts: keys and bookkeeping the write path owns.
_PROTECTED = frozenset({"workspace_id", "id", "created_at", "updated_at", "row_hash"})
_KEY = ("source", "source_id")


@dataclass
class UpsertResult:
    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    inserted_ids: list[uuid.UUID] = field(default_factory=list)
    prior: list[dict[str, Any]] = field(default_factory=list)
    # With capture_prior: (id, "inserted" | "updated", row_hash) of every row written, in no particular order;
    # with inserted_by_key too, only the updated ones here, and the inserted ones in `inserted_rows`.
    written_rows: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    # With capture_prior and inserted_by_key: (source, source_id, row_hash) of every row inserted.
    inserted_rows: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def add(self, other: "UpsertResult") -> "UpsertResult":
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.inserted_ids.extend(other.inserted_ids)
        self.prior.extend(other.prior)
        self.written_rows.extend(other.written_rows)
        self.inserted_rows.extend(other.inserted_rows)
        return self

    def counts(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    fallback: Any  # what a missing value becomes when the column is NOT NULL with a constant default
    default: str | None = None  # the column's default expression, as PostgreSQL prints it


_column_cache: dict[tuple[str, str], dict[str, Column]] = {}
_CONSTANT_DEFAULT = {"'{}'::jsonb": {}, "'[]'::jsonb": [], "false": False, "true": True}


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, Column]:
    """The columns of an entity table (cached per database)."""
    if table not in ENTITY_TABLES:
        raise InputError(f"{table!r} is not an entity table (one of {', '.join(ENTITY_TABLES)})", field="table")
    key = (f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}", table)
    if key not in _column_cache:
        cur = conn.cursor(row_factory=tuple_row)
        rows = cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)"
            " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (table,),
        ).fetchall()
        cols = {}
        for name, typ, notnull, default in rows:
            fallback = _CONSTANT_DEFAULT.get(default) if notnull else None
            if notnull and default and default.startswith("'") and default.endswith("'::text"):
                fallback = default[1:-len("'::text")]
            cols[name] = Column(name, typ, fallback, default)
        _column_cache[key] = cols
    return _column_cache[key]


# COPY text format: backslash, newline, carriage return and tab are escaped; NULL is \N.
_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_SPECIAL = re.compile(r"[\\\n\r\t]")
_NULL = "\\N"


_JSON = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False)
# The C encoder behind `_JSON.encode`, called directly: encode() sets up a Python closure on every call, a
# quarter of the cost for the small dicts rows hold (e.g. an import's source_data). Same output; None without
# the C accelerator.
_C_JSON = (json.encoder.c_make_encoder(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
           if json.encoder.c_make_encoder is not None else None)


def _json_text(value: Any) -> str:
    # JSON already escapes control characters inside strings, so only its backslashes need doubling.
    text = "".join(_C_JSON(value, 0)) if _C_JSON is not None else _JSON.encode(value)
    return text.replace("\\", "\\\\")


def _bool_text(value: bool) -> str:
    return "t" if value else "f"


# Exact classes first (one dict lookup); subclasses take the isinstance chain below.
_TEXT_OF = {bool: _bool_text, int: str, float: str, Decimal: str, uuid.UUID: str,
            date: date.isoformat, datetime: datetime.isoformat}


def _scalar_text(value: Any) -> str:
    cls = value.__class__
    if cls is str:
        return value.translate(_ESCAPE) if _SPECIAL.search(value) else value
    text_of = _TEXT_OF.get(cls)
    if text_of is not None:
        return text_of(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (str, int, float, Decimal)):  # subclasses (e.g. str enums)
        return str(value).translate(_ESCAPE)
    raise TypeError(f"{cls.__name__} is not a supported value")


def _prepare(table: str, columns: dict[str, Column], rows: Iterable[Mapping[str, Any]]):
    """Validate and serialise a page once, as COPY text lines (no workspace_id, no row_hash).

    Returns (column names, {key: line}, {key: digest}); later duplicates of a key win. The digest covers the
    column names and the line, so the same values written under a different column set differ. A value a row
    leaves out is NULL, or the column's constant default when the column is NOT NULL."""
    rows = rows if isinstance(rows, list) else list(rows)
    cols, data = _plan(table, columns, rows)
    lines: dict[tuple[str, str], str] = {}
    hashes: dict[tuple[str, str], str] = {}
    for key, line, digest in _serialise(table, cols, data, rows):
        lines[key] = line
        hashes[key] = digest
    return cols, lines, hashes


def _plan(table: str, columns: dict[str, Column], rows: list[Mapping[str, Any]]):
    """The page's columns (every key any row uses, validated) and each data column's converter and fallback."""
    cols: list[str] = list(_KEY)
    seen = set(cols)
    for row in rows:
        for name in row:
            if name not in seen:
                if name not in columns or name in _PROTECTED:
                    raise InputError(f"{table}: {name!r} is not a writable column", field=name)
                seen.add(name)
                cols.append(name)
    data = []
    for c in cols[2:]:
        conv = _json_text if columns[c].type == "jsonb" else _scalar_text
        fallback = columns[c].fallback
        data.append((c, conv, _NULL if fallback is None else conv(fallback)))
    return cols, data


def _serialise(table: str, cols: list[str], data: list, rows: list[Mapping[str, Any]], tails: list[str] | None = None):
    """(key, COPY line, digest) per row, lazily: a first load streams these into COPY while the server is
    still loading the lines before them. `tails` (per row, each starting with a tab) are appended to the lines
    after the digest: the ids the write path resolved (core.db.references) are not source values, so a row whose
    reference resolves only later still digests as unchanged."""
    # the digest covers the column names: hash them once, and copy that state for every row
    seeded, special = hashlib.blake2b(("\x1e".join(cols) + "\x1d").encode(), digest_size=16), _SPECIAL.search
    for n, row in enumerate(rows, 1):
        src, sid = row.get("source"), row.get("source_id")
        if not src or sid is None or sid == "":
            raise InputError(f"{table} row {n} has no source/source_id", row=n, field="source_id")
        key = (src, sid if sid.__class__ is str else str(sid))
        try:  # plain strings without special characters (most cells) skip the converter call
            line = "\t".join([_scalar_text(src), _scalar_text(key[1]), *[
                fb if (v := row.get(name)) is None else v if v.__class__ is str and not special(v) else conv(v)
                for name, conv, fb in data]])
        except TypeError as exc:
            bad = next(name for name, conv, _ in data if not _converts(conv, row.get(name)))
            raise InputError(f"{table} row {n}: column {bad!r}: {exc}", row=n, field=bad) from None
        if "\x00" in line:
            raise InputError(f"{table} row {n} contains a NUL character, which PostgreSQL text cannot hold", row=n)
        digest = seeded.copy()
        digest.update(line.encode())
        yield key, line + tails[n - 1] if tails else line, digest.hexdigest()


@dataclass(frozen=True)
class PreparedRows:
    """One page serialised by `prepare_rows`, for `upsert_rows` of the same table."""
    table: str
    columns: dict[str, Column]
    cols: list[str]
    lines: dict[tuple[str, str], str]
    hashes: dict[tuple[str, str], str]
    new_ids: tuple[list[uuid.UUID], list[str]] | None = None  # one random id per key, for a first load


def prepare_rows(table: str, columns: dict[str, Column], rows: Iterable[Mapping[str, Any]], *,
                 new_ids: bool = False) -> PreparedRows:
    """Validate and serialise a page as `upsert_rows` would (same errors), given `table_columns(conn, table)`;
    with `new_ids`, also draw the ids a first load with capture_prior gives its rows (unused otherwise)."""
    cols, lines, hashes = _prepare(table, columns, rows)
    return PreparedRows(table, columns, cols, lines, hashes, _random_ids(len(lines)) if new_ids else None)


def _random_ids(n: int) -> tuple[list[uuid.UUID], list[str]]:
    """n version-4 UUIDs (what gen_random_uuid() makes) and their text, from one read of the OS's randomness."""
    entropy = os.urandom(16 * n)
    ids = [uuid.UUID(bytes=entropy[i:i + 16], version=4) for i in range(0, 16 * n, 16)]
    return ids, [str(i) for i in ids]


def _converts(conv, value) -> bool:
    try:
        value is None or conv(value)
        return True
    except TypeError:
        return False


def _existing(conn, table, workspace_id, keys) -> dict[tuple[str, str], tuple[uuid.UUID, str | None]]:
    """(source, source_id) -> (id, row_hash) of the keys already stored. One source per page is the common
    case and gets the cheaper single-array lookup."""
    cur = conn.cursor(row_factory=tuple_row)
    sources = {k[0] for k in keys}
    if len(sources) == 1:
        rows = cur.execute(
            sql.SQL(
                "SELECT source, source_id, id, row_hash FROM {} WHERE workspace_id = %(workspace_id)s"
                " AND source = %(source)s AND source_id = ANY(string_to_array(%(ids)s, E'\\x1f'))"
            ).format(sql.Identifier(table)),
            {"workspace_id": workspace_id, "source": next(iter(sources)), "ids": "\x1f".join(k[1] for k in keys)},
        ).fetchall()
    else:
        rows = cur.execute(
            sql.SQL(
                "SELECT t.source, t.source_id, t.id, t.row_hash FROM {} t"
                " JOIN unnest(%(sources)s::text[], %(ids)s::text[]) AS k(source, source_id)"
                " ON t.workspace_id = %(workspace_id)s AND t.source = k.source AND t.source_id = k.source_id"
            ).format(sql.Identifier(table)),
            {"workspace_id": workspace_id, "sources": [k[0] for k in keys], "ids": [k[1] for k in keys]},
        ).fetchall()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def _copy(conn, target: sql.Composable, cols: list[str], lines: Iterable[str]) -> None:
    """COPY pre-serialised text lines (`_serialise` did the escaping), sent in chunks of about 128 kB so the
    server loads while the client is still serialising (when `lines` is a generator)."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, cols)))
    with conn.cursor().copy(stmt) as copy:
        batch: list[str] = []
        size = 0
        for line in lines:
            batch.append(line)
            size += len(line)
            if size > 1 << 17:
                copy.write("".join(batch).encode())
                batch, size = [], 0
        if batch:
            copy.write("".join(batch).encode())


# Per (database, table, workspace, sources): does the next page look like more of a first load? While pages keep
# going straight in, we skip the key lookup altogether (a first load then costs about what a plain COPY does).
# The first conflict switches that stream to lookup-first; a page that finds none of its keys switches it back.
_first_load: dict[tuple, bool] = {}


def upsert_rows(
    conn: psycopg.Connection,
    table: str,
    workspace_id: uuid.UUID | str,
    rows: Iterable[Mapping[str, Any]] | PreparedRows,
    *,
    capture_prior: bool = False,
    force: bool = False,
    inserted_by_key: bool = False,
) -> UpsertResult:
    """Write one page of entity rows (or a page `prepare_rows` serialised) for one workspace; see the module
    docstring. `force` skips the digest shortcut (every row goes through the compare-and-update statement).
    `inserted_by_key` (with capture_prior): report inserted rows by key and digest (`inserted_rows`), so no ids
    are drawn here or looked up: the table's default makes them (the file import records its inserts so)."""
    columns = table_columns(conn, table)
    workspace_id = str(workspace_id)
    drawn = None
    by_key = capture_prior and inserted_by_key
    client_ids = capture_prior and not by_key and columns.get("id", _NO_ID).default == "gen_random_uuid()"
    result = UpsertResult(table)
    resolved: list[str] = []  # id columns the write path resolved (prepared pages leave them to the pipeline)
    unresolved: dict[tuple[str, str], Mapping[str, Any]] = {}  # rows whose references wait until they are written
    if isinstance(rows, PreparedRows):
        if rows.table != table or rows.columns != columns:
            raise ValueError(f"rows prepared for {rows.table!r} with other columns cannot be written to {table!r}")
        cols, values, hashes, drawn = rows.cols, rows.lines, rows.hashes, rows.new_ids
    else:
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return result
        cols, data = _plan(table, columns, rows)
        mode = _mode(conn, table, workspace_id, {r.get("source") for r in rows})
        values, hashes = {}, {}
        if not force and _first_load.get(mode, True):  # streamed straight in: every row's references now
            resolved, tails = _resolved_tails(conn, table, workspace_id, rows)
            streamed = _stream_new(conn, table, workspace_id, cols, data, rows, values, hashes, client_ids, result,
                                   resolved, tails)
            if streamed:
                return _all_inserted(conn, table, workspace_id, list(values), capture_prior, result,
                                     hashes if by_key else None)
            _first_load[mode] = False
        else:  # the references of the rows that turn out changed, below (an unchanged re-sync looks none up)
            for row, (key, line, digest) in zip(rows, _serialise(table, cols, data, rows)):
                values[key], hashes[key], unresolved[key] = line, digest, row
        cols = [*cols, *resolved]
    if not values:
        return result
    write_cols = ["workspace_id", *cols, "row_hash"]
    mode = _mode(conn, table, workspace_id, {k[0] for k in values})
    if not force and _first_load.get(mode, True):
        if _insert_new(conn, table, workspace_id, write_cols, list(values), values, hashes, client_ids, result, drawn):
            return _all_inserted(conn, table, workspace_id, list(values), capture_prior, result,
                                 hashes if by_key else None)
        _first_load[mode] = False
    existing = _existing(conn, table, workspace_id, list(values))
    _first_load[mode] = not existing
    todo = [k for k in values if force or k not in existing or existing[k][1] != hashes[k]]
    result.unchanged = len(values) - len(todo)
    if not todo:
        return result
    if unresolved:
        resolved, tails = _resolved_tails(conn, table, workspace_id, [unresolved[k] for k in todo])
        if resolved:
            for key, tail in zip(todo, tails):
                values[key] += tail
            cols = [*cols, *resolved]
            write_cols = ["workspace_id", *cols, "row_hash"]
    if not any(k in existing for k in todo) and _insert_new(conn, table, workspace_id, write_cols, todo, values,
                                                            hashes, client_ids, result):
        return _all_inserted(conn, table, workspace_id, todo, capture_prior, result, hashes if by_key else None)
    payload = [f"{workspace_id}\t{values[k]}\t{hashes[k]}\n" for k in todo]
    try:
        _merge(conn, table, workspace_id, cols, payload, write_cols, capture_prior, result, len(todo), by_key,
               keep=frozenset(resolved))
    except psycopg.errors.DataError as exc:
        raise InputError(f"{table}: {str(exc).strip().splitlines()[0]}", field=_field_of(exc)) from None
    return result


_NO_ID = Column("id", "uuid", None)


def _resolved_tails(conn, table: str, workspace_id: str, rows: list) -> tuple[list[str], list[str] | None]:
    """The id columns the page's source references resolve to now (core.db.references) and, per row, their
    COPY text as a line tail (NULL where not found)."""
    resolved, values = resolve_page(conn, table, workspace_id, rows)
    if not resolved:
        return [], None
    return resolved, ["".join("\t" + (_NULL if v is None else str(v)) for v in vals) for vals in values]


def _mode(conn, table: str, workspace_id: str, sources: set) -> tuple:
    if len(_first_load) > 10_000:
        _first_load.clear()
    return (conn.info.host, conn.info.port, conn.info.dbname, table, workspace_id, frozenset(sources))


def _stream_new(conn, table, workspace_id, cols, data, rows, values, hashes, client_ids: bool, result,
                resolved: list[str], tails: list[str] | None) -> bool:
    """A first-load page: serialise rows straight into a COPY (inside a savepoint), filling `values`/`hashes` as
    it goes. False, with nothing written and both dicts complete, when a key already exists (or repeats in
    the page): the caller then takes the lookup path. `resolved`/`tails`: see `_resolved_tails`."""
    ids, texts = _random_ids(len(rows)) if client_ids else ([], [])
    keys: list[tuple[str, str]] = []

    def lines():
        for i, (key, line, digest) in enumerate(_serialise(table, cols, data, rows, tails)):
            values[key], hashes[key] = line, digest
            keys.append(key)
            yield f"{workspace_id}\t{texts[i]}\t{line}\t{digest}\n" if client_ids else f"{workspace_id}\t{line}\t{digest}\n"

    stream = lines()
    write_cols = ["workspace_id", *(["id"] if client_ids else []), *cols, *resolved, "row_hash"]
    if not _copy_new(conn, table, write_cols, stream):
        for _ in stream:  # finish serialising: the lookup path needs every row
            pass
        return False
    if len(keys) != len(values):  # a key repeated within the page cannot have been copied twice
        raise AssertionError("duplicate key slipped through COPY")
    if client_ids:
        result.inserted_ids = ids
        result.written_rows = [(i, "inserted", hashes[k]) for i, k in zip(ids, keys)]
    return True


def _insert_new(conn, table, workspace_id, write_cols, keys, values, hashes, client_ids: bool, result,
                drawn: tuple[list[uuid.UUID], list[str]] | None = None) -> bool:
    """`_copy_new` of these keys; with `client_ids` the ids are generated here (or `drawn` already, one per key)
    and kept in `result` (the same random UUIDs the gen_random_uuid() default makes), so `_all_inserted` has
    nothing to look up."""
    if not client_ids:
        return _copy_new(conn, table, write_cols, [f"{workspace_id}\t{values[k]}\t{hashes[k]}\n" for k in keys])
    ids, texts = drawn if drawn is not None and len(drawn[0]) == len(keys) else _random_ids(len(keys))
    payload = [f"{workspace_id}\t{t}\t{values[k]}\t{hashes[k]}\n" for t, k in zip(texts, keys)]
    if not _copy_new(conn, table, ["workspace_id", "id", *write_cols[1:]], payload):
        return False
    result.inserted_ids = ids
    result.written_rows = [(i, "inserted", hashes[k]) for i, k in zip(ids, keys)]
    return True


def _copy_new(conn, table: str, write_cols: list[str], payload: list[str]) -> bool:
    """COPY rows straight into the table inside a savepoint; False (and nothing written) if one already exists."""
    try:
        with conn.transaction():
            _copy(conn, sql.Identifier(table), write_cols, payload)
        return True
    except psycopg.errors.UniqueViolation:
        return False
    except psycopg.errors.DataError as exc:
        raise InputError(f"{table}: {str(exc).strip().splitlines()[0]}", field=_field_of(exc)) from None


def _all_inserted(conn, table, workspace_id, keys, capture_prior: bool, result: UpsertResult,
                  by_key: dict[tuple[str, str], str] | None = None) -> UpsertResult:
    result.inserted += len(keys)
    if by_key is not None:  # reported by key, with the digests written
        result.inserted_rows = [(k[0], k[1], by_key[k]) for k in keys]
    elif capture_prior and not result.written_rows:  # ids made by the table's default: look them up
        found = _existing(conn, table, workspace_id, keys).values()
        result.inserted_ids = [v[0] for v in found]
        result.written_rows = [(v[0], "inserted", v[1]) for v in found]
    return result


def _field_of(exc: psycopg.Error) -> str | None:
    ctx = getattr(exc.diag, "context", None) or ""
    # COPY errors say e.g. 'COPY deals, line 3, column amount: "abc"'
    if "column " in ctx:
        return ctx.split("column ", 1)[1].split(":", 1)[0]
    return None


def _merge(conn, table, workspace_id, cols, payload, write_cols, capture_prior, result, staged,
           by_key: bool = False, keep: frozenset[str] = frozenset()) -> None:
    """Stage the payload and upsert it in one statement. Columns in `keep` (ids the write path resolved) do not
    overwrite a stored value with NULL: a reference not found now is not a reference removed; the labels among
    them are written on insert only (core.db.references.LABELS)."""
    stage = f"_stage_{table}_{hashlib.md5(','.join(cols).encode()).hexdigest()[:10]}"
    ident = sql.Identifier(table)
    st = sql.Identifier(stage)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA").format(
            st, sql.SQL(", ").join(map(sql.Identifier, write_cols)), ident
        )
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(st))
    _copy(conn, st, write_cols, payload)
    data_cols = [c for c in cols if c not in _KEY and not (c in keep and c in LABELS)]
    col_list = sql.SQL(", ").join(map(sql.Identifier, write_cols))

    def incoming(c: str) -> sql.Composable:
        return sql.SQL("COALESCE(EXCLUDED.{0}, t.{0})" if c in keep else "EXCLUDED.{0}").format(sql.Identifier(c))

    set_list = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), incoming(c)) for c in [*data_cols, "row_hash"]
    )
    if data_cols:
        changed = sql.SQL("WHERE ({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in data_cols),
            sql.SQL(", ").join(incoming(c) for c in data_cols),
        )
        action = sql.SQL("DO UPDATE SET {}, updated_at = now() {}").format(set_list, changed)
    else:
        action = sql.SQL("DO NOTHING")
    upsert = sql.SQL(
        "INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT (workspace_id, source, source_id) {}"
        " RETURNING t.id, (t.xmax = 0) AS inserted, t.row_hash, t.source, t.source_id"
    ).format(ident, col_list, col_list, st, action)
    cur = conn.cursor(row_factory=tuple_row)
    if capture_prior:
        stmt = sql.SQL(
            "WITH prior AS (SELECT t.* FROM {} t JOIN {} s ON t.workspace_id = %(workspace_id)s"
            " AND t.source = s.source AND t.source_id = s.source_id), up AS ({})"
            " SELECT up.id, up.inserted, CASE WHEN up.inserted THEN NULL ELSE to_jsonb(prior) END, up.row_hash,"
            " up.source, up.source_id"
            " FROM up LEFT JOIN prior ON prior.id = up.id"
        ).format(ident, st, upsert)
        rows = cur.execute(stmt, {"workspace_id": workspace_id}).fetchall()
        result.inserted_ids = [r[0] for r in rows if r[1]]
        result.prior = [r[2] for r in rows if not r[1]]
        result.written_rows = [(r[0], "inserted" if r[1] else "updated", r[3]) for r in rows
                               if not (by_key and r[1])]
        if by_key:
            result.inserted_rows = [(r[4], r[5], r[3]) for r in rows if r[1]]
    else:
        rows = cur.execute(upsert).fetchall()
    result.inserted = sum(1 for r in rows if r[1])
    result.updated = len(rows) - result.inserted
    result.unchanged += staged - len(rows)
