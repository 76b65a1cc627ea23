"""Quota periods and per-rep quotas: the targets forecast, coverage and scorecards measure against.

A period belongs to a workspace and is keyed by (period_type, start_date); its `team_quota` is the whole
sales team's number, and `rep_quotas` holds one row per rep (keyed by rep name, email kept alongside because
some original skills key by email). Writes are idempotent upserts that only touch a row when a value
changed. Fiscal quarters start at `fy_start_month` (default January, the original's default).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row


@dataclass(frozen=True)
class Period:
    name: str          # "FY2026 Q3"
    period_type: str   # quarter
    start_date: date
    end_date: date


def fiscal_quarter(day: date, fy_start_month: int = 1) -> Period:
    """The fiscal quarter containing `day`; a fiscal year is named after the calendar year it ends in."""
    offset = (day.month - fy_start_month) % 12  # months since the fiscal year started
    y, m = day.year, day.month - offset % 3
    if m < 1:
        y, m = y - 1, m + 12
    start = date(y, m, 1)
    end = (date(y + 1, m - 9, 1) if m > 9 else date(y, m + 3, 1)) - timedelta(days=1)
    fy_start_year = day.year if day.month >= fy_start_month else day.year - 1
    fy_name = fy_start_year if fy_start_month == 1 else fy_start_year + 1
    return Period(f"FY{fy_name} Q{offset // 3 + 1}", "quarter", start, end)


def previous_quarter(day: date, fy_start_month: int = 1) -> Period:
    return fiscal_quarter(fiscal_quarter(day, fy_start_month).start_date - timedelta(days=1), fy_start_month)


# DO UPDATE … WHERE returns no row when nothing changed; the second SELECT finds the id then.
_UPSERT_PERIOD = """
WITH up AS (
    INSERT INTO quota_periods (workspace_id, name, period_type, start_date, end_date, team_quota)
    VALUES (%(workspace_id)s, %(name)s, %(period_type)s, %(start_date)s, %(end_date)s, %(team_quota)s)
    ON CONFLICT (workspace_id, period_type, start_date) DO UPDATE
       SET name = EXCLUDED.name, end_date = EXCLUDED.end_date, team_quota = EXCLUDED.team_quota, updated_at = now()
     WHERE (quota_periods.name, quota_periods.end_date, quota_periods.team_quota)
           IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.end_date, EXCLUDED.team_quota)
    RETURNING id
)
SELECT id FROM up
UNION ALL
SELECT id FROM quota_periods
 WHERE workspace_id = %(workspace_id)s AND period_type = %(period_type)s AND start_date = %(start_date)s
LIMIT 1
"""


def upsert_quota_period(
    conn: psycopg.Connection,
    workspace_id: uuid.UUID | str,
    name: str,
    period_type: str,
    start_date: date,
    end_date: date,
    team_quota: Decimal | float | int | None,
) -> uuid.UUID:
    """Create or update the period starting on `start_date`; returns its id."""
    row = conn.cursor(row_factory=tuple_row).execute(
        _UPSERT_PERIOD,
        {"workspace_id": str(workspace_id), "name": name, "period_type": period_type,
         "start_date": start_date, "end_date": end_date, "team_quota": team_quota},
    ).fetchone()
    return row[0]


_SET_REP = """
INSERT INTO rep_quotas (workspace_id, period_id, rep_name, rep_email, quota_amount)
VALUES (%(workspace_id)s, %(period_id)s, %(rep_name)s, %(rep_email)s, %(amount)s)
ON CONFLICT (workspace_id, period_id, rep_name) DO UPDATE
   SET rep_email = EXCLUDED.rep_email, quota_amount = EXCLUDED.quota_amount, updated_at = now()
 WHERE (rep_quotas.rep_email, rep_quotas.quota_amount) IS DISTINCT FROM (EXCLUDED.rep_email, EXCLUDED.quota_amount)
"""


def set_rep_quota(
    conn: psycopg.Connection,
    workspace_id: uuid.UUID | str,
    period_id: uuid.UUID | str,
    rep_name: str,
    rep_email: str | None,
    amount: Decimal | float | int,
) -> bool:
    """Set one rep's quota for a period; True when a row was written (inserted or changed)."""
    cur = conn.execute(
        _SET_REP,
        {"workspace_id": str(workspace_id), "period_id": str(period_id), "rep_name": rep_name,
         "rep_email": rep_email, "amount": amount},
    )
    return cur.rowcount > 0


_LIST = """
SELECT p.id, p.name, p.period_type, p.start_date, p.end_date, p.team_quota, p.currency,
       r.rep_name, r.rep_email, r.quota_amount
  FROM quota_periods p
  LEFT JOIN rep_quotas r ON r.workspace_id = p.workspace_id AND r.period_id = p.id
 WHERE p.workspace_id = %(workspace_id)s
 ORDER BY p.start_date DESC, p.period_type, r.rep_name
"""


