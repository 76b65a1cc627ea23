"""Turn the cells of one spreadsheet row into one entity row for the upsert path.

A `Transformer` is built once per file from the column mapping (header → field), a sample of rows (each date
column decides its day/month order from its own values) and the workspace's stage mappings. `row()` then
returns either the entity row or a `RowError` naming row, column and reason: a bad row is skipped and
reported, the good rows still go in. Nothing is evaluated: text stays text.

What goes where:
- mapped columns → typed columns; unmapped columns → `custom_fields` (keyed by header);
- the raw row (header → cell as text) → `source_data`;
- `source_id` ← the record-id column, else a stable hash of the natural key (`mapping.stable_source_id`), so
  importing the same file twice creates nothing new;
- contacts' `associated_deals` → `custom_fields.associated_deals` (a list), activities' deal / account names →
  `custom_fields`, their contact email → `participants` (association inference and the linker read them).
`Transformer.pages()` reads a whole file as pages of rows; `signature()` names everything a row depends on
besides its cells (the key of the pages preview keeps for apply, see `parsers.ParsedPages`).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.file_import import values as V
from connectors.file_import.mapping import FIELDS, stable_source_id
from connectors.file_import.parsers import Page, column_parser
from core.errors import InputError
from core.stages import CLOSED_STAGES, closed_flags, forecast_category_for, normalize_stage, to_percent

SOURCE = "csv_import"
_LIST_SPLIT = re.compile(r"\s*[;|\n]\s*")


@dataclass
class RowError:
    row: int
    column: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


_MISSING = object()
KNOWN_STAGE_CONFIDENCE = 0.85  # a default map of some CRM (or the words "closed won/lost") knows the stage


@dataclass
class StageGuess:
    raw: str
    normalized: str
    confidence: float
    reason: str
    rows: int = 0

    @property
    def known(self) -> bool:
        return self.confidence >= KNOWN_STAGE_CONFIDENCE


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _text_value(cell: Any, text: str) -> str | None:
    """A text-kind column's value for a non-str (Excel) cell, as `values.parse_text` reads it."""
    return V.parse_text(cell) if not isinstance(cell, (int, float, Decimal)) else text


