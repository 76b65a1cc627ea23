"""The builder every query module shares: a caller's filters, sort and paging → one parameterized statement.

A module declares a `QuerySpec` (table and alias, joins, select list, a whitelist of filters and of sorts) and
`run_query` does the rest: validate and coerce each value, compose the WHERE clause, order with a unique
tiebreaker, page by limit/offset or by keyset cursor, and count the total under the same filters.

It must never put a caller's value into SQL text: SQL text comes only from the spec's constants (a filter or
sort name only selects one of them) and every value travels as a named parameter (`%(p_amount_min)s`). The
first condition is always `workspace_id`; soft-deleted rows are left out unless `include_deleted` is true.
Anything malformed — an unknown filter or sort, a value of the wrong type, a tampered cursor — becomes an
`InputError` naming the parameter before PostgreSQL sees it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import psycopg
from psycopg.rows import dict_row

from core.errors import InputError, NotFound
from core.stages import CLOSED_STAGES as CLOSED

DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 50, 500, 1_000_000_000
MAX_TERMS, MAX_LIST = 10, 1000

# Filter kinds (what `sql` holds for each):
#   eq       a column expression; the value may be a list (→ = ANY); type "ci" compares case-insensitively
#   text     column expressions searched with ILIKE '%term%' (every term must match one of them); an
#            expression containing "{v}" is a template the pattern is put into (e.g. an EXISTS over JSON)
#   min/max  a column expression compared >= / <= (a date bound on a timestamp column covers that whole UTC day)
#   present  a column expression: true → IS NOT NULL (linked), false → IS NULL (unlinked)
#   bool     a boolean column: true → IS TRUE, false → IS NOT TRUE (NULL, e.g. not yet classified, counts false)
#   flag     a null-safe boolean SQL condition: true → (cond), false → NOT (cond)
#   match    a template with "{v}" where one scalar value goes (e.g. EXISTS over deal_contacts)
#   status   the deal stage column; open | closed | won | lost (a NULL or unknown stage counts as open)
KINDS = frozenset({"eq", "text", "min", "max", "present", "bool", "flag", "match", "status"})
TYPES = frozenset({"text", "ci", "uuid", "date", "timestamp", "number", "int", "bool"})
SQL_TYPES = {"text": "text", "date": "date", "timestamp": "timestamptz", "number": "numeric", "int": "bigint"}
STATUSES = {"open": (), "closed": CLOSED, "won": ("closed_won",), "lost": ("closed_lost",)}


@dataclass(frozen=True)
class Filter:
    kind: str
    sql: str | tuple[str, ...]
    type: str = "text"
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.kind in KINDS and self.type in TYPES, (self.kind, self.type)


@dataclass(frozen=True)
class Sort:
    sql: str
    type: str  # text | date | timestamp | number | int: how the key is written into and read from a cursor


@dataclass(frozen=True)
class QuerySpec:
    entity: str
    alias: str
    from_sql: str            # "deals d LEFT JOIN accounts a ON a.workspace_id = d.workspace_id AND …"
    select: str
    filters: Mapping[str, Filter]
    sorts: Mapping[str, Sort]
    default_sort: str
    default_direction: str = "asc"


@dataclass
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def common_filters(alias: str) -> dict[str, Filter]:
    """Filters every entity has: its id(s), its source, and when the record was created (the source's own
    creation time where it sent one, else when we first stored it)."""
    created = f"COALESCE({alias}.source_created_at, {alias}.created_at)"
    return {
        "id": Filter("eq", f"{alias}.id", "uuid"),
        "source": Filter("eq", f"{alias}.source"),
        "created_from": Filter("min", created, "timestamp"),
        "created_to": Filter("max", created, "timestamp"),
    }


def ranges(prefix: str, sql: str, type_: str, lo: str = "from", hi: str = "to") -> dict[str, Filter]:
    """`{prefix}_from` / `{prefix}_to` (or `_min` / `_max`) bounds over one expression, both inclusive."""
    return {f"{prefix}_{lo}": Filter("min", sql, type_), f"{prefix}_{hi}": Filter("max", sql, type_)}


# ---------------------------------------------------------------------------------------------------- values

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_EXPECT = {
    "text": "text", "ci": "text", "uuid": "an id (uuid)", "date": "a date like 2026-03-15",
    "timestamp": "a date like 2026-03-15 or a time like 2026-03-15T09:30:00Z", "number": "a number like 25000",
    "int": "a whole number", "bool": "true or false",
}


def _bad(name: str, value: Any, type_: str) -> InputError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return InputError(f"{name}: {shown} is not {_EXPECT[type_]}", field=name)


def coerce(name: str, value: Any, type_: str) -> Any:
    """One filter value as the database should get it, or InputError naming the parameter."""
    text = value.strip() if isinstance(value, str) else None
    try:
        if type_ in ("text", "ci"):
            if text is None or "\x00" in text:  # PostgreSQL text cannot hold NUL
                raise ValueError
            return text.lower() if type_ == "ci" else text
        if type_ == "uuid":
            return value if isinstance(value, uuid.UUID) else uuid.UUID(text)
        if type_ == "bool":
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if type_ == "date":
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(text)
        if type_ == "timestamp":
            if isinstance(value, (date, datetime)) or text is None:
                parsed = value
            else:
                parsed = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
            if not isinstance(parsed, (date, datetime)):
                raise ValueError
            if isinstance(parsed, datetime) and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)  # naive times are UTC
            return parsed
        if type_ in ("number", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
                raise ValueError
            number = Decimal(text if text is not None else str(value))
            if not number.is_finite() or abs(number.adjusted()) > 100:  # beyond any column we compare with
                raise ValueError
            if type_ == "int" and number != number.to_integral_value():
                raise ValueError
            return int(number) if type_ == "int" else number
    except (ValueError, TypeError, AttributeError, InvalidOperation):
        raise _bad(name, value, type_) from None
    raise AssertionError(type_)


def _as_list(name: str, value: Any) -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    if len(values) > MAX_LIST:
        raise InputError(f"{name}: at most {MAX_LIST} values", field=name)
    return values


# ---------------------------------------------------------------------------------------------------- WHERE

def where(spec: QuerySpec, workspace_id: Any, filters: Mapping[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
    """The conditions (workspace first) and parameters for a filters dict. None values are ignored, so a caller
    can pass optional arguments straight through."""
    a = spec.alias
    params: dict[str, Any] = {"workspace_id": coerce("workspace_id", workspace_id, "uuid")}
    conds = [f"{a}.workspace_id = %(workspace_id)s"]
    filters = dict(filters or {})
    include_deleted = filters.pop("include_deleted", None)
    if include_deleted is None or not coerce("include_deleted", include_deleted, "bool"):
        conds.append(f"{a}.deleted_at IS NULL")
    for name, value in filters.items():
        spec_filter = spec.filters.get(name)
        if spec_filter is None:
            valid = ", ".join(sorted([*spec.filters, "include_deleted"]))
            raise InputError(f"unknown filter {name!r} for {spec.entity}; valid filters: {valid}", field=str(name))
        if value is not None:
            conds.append(_condition(name, spec_filter, value, params))
    return conds, params


def _condition(name: str, f: Filter, value: Any, params: dict[str, Any]) -> str:
    p = f"p_{name}"
    ph = f"%({p})s"
    if f.kind == "eq":
        values = [coerce(name, v, f.type) for v in _as_list(name, value)]
        if f.choices:  # a fixed lowercase vocabulary: compare the column as it is (indexable), the value lowered
            values = [v.lower() for v in values]
            for v in values:
                if v not in f.choices:
                    raise InputError(f"{name}: {v!r} is not one of {', '.join(f.choices)}", field=name)
        lhs = f"lower({f.sql})" if f.type == "ci" else f.sql
        if isinstance(value, (list, tuple, set, frozenset)):
            params[p] = values
            return f"{lhs} = ANY({ph})"
        params[p] = values[0]
        return f"{lhs} = {ph}"
    if f.kind == "text":
        terms = coerce(name, value, "text").split()[:MAX_TERMS]
        parts = []
        for i, term in enumerate(terms):
            params[f"{p}_{i}"] = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            tph = f"%({p}_{i})s"
            exprs = (f.sql,) if isinstance(f.sql, str) else f.sql
            parts.append("(" + " OR ".join(e.replace("{v}", tph) if "{v}" in e else f"{e} ILIKE {tph}" for e in exprs) + ")")
        return " AND ".join(parts) if parts else "TRUE"
    if f.kind in ("min", "max"):
        bound = coerce(name, value, f.type)
        if f.type == "timestamp" and not isinstance(bound, datetime) and bound < date.max:  # a whole UTC day
            start = datetime.combine(bound, time(0), tzinfo=timezone.utc)
            params[p] = start if f.kind == "min" else start + timedelta(days=1)
            return f"{f.sql} >= {ph}" if f.kind == "min" else f"{f.sql} < {ph}"
        params[p] = bound
        return f"{f.sql} >= {ph}" if f.kind == "min" else f"{f.sql} <= {ph}"
    if f.kind == "present":
        return f"{f.sql} IS {'NOT ' if coerce(name, value, 'bool') else ''}NULL"
    if f.kind == "bool":
        return f"{f.sql} IS {'' if coerce(name, value, 'bool') else 'NOT '}TRUE"
    if f.kind == "flag":
        return f"({f.sql})" if coerce(name, value, "bool") else f"NOT ({f.sql})"
    if f.kind == "match":
        params[p] = coerce(name, value, f.type)
        return f"({f.sql.replace('{v}', ph)})"
    if f.kind == "status":
        wanted = {coerce(name, v, "ci") for v in _as_list(name, value)}
        unknown = wanted - STATUSES.keys()
        if unknown:
            raise InputError(f"{name}: {sorted(unknown)[0]!r} is not one of {', '.join(STATUSES)}", field=name)
        parts = []
        if "open" in wanted:
            params[f"{p}_closed"] = list(CLOSED)
            parts.append(f"{f.sql} IS NULL OR {f.sql} <> ALL(%({p}_closed)s)")
        stages = sorted({s for w in wanted for s in STATUSES[w]})
        if stages:
            params[p] = stages
            parts.append(f"{f.sql} = ANY({ph})")
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"  # an empty list matches nothing, as eq's does
    raise AssertionError(f.kind)


# ---------------------------------------------------------------------------------------------------- cursor

def _digest(spec: QuerySpec, conds: list[str], params: dict[str, Any], sort: str, direction: str) -> str:
    """What a cursor was made for; reusing it with other filters, sort or workspace is refused."""
    raw = json.dumps([spec.entity, sort, direction, conds, sorted(params.items())], default=str)
    return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def _encode_key(value: Any) -> Any:
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)  # Decimal: exact as text


def encode_cursor(digest: str, key: Any, row_id: Any) -> str:
    payload = json.dumps({"v": 1, "f": digest, "k": _encode_key(key), "i": str(row_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: Any, digest: str, sort: Sort) -> tuple[Any, uuid.UUID]:
    """(sort key, id) of the row a page ended on; InputError("cursor") for anything we did not hand out.

    A cursor is base64 JSON, not signed: it holds a position and the digest of the query it belongs to. A
    forged but well-formed one can only move the page start within the caller's own workspace and filters."""
    bad = InputError("cursor: not a cursor this query handed out (it may belong to other filters or sort); "
                     "start again without a cursor", field="cursor")
    if not isinstance(cursor, str) or len(cursor) > 2000:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if not isinstance(data, dict) or data.get("v") != 1 or set(data) != {"v", "f", "k", "i"} or data["f"] != digest:
            raise ValueError
        row_id = uuid.UUID(data["i"])
        key = data["k"]
        if key is not None:
            if sort.type == "int":
                if not isinstance(key, int) or isinstance(key, bool) or not -(2**63) <= key < 2**63:
                    raise ValueError
            elif not isinstance(key, str) or "\x00" in key:
                raise ValueError
            elif sort.type != "text":  # text keys are compared exactly as they were handed out
                key = coerce("cursor", key, sort.type)
                if sort.type == "timestamp" and not isinstance(key, datetime):
                    raise ValueError
    except (ValueError, TypeError, AttributeError, RecursionError, binascii.Error, InputError):
        raise bad from None
    return key, row_id