def list_quotas(conn: psycopg.Connection, workspace_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """Every period, newest first, each with `reps`: [{rep_name, rep_email, quota_amount}] sorted by name."""
    periods: dict[Any, dict[str, Any]] = {}
    cur = conn.cursor(row_factory=dict_row)
    for r in cur.execute(_LIST, {"workspace_id": str(workspace_id)}).fetchall():
        period = periods.setdefault(r["id"], {
            "id": r["id"], "name": r["name"], "period_type": r["period_type"], "start_date": r["start_date"],
            "end_date": r["end_date"], "team_quota": r["team_quota"], "currency": r["currency"], "reps": [],
        })
        if r["rep_name"] is not None:
            period["reps"].append({"rep_name": r["rep_name"], "rep_email": r["rep_email"],
                                   "quota_amount": r["quota_amount"]})
    return list(periods.values())


@dataclass
class QuotaConfig:
    """Which quota the skills measure against, and where it came from.

    `source` is "quota_period" (a date-bounded period covering today), "context" (the context layer's
    goals_and_targets quotas), "revenue_target" (only an annual target: no quota to attain) or "none"; `hint`
    tells a user how to set one when it is missing."""

    source: str
    period: Period | None = None
    team_quota: Decimal | None = None
    rep_quotas: dict[str, Decimal] | None = None
    rep_emails: dict[str, str] | None = None
    revenue_target: Decimal | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "period": self.period.__dict__ if self.period else None,
                "team_quota": self.team_quota, "rep_quotas": self.rep_quotas or {},
                "revenue_target": self.revenue_target, "hint": self.hint}


SET_QUOTA_HINT = ("No quota is set for this period. Set one with "
                  "`pandora quota set --workspace W --team 1200000 --rep \"Dana Reyes=150000\"` "
                  "(or `/pandora quota` in Slack).")

_ACTIVE = """
SELECT p.id, p.name, p.period_type, p.start_date, p.end_date, p.team_quota
  FROM quota_periods p
 WHERE p.workspace_id = %(workspace_id)s AND p.start_date <= %(today)s AND p.end_date >= %(today)s
   AND (p.team_quota > 0 OR EXISTS (SELECT 1 FROM rep_quotas r WHERE r.workspace_id = p.workspace_id
                                       AND r.period_id = p.id AND r.quota_amount > 0))
 ORDER BY p.end_date - p.start_date, p.start_date DESC
 LIMIT 1
"""


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def check_quota_config(conn: psycopg.Connection, workspace_id, *, today: date | None = None,
                       context: dict[str, Any] | None = None) -> QuotaConfig:
    """The active date-bounded period first (the shortest one covering today), else the context layer's
    `goals_and_targets` (quotas.team / quarterly_quota and quotas.byRep, for the current fiscal quarter), else
    a bare revenue target, else none — with a hint on how to set one."""
    from core.context import get_context, lookup

    today = today or date.today()
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(_ACTIVE, {"workspace_id": str(workspace_id), "today": today}).fetchone()
    if row:
        reps = cur.execute(
            "SELECT rep_name, rep_email, quota_amount FROM rep_quotas"
            " WHERE workspace_id = %(workspace_id)s AND period_id = %(period_id)s ORDER BY rep_name",
            {"workspace_id": str(workspace_id), "period_id": row["id"]},
        ).fetchall()
        rep_quotas = {r["rep_name"]: r["quota_amount"] for r in reps}
        team = row["team_quota"] if row["team_quota"] else (sum(rep_quotas.values()) or None)
        return QuotaConfig("quota_period", Period(row["name"], row["period_type"], row["start_date"], row["end_date"]),
                           team, rep_quotas, {r["rep_name"]: r["rep_email"] for r in reps if r["rep_email"]})
    ctx = context if context is not None else get_context(conn, workspace_id)
    fy_start = int(lookup(ctx, "business_model.fiscal_year_start_month", 1) or 1)
    team = _decimal(lookup(ctx, "goals_and_targets.quotas.team")) or _decimal(lookup(ctx, "goals_and_targets.quarterly_quota"))
    by_rep = {str(k): _decimal(v) for k, v in (lookup(ctx, "goals_and_targets.quotas.byRep", {}) or {}).items()}
    by_rep = {k: v for k, v in by_rep.items() if v}
    if team or by_rep:
        return QuotaConfig("context", fiscal_quarter(today, fy_start), team or sum(by_rep.values()), by_rep, {})
    target = _decimal(lookup(ctx, "goals_and_targets.revenue_target"))
    if target:
        return QuotaConfig("revenue_target", None, None, {}, {}, target,
                           hint="Only an annual revenue target is set; " + SET_QUOTA_HINT[0].lower() + SET_QUOTA_HINT[1:])
    return QuotaConfig("none", None, None, {}, {}, hint=SET_QUOTA_HINT)
