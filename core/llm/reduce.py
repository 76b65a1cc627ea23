"""Input reduction: make CRM records and transcripts fit a token budget without ever cutting a record in half.

`fit_records` reduces a list of records in this order, stopping as soon as the list fits:
1. omit empty values (None, "", [], {});
2. drop the caller's `drop_fields`, in the order given (the least useful first);
3. shorten free text longer than `text_limit` characters at a word boundary, ending in " …";
4. drop the remaining fields that are not `key_fields`, largest first (only when key_fields are given);
5. keep the first records by `sort_by` (75 %) plus an evenly spaced, deterministic sample of the rest (25 %).
Records are only ever kept whole or left out; `Fitted.note` says what was done ("showing 40 of 312 deals (…)").

`summarize_list` is the other reduced form: counts, totals and top groups instead of the records. `fit_text` keeps
the beginning and the end of one long text. `fit_payload` applies these to the top-level values of a prompt's data.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

from core.llm.tokens import CHARS_PER_TOKEN, estimate_tokens

ELLIPSIS = " …"
_EMPTY = (None, "", [], {})


@dataclass
class Fitted:
    records: list[dict[str, Any]]
    total: int
    tokens: int
    dropped_fields: list[str] = field(default_factory=list)
    shortened_fields: list[str] = field(default_factory=list)
    note: str | None = None          # None when nothing had to be reduced

    @property
    def shown(self) -> int:
        return len(self.records)


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending in " …" when cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ELLIPSIS))]
    space = cut.rfind(" ")
    if space > len(cut) // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def fit_records(
    records: Sequence[dict[str, Any]],
    budget_tokens: int,
    *,
    key_fields: Iterable[str] = (),
    drop_fields: Iterable[str] = (),
    sort_by: str | Callable[[dict[str, Any]], Any] | None = None,
    descending: bool = True,
    head_share: float = 0.75,
    text_limit: int = 300,
    label: str = "records",
    measure: Callable[[Any], int] = estimate_tokens,
) -> Fitted:
    """Whole records that fit `budget_tokens` (as measured by `measure`, the estimate of their JSON)."""
    rows = [dict(r) for r in records]
    total = len(rows)
    if measure(rows) <= budget_tokens:
        return Fitted(rows, total, measure(rows))
    keys = set(key_fields)
    dropped: list[str] = []
    shortened: list[str] = []

    rows = [{k: v for k, v in r.items() if not _empty(v)} for r in rows]
    for name in drop_fields:
        if measure(rows) <= budget_tokens:
            break
        if any(name in r for r in rows):
            rows = [{k: v for k, v in r.items() if k != name} for r in rows]
            dropped.append(name)
    if measure(rows) > budget_tokens:
        long = sorted({k for r in rows for k, v in r.items() if isinstance(v, str) and len(v) > text_limit})
        rows = [{k: shorten(v, text_limit) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
        shortened.extend(long)
    if keys and measure(rows) > budget_tokens:
        sizes: Counter[str] = Counter()
        for r in rows:
            for k, v in r.items():
                if k not in keys:
                    sizes[k] += estimate_tokens(v) + estimate_tokens(k)
        for name, _ in sizes.most_common():
            if measure(rows) <= budget_tokens:
                break
            rows = [{k: v for k, v in r.items() if k != name} for r in rows]
            dropped.append(name)

    order = _order(rows, sort_by, descending)
    chosen, head = rows, total
    if measure(rows) > budget_tokens:
        k = _largest_fitting(lambda n: _pick(rows, order, n, head_share)[0], total, budget_tokens, measure)
        chosen, head = _pick(rows, order, k, head_share)
    note = _note(label, len(chosen), total, head, sort_by, dropped, shortened)
    return Fitted(chosen, total, measure(chosen), dropped, shortened, note)


def _empty(value: Any) -> bool:
    return any(value is e or (type(value) is type(e) and value == e) for e in _EMPTY)


def _order(rows: list[dict[str, Any]], sort_by: Any, descending: bool) -> list[int]:
    if sort_by is None:
        return list(range(len(rows)))
    key = sort_by if callable(sort_by) else (lambda r: r.get(sort_by))
    present = [i for i, r in enumerate(rows) if key(r) is not None]
    missing = [i for i, r in enumerate(rows) if key(r) is None]
    return sorted(present, key=lambda i: key(rows[i]), reverse=descending) + missing


def _pick(rows: list[dict[str, Any]], order: list[int], n: int, head_share: float) -> tuple[list[dict], int]:
    """The first ceil(n * head_share) rows in `order`, then n - that many spread evenly over the rest."""
    head = min(n, math.ceil(n * head_share))
    rest = order[head:]
    spread = n - head
    sample = [rest[(j * len(rest)) // spread] for j in range(spread)] if spread else []
    return [rows[i] for i in order[:head] + sample], head


def _largest_fitting(build: Callable[[int], Any], upper: int, budget: int, measure: Callable[[Any], int]) -> int:
    low, high = 0, upper
    while low < high:                      # the largest n whose pick fits (monotone enough to bisect)
        mid = (low + high + 1) // 2
        if measure(build(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    while low > 0 and measure(build(low)) > budget:
        low -= 1
    return low


def _note(label: str, shown: int, total: int, head: int, sort_by: Any, dropped: list[str],
          shortened: list[str]) -> str | None:
    if shown == total and not dropped and not shortened:
        return "empty values omitted" if total else None
    parts = [f"all {total} {label}" if shown == total else f"showing {shown} of {total} {label}"]
    if shown < total and shown:
        by = f"by {sort_by}" if isinstance(sort_by, str) else "in order of importance" if sort_by else "in order"
        sampled = shown - head
        parts[0] += f" (the first {head} {by}" + (f", {sampled} sampled evenly from the rest)" if sampled else ")")
    if dropped:
        parts.append("fields dropped: " + ", ".join(dropped))
    shortened = [name for name in shortened if name not in dropped]
    if shortened:
        parts.append("long text shortened: " + ", ".join(shortened))
    return "; ".join(parts)


def fit_text(text: str, budget_tokens: int, *, label: str = "text",
             measure: Callable[[Any], int] = estimate_tokens) -> tuple[str, str | None]:
    """One long text (a transcript) kept whole if it fits, else its beginning (2/3) and end (1/3) cut at word
    boundaries around a "[… N words omitted …]" marker. Returns the text and a note (None when unchanged)."""
    if measure(text) <= budget_tokens:
        return text, None
    chars = max(0, budget_tokens * CHARS_PER_TOKEN - 40)
    while True:
        head = shorten(text, chars * 2 // 3).removesuffix(ELLIPSIS)
        tail = text[len(text) - chars // 3:] if chars >= 3 else ""
        tail = tail[tail.find(" ") + 1:] if " " in tail else tail
        omitted = len(text[len(head): len(text) - len(tail)].split())
        result = f"{head}\n[… {omitted:,} words omitted …]\n{tail}"
        if measure(result) <= budget_tokens or chars == 0:
            return result, f"{label} shortened: kept {len(head) + len(tail):,} of {len(text):,} characters"
        chars = chars * 9 // 10


def summarize_list(records: Sequence[dict[str, Any]], *, group_by: Iterable[str] = (),
                   sum_fields: Iterable[str] = (), label: str = "records", top: int = 10) -> dict[str, Any]:
    """Counts and aggregates that stand for a list: {"summary_of": "312 deals", "count", "fields": {amount:
    {total, min, max, avg}}, "by": {stage: [{value, count, amount}, …, {"value": "(3 others)", …}]}}."""
    sums = list(sum_fields)
    summary: dict[str, Any] = {"summary_of": f"{len(records)} {label}", "count": len(records), "fields": {}, "by": {}}
    for name in sums:
        values = [_plain(r[name]) for r in records if _number(r.get(name))]
        if values:
            summary["fields"][name] = {"total": sum(values), "min": min(values), "max": max(values),
                                       "avg": round(sum(values) / len(values), 2), "count": len(values)}
    for name in group_by:
        groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"count": 0, **{s: 0 for s in sums}})
        for r in records:
            g = groups[_group_value(r.get(name))]
            g["count"] += 1
            for s in sums:
                g[s] += _plain(r[s]) if _number(r.get(s)) else 0
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["count"], str(kv[0])))
        rows = [{"value": value, **agg} for value, agg in ranked[:top]]
        if len(ranked) > top:
            other = {"value": f"({len(ranked) - top} others)", "count": 0, **{s: 0 for s in sums}}
            for _, agg in ranked[top:]:
                for k in other:
                    if k != "value":
                        other[k] += agg[k]
            rows.append(other)
        summary["by"][name] = rows
    return summary


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> int | float:
    """Decimal (psycopg's numeric) as a float, so sums mix and serialise."""
    return float(value) if isinstance(value, Decimal) else value


def _group_value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def fit_payload(data: dict[str, Any], budget_tokens: int, *,
                measure: Callable[[Any], int] = estimate_tokens) -> tuple[dict[str, Any], list[str]]:
    """`data` whose top-level lists of records and long strings are reduced (fit_records / fit_text) so the whole
    measures within `budget_tokens`; a reduced list becomes {"note": …, "records": […]}. Other values are kept
    as they are. Returns the data and the notes."""
    if measure(data) <= budget_tokens:
        return data, []
    reducible = {k: v for k, v in data.items() if isinstance(v, str) or (isinstance(v, list) and v)}
    fixed = measure({k: v for k, v in data.items() if k not in reducible})
    available = max(0, budget_tokens - fixed - 60 * len(reducible))   # room for keys and notes
    out, notes = dict(data), []
    left = sorted(reducible, key=lambda k: measure(reducible[k]))
    while left:
        name = left.pop(0)
        share = available // (len(left) + 1)
        value = reducible[name]
        if isinstance(value, str):
            text, note = fit_text(value, share, label=name, measure=measure)
            out[name] = text
        elif all(isinstance(r, dict) for r in value):
            fitted = fit_records(value, share, label=name, measure=measure)
            note = fitted.note
            out[name] = {"note": note, "records": fitted.records} if note else fitted.records
        else:                               # a list of plain values: kept whole or left out, like records
            fitted = fit_records([{name: v} for v in value], share, label=name,
                                 measure=lambda rows, key=name: measure([r.get(key) for r in rows]))
            note, items = fitted.note, [r.get(name) for r in fitted.records]
            out[name] = {"note": note, "items": items} if note else items
        if note:
            notes.append(note)
        available -= min(share, measure(out[name]))
    return out, notes