@dataclass
class Transformer:
    entity: str
    headers: list[str]
    mapping: dict[str, str | None]
    stage_map: dict[str, str] = field(default_factory=dict)
    date_orders: dict[str, str] = field(default_factory=dict)
    id_column: str | None = None
    stage_guesses: dict[str, StageGuess] = field(default_factory=dict)
    # Natural-key ids already given out in this file (as ints, to stay small for million-row files): a second
    # row with the same key is a second record, numbered in file order, so re-importing gives the same ids.
    _seen_keys: dict[int, int] = field(default_factory=dict)
    # Decided once per column: (header, target field or None, parser or None for text, is an amount).
    _plan: list[tuple[str, str | None, Any, bool]] = field(default_factory=list, init=False, repr=False)
    # normalize_stage and friends are pure: a file has a handful of distinct (stage, probability, flags).
    _stage_memo: dict[tuple, tuple[str, float, str]] = field(default_factory=dict, init=False, repr=False)
    _forecast_memo: dict[tuple, str] = field(default_factory=dict, init=False, repr=False)
    _percent_memo: dict[Decimal, Decimal | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        specs = FIELDS[self.entity]
        for header in self.headers:
            target = self.mapping.get(header)
            kind = specs[target].type if target in specs else "text"
            parse = None if target is None else column_parser(kind, self.date_orders.get(header, "mdy"))
            self._plan.append((header, target, parse, kind == "amount"))

    @classmethod
    def build(cls, entity: str, headers: list[str], mapping: dict[str, str | None], sample: list[list[Any]],
              *, stage_map: dict[str, str] | None = None, id_column: str | None = None) -> "Transformer":
        specs = FIELDS[entity]
        orders = {}
        for i, header in enumerate(headers):
            f = mapping.get(header)
            if f in specs and specs[f].type in ("date", "datetime"):
                orders[header] = V.infer_date_order(row[i] for row in sample if i < len(row))
        if id_column is None:
            id_column = next((h for h, f in mapping.items() if f == "source_id"), None)
        return cls(entity, headers, mapping, stage_map or {}, orders, id_column)

    def row(self, number: int, cells: list[Any]) -> dict[str, Any] | RowError:
        out: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        raw: dict[str, str] = {}
        currency_from_amount = None
        for (header, target, parse, is_amount), cell in zip(self._plan, cells):
            if cell.__class__ is str:  # a CSV cell (read.py already made blank ones None)
                text = cell = cell.strip()
                if not text:
                    continue
            else:
                text = _cell_text(cell)
                if text is None:
                    continue
            raw[header] = text
            if target is None:
                custom[header] = text
                continue
            if parse is None:
                value = text if cell is text else _text_value(cell, text)
            else:
                try:  # parsers strip their input themselves, so the stripped text reads the same as the cell
                    value = parse(cell)
                except ValueError as exc:
                    return RowError(number, header, str(exc))
            if value is None:
                continue
            if is_amount:
                value, code = value
                currency_from_amount = currency_from_amount or code
            if target in out:  # a second column for the same field never overwrites the first
                continue
            out[target] = value
        return self._finish(number, out, custom, raw, currency_from_amount)

    def _finish(self, number: int, out: dict[str, Any], custom: dict[str, Any], raw: dict[str, str],
                currency: str | None) -> dict[str, Any] | RowError:
        entity = self.entity
        full_name = out.pop("full_name", None)
        if full_name and entity in ("contacts", "leads"):
            first, _, last = full_name.partition(" ")
            out.setdefault("first_name", first)
            if last:
                out.setdefault("last_name", last)
        for name in ("associated_deals",):
            if name in out:
                custom[name] = [n for n in _LIST_SPLIT.split(str(out.pop(name))) if n]
        if entity == "activities":
            for name in ("deal_name", "account_name"):
                if name in out:
                    custom[name] = out.pop(name)
            email = out.pop("contact_email", None)
            if email:
                out["participants"] = [{"email": email, "affiliation": "external"}]
        if currency and "currency" in FIELDS[entity] and "currency" not in out:
            out["currency"] = currency
        if entity == "accounts" and "domain" not in out and out.get("website"):
            try:
                out["domain"] = V.parse_domain(out["website"])
            except ValueError:
                pass
        try:
            if "probability" in out:
                out["probability"] = self._to_percent(out["probability"])
        except InputError as exc:
            return RowError(number, self._header_of("probability"), exc.message)
        if entity == "deals":
            self._stage(out)
        missing = _missing_required(entity, out)
        if missing:
            return RowError(number, None, missing)
        source_id = out.pop("source_id", None)
        row = {"source": SOURCE, **out, "custom_fields": custom, "source_data": raw}
        row["source_id"] = str(source_id) if source_id is not None else self._natural_id(row)
        return row

    def _natural_id(self, row: dict[str, Any]) -> str:
        sid = stable_source_id(self.entity, row)
        key = int(sid[2:], 16)
        n = self._seen_keys.get(key, 0)
        self._seen_keys[key] = n + 1
        return sid if n == 0 else stable_source_id(self.entity, row, occurrence=n)

    def pages(self, reader, size: int, max_errors: int) -> Iterator[Page]:
        """The reader's rows as pages of `size` lines (see `page`)."""
        for chunk in reader.chunks(size):
            yield self.page(chunk, max_errors)

    def page(self, chunk: list[tuple[int, list[Any]]], max_errors: int) -> Page:
        """One page of (row number, cells): (good rows, first `max_errors` errors as (row, column, message),
        rows skipped)."""
        good: list[dict[str, Any]] = []
        errors: list[tuple[int, str | None, str]] = []
        skipped = 0
        for number, cells in chunk:
            out = self.row(number, cells)
            if out.__class__ is RowError:
                skipped += 1
                if len(errors) < max_errors:
                    errors.append((out.row, out.column, out.message))
            else:
                good.append(out)
        return good, errors, skipped

    def page_alone(self, chunk: list[tuple[int, list[Any]]], max_errors: int) -> tuple[Page, tuple]:
        """`page()` by a copy of this transform that has seen no page before (in a forked child, while other
        children take other pages), and what the page adds to the file's state, for `merge` in page order:
        its stage guesses (as tuples) and its natural keys with their counts."""
        alone = copy.copy(self)  # shares the column plan and the memos, which are pure
        alone.stage_guesses, alone._seen_keys = {}, {}
        page = alone.page(chunk, max_errors)
        return page, ([astuple(g) for g in alone.stage_guesses.values()], alone._seen_keys)

    def merge(self, state: tuple) -> bool:
        """Add what a page parsed alone found (`page_alone`) after the pages before it; False, adding nothing,
        when its rows reuse a natural key of an earlier page: their ids would be numbered as first occurrences
        (parse that page again with `page`, here, in order)."""
        guesses, keys = state
        if not self._seen_keys.keys().isdisjoint(keys):
            return False
        self._seen_keys.update(keys)
        for raw, normalized, confidence, reason, rows in guesses:
            guess = self.stage_guesses.get(raw)
            if guess is None:
                self.stage_guesses[raw] = StageGuess(raw, normalized, confidence, reason, rows)
            else:
                guess.rows += rows
        return True

    def signature(self) -> dict[str, Any]:
        """Everything `row()` depends on besides the cells, as JSON: the key of the pages preview keeps."""
        firsts = {f: self._header_of(f) for f in self.mapping.values() if f is not None}
        return {"entity": self.entity, "headers": self.headers, "mapping": sorted(self.mapping.items(), key=str),
                "first_header": sorted(firsts.items()), "id_column": self.id_column,
                "date_orders": sorted(self.date_orders.items()), "stage_map": sorted(self.stage_map.items())}

    def _header_of(self, target: str) -> str | None:
        return next((h for h, f in self.mapping.items() if f == target), None)

    def _to_percent(self, value: Any) -> Decimal | None:
        if value.__class__ is not Decimal:
            return to_percent(value)
        percent = self._percent_memo.get(value, _MISSING)  # to_percent reads a Decimal by its value alone
        if percent is _MISSING:
            percent = self._percent_memo[value] = to_percent(value)
        return percent

    def _stage(self, out: dict[str, Any]) -> None:
        status, is_closed, is_won = out.pop("deal_status", None), out.pop("is_closed", None), out.pop("is_won", None)
        if status is None and is_closed is None and is_won is None:
            closed = won = None  # what closed_flags says when nothing says anything
        else:
            closed, won = closed_flags(status, is_closed, is_won)
        raw = out.get("stage")
        if not raw:
            if closed:  # a Pipedrive-style status with no stage column still says how the deal ended
                out["stage_normalized"] = "closed_won" if won else "closed_lost"
            return
        probability = out.get("probability")
        key = (raw, probability, probability.__class__, closed, won)
        if (stage := self._stage_memo.get(key)) is None:
            stage = self._stage_memo[key] = normalize_stage(raw, SOURCE, self.stage_map, probability=probability,
                                                            is_closed=closed, is_won=won)
        normalized, confidence, reason = stage
        out["stage_normalized"] = normalized
        if raw not in self.stage_map:  # remembered on apply; only real guesses are worth a warning
            guess = self.stage_guesses.get(raw)
            if guess is None:
                guess = self.stage_guesses[raw] = StageGuess(raw, normalized, confidence, reason)
            guess.rows += 1
        if "forecast_category" not in out:
            key = (normalized, probability, probability.__class__)
            if (forecast := self._forecast_memo.get(key)) is None:
                forecast = self._forecast_memo[key] = forecast_category_for(normalized, probability)
            out["forecast_category"] = forecast
        if normalized in CLOSED_STAGES and "probability" not in out:
            out["probability"] = Decimal(100 if normalized == "closed_won" else 0)


def _missing_required(entity: str, row: dict[str, Any]) -> str | None:
    if entity == "deals" and not row.get("name"):
        return "no deal name"
    if entity == "contacts" and not (row.get("email") or row.get("first_name") or row.get("last_name")):
        return "neither an email nor a name"
    if entity == "accounts" and not (row.get("name") or row.get("domain")):
        return "neither a company name nor a domain"
    if entity == "leads" and not (row.get("email") or row.get("company") or row.get("last_name")):
        return "neither an email, a name nor a company"
    if entity == "activities" and not (row.get("subject") or row.get("occurred_at")):
        return "neither a subject nor a date"
    return None
