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
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.file_import import values as V
from connectors.file_import.mapping import FIELDS, stable_source_id
from core.errors import InputError
from core.stages import CLOSED_STAGES, closed_flags, forecast_category_for, normalize_stage, to_percent, validate_stage

SOURCE = "csv_import"
_LIST_SPLIT = re.compile(r"\s*[;|\n]\s*")


@dataclass
class RowError:
    row: int
    column: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


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
        specs = FIELDS[self.entity]
        out: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        raw: dict[str, str] = {}
        currency_from_amount = None
        for header, cell in zip(self.headers, cells):
            text = _cell_text(cell)
            if text is None:
                continue
            raw[header] = text
            target = self.mapping.get(header)
            if target is None:
                custom[header] = text
                continue
            kind = specs[target].type if target in specs else "text"
            try:
                value = self._parse(kind, header, cell)
            except ValueError as exc:
                return RowError(number, header, str(exc))
            if value is None:
                continue
            if kind == "amount":
                value, code = value
                currency_from_amount = currency_from_amount or code
            if target in out:  # a second column for the same field never overwrites the first
                continue
            out[target] = value
        return self._finish(number, out, custom, raw, currency_from_amount)

    def _parse(self, kind: str, header: str, cell: Any) -> Any:
        if kind == "amount":
            amount, code = V.parse_amount(cell)
            return None if amount is None else (amount, code)
        if kind == "date":
            return V.parse_date(cell, self.date_orders.get(header, "mdy"))
        if kind == "datetime":
            return V.parse_datetime(cell, self.date_orders.get(header, "mdy"))
        if kind == "percent":
            return V.parse_percent(cell)
        if kind == "email":
            return V.parse_email(cell)
        if kind == "domain":
            return V.parse_domain(cell)
        if kind == "bool":
            return V.parse_bool(cell)
        if kind == "int":
            return V.parse_int(cell)
        return V.parse_text(cell) if not isinstance(cell, (int, float, Decimal)) else _cell_text(cell)

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
                out["probability"] = to_percent(out["probability"])
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

    def _header_of(self, target: str) -> str | None:
        return next((h for h, f in self.mapping.items() if f == target), None)

    def _stage(self, out: dict[str, Any]) -> None:
        closed, won = closed_flags(out.pop("deal_status", None), out.pop("is_closed", None), out.pop("is_won", None))
        raw = out.get("stage")
        if not raw:
            if closed:  # a Pipedrive-style status with no stage column still says how the deal ended
                out["stage_normalized"] = "closed_won" if won else "closed_lost"
            return
        normalized, confidence, reason = normalize_stage(raw, SOURCE, self.stage_map, probability=out.get("probability"),
                                                         is_closed=closed, is_won=won)
        out["stage_normalized"] = normalized
        if raw not in self.stage_map:  # remembered on apply; only real guesses are worth a warning
            guess = self.stage_guesses.setdefault(raw, StageGuess(raw, normalized, confidence, reason))
            guess.rows += 1
        if "forecast_category" not in out:
            out["forecast_category"] = forecast_category_for(normalized, out.get("probability"))
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