def _after(spec: QuerySpec, sort: Sort, desc: bool, key: Any, params: dict[str, Any]) -> str:
    """Rows strictly after (key, id) in `ORDER BY sort NULLS LAST, id`; NULL keys sort after every value."""
    op = "<" if desc else ">"
    e, idc = sort.sql, f"{spec.alias}.id"
    if key is None:
        return f"({e} IS NULL AND {idc} {op} %(k_id)s)"
    params["k_value"] = key
    kv = f"%(k_value)s::{SQL_TYPES[sort.type]}"
    return f"({e} {op} {kv} OR ({e} = {kv} AND {idc} {op} %(k_id)s) OR {e} IS NULL)"


# ---------------------------------------------------------------------------------------------------- running

def _paging(limit: Any, offset: Any) -> tuple[int, int]:
    values = []
    for name, value, low, high in (("limit", limit, 1, MAX_LIMIT), ("offset", offset, 0, MAX_OFFSET)):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            span = f"between {low} and {high}"
            raise InputError(f"{name}: {value!r} is not a whole number {span}", field=name)
        values.append(value)
    return values[0], values[1]


def run_query(
    conn: psycopg.Connection,
    spec: QuerySpec,
    workspace_id: Any,
    *,
    filters: Mapping[str, Any] | None = None,
    sort: str | None = None,
    direction: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    cursor: str | None = None,
) -> Page:
    """One page of `spec`'s rows, ordered `sort NULLS LAST, id` in `direction` (default: the spec's default
    sort in its natural direction; any other sort ascending).

    `total` is a separate COUNT under the same filters rather than `count(*) OVER ()`: a window count would see
    only the rows after a cursor, and nothing at all on a page past the end. A page that reaches the end
    without a cursor needs no count (offset + rows). `next_cursor` is set whenever more rows follow (also on
    offset pages, so a caller can switch to keyset paging)."""
    sort = spec.default_sort if sort is None else sort
    if sort not in spec.sorts:
        raise InputError(f"unknown sort {sort!r} for {spec.entity}; valid sorts: {', '.join(spec.sorts)}", field="sort")
    if direction is None:  # the default sort has its natural direction (newest first for activity); others asc
        direction = spec.default_direction if sort == spec.default_sort else "asc"
    direction = str(direction).strip().lower()
    if direction not in ("asc", "desc"):
        raise InputError(f"direction: {direction!r} is not asc or desc", field="direction")
    limit, offset = _paging(limit, offset)
    if cursor and offset:
        raise InputError("offset: use either a cursor or an offset, not both", field="offset")
    conds, params = where(spec, workspace_id, filters)
    order = spec.sorts[sort]
    digest = _digest(spec, conds, params, sort, direction)
    page_conds = list(conds)
    page_params = dict(params)
    if cursor:
        key, page_params["k_id"] = decode_cursor(cursor, digest, order)
        page_conds.append(_after(spec, order, direction == "desc", key, page_params))
    page_params.update(limit=limit + 1, offset=offset)
    dir_sql = "DESC" if direction == "desc" else "ASC"
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        f"SELECT {spec.select}, {order.sql} AS _sort_key FROM {spec.from_sql} WHERE {' AND '.join(page_conds)}"
        f" ORDER BY {order.sql} {dir_sql} NULLS LAST, {spec.alias}.id {dir_sql}"
        " LIMIT %(limit)s OFFSET %(offset)s",
        page_params,
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    keys = [row.pop("_sort_key") for row in rows]
    next_cursor = encode_cursor(digest, keys[-1], rows[-1]["id"]) if more else None
    if not cursor and not more and (rows or not offset):
        total = offset + len(rows)  # this page reached the end: no need to count
    else:
        total = cur.execute(
            f"SELECT count(*) AS n FROM {spec.from_sql} WHERE {' AND '.join(conds)}", params
        ).fetchone()["n"]
    return Page(rows, total, limit, offset, next_cursor)


def fetch_one(
    conn: psycopg.Connection, spec: QuerySpec, workspace_id: Any, row_id: Any, *, param: str = "id",
    include_deleted: bool = False,
) -> dict[str, Any]:
    """One row of `spec` by id in this workspace, or NotFound (also for another workspace's id); `param` names
    the caller's argument in errors."""
    key = coerce(param, row_id, "uuid")
    conds, params = where(spec, workspace_id, {"include_deleted": include_deleted})
    params["row_id"] = key
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {spec.select} FROM {spec.from_sql} WHERE {' AND '.join(conds)} AND {spec.alias}.id = %(row_id)s",
        params,
    ).fetchone()
    if row is None:
        raise NotFound(f"no {spec.entity.rstrip('s')} {key} in this workspace", field=param)
    return row
