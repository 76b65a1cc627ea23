"""Benchmark of the skills' COMPUTE phase on a 100k-deal workspace.

Run:  .venv/bin/python bench/skills.py [--deals 100000] [--repeat 3] [--trials 10000] [--mc-open 5000]
(DATABASE_URL if set, else the embedded server; a scratch database `pandora_bench_<pid>` is created, migrated
and dropped at the end, also on error or Ctrl-C.) Not a test: CI never runs it, and it always exits 0.

The workspace is generated directly (seeded, deterministic) and written through `upsert_rows`, the one write
path, then the post-sync steps run over it as after a sync (stage normalization, references, associations,
internal filter, CWD, computed fields: `last_activity_at`, days in stage, risk), then VACUUM ANALYZE (as
autovacuum would have after the load and the pipeline's updates). The linker step is skipped unless
--full-pipeline: every bench activity already names its deal, and at 100k deals the linker alone took ~9 minutes
on a 2-core box (5.7 s at 10k deals). Shape, per 100k deals:
  accounts 20k (3 % without a domain), contacts 60k (5 % without an email),
  deals 100k: 30 % open (exactly --mc-open of them due in the current fiscal quarter, the rest spread over the
  year around it), 20 % won, 50 % lost over the last two years; 2 % without an amount, 1 % without an owner,
  half without a forecast category; half the closed deals closed after their close date (slippage history);
  stage history ~4 entries a deal; activities 2 a deal over the last 120 days; 40 reps whose quotas for the
  current quarter add up to closed won so far + 38 % of the open pipeline due in it.

Each skill's `compute(ctx)` is called with a SkillContext built here (no skill_runs row, no LLM), --repeat times;
the median wall time is kept. Targets: forecast-rollup, pipeline-coverage, pipeline-hygiene and
data-quality-audit < 0.5 s each; monte-carlo-forecast (--trials over the --mc-open open deals) < 1 s.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and this file would shadow the `skills` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402 (the path fix above must come first)
import os
import platform
import random
import signal
import statistics
import time
import traceback
import uuid
from datetime import date, datetime, time as dtime, timedelta, timezone

import psycopg
from psycopg import sql

from bench._scratch import scratch_database
from core.context import get_context
from core.db.database import Database
from core.db.upsert import upsert_rows
from core.errors import NotFound
from core.llm import LLMConfig, RunBudget
from core.pipeline import PipelineRun, steps
from core.quotas import fiscal_quarter, set_rep_quota, upsert_quota_period
from core.settings import Settings
from core.stages import OPEN_STAGES, default_probability
from core.workspaces import create_workspace
from skills import registry
from skills.monte_carlo import simulate
from skills.runtime import SkillContext, parse_params

FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jonas"]
LAST = ["Okafor", "Schmidt", "Nakamura", "Garcia"]
REPS = [f"{f} {l}" for f in FIRST for l in LAST]  # 40
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent"]
SUFFIX = ["Corp", "Labs", "Systems", "Logistics", "Health", "Capital", "GmbH", "Inc"]
PAGE = 5000
TARGETS = {"forecast-rollup": 0.5, "pipeline-coverage": 0.5, "pipeline-hygiene": 0.5, "data-quality-audit": 0.5,
           "monte-carlo-forecast": 1.0}


def utc(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, dtime(hour), timezone.utc)


def accounts(n: int, rng: random.Random):
    for i in range(n):
        yield {"source": "bench", "source_id": f"a{i}", "name": f"{rng.choice(WORDS)} {rng.choice(SUFFIX)} {i % (n // 2 or 1)}",
               "domain": None if rng.random() < 0.03 else f"co{i}.example.com", "industry": rng.choice(SUFFIX)}


def contacts(n: int, n_accounts: int, rng: random.Random):
    for i in range(n):
        a = rng.randrange(n_accounts)
        yield {"source": "bench", "source_id": f"c{i}", "first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
               "email": None if rng.random() < 0.05 else f"p{i}@co{a}.example.com", "account_source_id": f"a{a}"}


def deals(n: int, n_accounts: int, mc_open: int, today: date, period, rng: random.Random):
    """(deal row, stage history rows) for n deals; see the module docstring for the shape."""
    open_seen = 0
    span = (period.end_date - period.start_date).days
    for i in range(n):
        kind = i % 10
        owner = None if rng.random() < 0.01 else REPS[rng.randrange(len(REPS))]
        amount = None if rng.random() < 0.02 else round(rng.lognormvariate(10.3, 0.9), -2)
        row = {"source": "bench", "source_id": f"d{i}", "name": f"Deal {i}", "owner": owner, "amount": amount,
               "account_source_id": f"a{rng.randrange(n_accounts)}",
               "next_step": "follow up" if rng.random() < 0.7 else None}
        if kind < 3:  # open
            top = rng.randrange(len(OPEN_STAGES))
            stage = OPEN_STAGES[top]
            if open_seen < mc_open:
                close = period.start_date + timedelta(days=rng.randint(0, span))
            else:
                close = (period.end_date + timedelta(days=rng.randint(1, 365)) if rng.random() < 0.8
                         else period.start_date - timedelta(days=rng.randint(1, 120)))
            open_seen += 1
            created = min(today, close) - timedelta(days=rng.randint(10, 200))
            end = today
            row.update(stage_normalized=stage, stage=stage, close_date=close)
        else:
            won = kind < 5
            top = len(OPEN_STAGES) - 1 if won else rng.randrange(len(OPEN_STAGES))
            close = today - timedelta(days=rng.randint(0, 730))
            slip = max(0, round(rng.gauss(12, 20))) if rng.random() < 0.5 else 0
            stage = "closed_won" if won else "closed_lost"
            created = close - timedelta(days=rng.randint(20, 200))
            end = close + timedelta(days=slip)
            row.update(stage_normalized=stage, stage=stage, close_date=close, closed_at=utc(end))
        probability = default_probability(row["stage_normalized"])
        row.update(probability=probability, source_created_at=utc(created, 9),
                   forecast_category=None if rng.random() < 0.5 else
                   ("commit" if probability >= 80 else "best_case" if probability >= 60 else "pipeline"))
        steps = list(OPEN_STAGES[:top + 1]) + ([row["stage_normalized"]] if kind >= 3 else [])
        gap = max(1, (end - created).days // len(steps))
        history = [{"source": "bench", "source_id": f"d{i}-{k}", "deal_source_id": f"d{i}", "stage": s,
                    "stage_normalized": s, "entered_at": utc(created + timedelta(days=k * gap), 10)}
                   for k, s in enumerate(steps)]
        yield row, history


def activities(n: int, n_deals: int, today: date, rng: random.Random):
    for i in range(n):
        d = rng.randrange(n_deals)
        yield {"source": "bench", "source_id": f"x{i}", "activity_type": rng.choice(["email", "call", "meeting", "note"]),
               "occurred_at": utc(today - timedelta(days=rng.randint(1, 120)), rng.randint(8, 18)),
               "deal_source_id": f"d{d}", "owner": REPS[d % len(REPS)], "subject": "touch base"}


def write(db, ws: str, table: str, rows) -> int:
    n, page = 0, []
    for row in rows:
        page.append(row)
        if len(page) == PAGE:
            with db.connection() as conn:
                n += upsert_rows(conn, table, ws, page).inserted
            page = []
    if page:
        with db.connection() as conn:
            n += upsert_rows(conn, table, ws, page).inserted
    return n


def build(db, ws: str, args, today: date, period) -> dict[str, int]:
    rng = random.Random(args.seed)
    n_accounts, n_contacts = args.deals // 5, args.deals * 3 // 5
    counts = {"accounts": write(db, ws, "accounts", accounts(n_accounts, rng)),
              "contacts": write(db, ws, "contacts", contacts(n_contacts, n_accounts, rng))}
    counts["deals"] = counts["deal_stage_history"] = 0
    page: list[tuple[dict, list[dict]]] = []
    for item in deals(args.deals, n_accounts, args.mc_open, today, period, rng):
        page.append(item)
        if len(page) == PAGE or len(page) + counts["deals"] == args.deals:
            counts["deals"] += write(db, ws, "deals", (row for row, _ in page))
            counts["deal_stage_history"] += write(db, ws, "deal_stage_history", (h for _, hist in page for h in hist))
            page = []
    counts["activities"] = write(db, ws, "activities", activities(args.deals * 2, args.deals, today, rng))
    with db.connection() as conn:
        for table in counts:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return counts


def post_sync(db, ws: str, skip: tuple[str, ...]) -> list[dict]:
    """The post-sync steps in order, as `run_post_sync` runs them, minus `skip`."""
    with db.connection() as conn:
        run = PipelineRun(ws, None, get_context(conn, ws))
    report = []
    for step in steps():
        if step.name in skip:
            report.append({"name": step.name, "ms": None})
            continue
        t = time.perf_counter()
        with db.connection() as conn:
            step.fn(conn, run)
        report.append({"name": step.name, "ms": (time.perf_counter() - t) * 1000})
    return report


def set_quotas(db, ws: str, period) -> tuple[float, float, float]:
    """Quotas sized to the data, as a team would set them: closed won so far + 38 % of what is open and due
    this period (so coverage and P(quota) land somewhere interesting), split evenly over the reps."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(amount) FILTER (WHERE stage_normalized = 'closed_won'), 0) AS won,"
            "       COALESCE(sum(amount) FILTER (WHERE stage_normalized NOT IN ('closed_won', 'closed_lost')), 0) AS open"
            "  FROM deals WHERE workspace_id = %(workspace_id)s AND close_date BETWEEN %(start)s AND %(end)s",
            {"workspace_id": ws, "start": period.start_date, "end": period.end_date}).fetchone()
        rep = round((float(row["won"]) + 0.38 * float(row["open"])) / len(REPS), -3)
        period_id = upsert_quota_period(conn, ws, period.name, "quarter", period.start_date, period.end_date,
                                        rep * len(REPS))
        for name in REPS:
            set_rep_quota(conn, ws, period_id, name, None, rep)
    return float(row["won"]), float(row["open"]), rep * len(REPS)


def context_for(db, settings, ws: str, skill, params: dict, today: date) -> SkillContext:
    with db.connection() as conn:
        context = get_context(conn, ws)
    llm = LLMConfig.from_settings(settings)
    return SkillContext(db, settings, ws, parse_params(skill, params), context, today, llm,
                        RunBudget.from_config(llm), str(uuid.uuid4()), skill.name)


def time_compute(db, settings, ws: str, name: str, params: dict, today: date, repeat: int):
    try:
        skill = registry.get(name)
    except NotFound:
        return None
    runs = []
    for k in range(repeat + 1):  # one untimed warm-up: imports, the pool's first connections, plan caches
        ctx = context_for(db, settings, ws, skill, params, today)
        t = time.perf_counter()
        out = skill.compute(ctx)
        if k:
            runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--mc-open", type=int, default=5_000, help="open deals due in the current quarter")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--full-pipeline", action="store_true",
                    help="also run the linker steps (minutes at 100k deals; every bench activity names its deal anyway)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the `with` below drops the database

    settings = Settings.from_env()
    with scratch_database(settings) as url:
        benchmark(url, args, settings)


def benchmark(url: str, args, settings: Settings) -> None:
    """The benchmark, in the scratch database at `url`; its pool is closed before the database is dropped."""
    db = None
    try:
        db = Database(url, min_size=1, max_size=4)
        with db.connection() as conn:
            ws = str(create_workspace(conn, "Bench")["id"])
            version = conn.execute("SHOW server_version").fetchone()["server_version"]
        import matplotlib
        import numpy

        print(f"PostgreSQL {version}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), Python "
              f"{sys.version.split()[0]}, numpy {numpy.__version__}, matplotlib {matplotlib.__version__}, "
              f"{platform.machine()} x{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
        today = date.today()
        period = fiscal_quarter(today)
        t0 = time.perf_counter()
        counts = build(db, ws, args, today, period)
        t1 = time.perf_counter()
        print(f"built {', '.join(f'{t} {n:,}' for t, n in counts.items())} in {t1 - t0:.1f} s", flush=True)
        report = post_sync(db, ws, skip=() if args.full_pipeline else ("linker", "linker_activities"))
        t2 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as admin:  # as autovacuum would have, after the pipeline's updates
            for table in counts:
                admin.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        print(f"post-sync pipeline {t2 - t1:.1f} s ("
              + ", ".join(f"{s['name']} " + (f"{s['ms'] / 1000:.1f}" if s["ms"] is not None else "skipped")
                          for s in report) + f"); VACUUM ANALYZE {time.perf_counter() - t2:.1f} s")
        won, open_amount, quota = set_quotas(db, ws, period)
        print(f"period closed won {won:,.0f}, open due in period {open_amount:,.0f}; team quota {quota:,.0f} "
              f"(won + 38 % of open) over {len(REPS)} reps")
        print(f"today {today}, period {period.name} {period.start_date}..{period.end_date}; "
              f"median of {args.repeat} after a warm-up\n", flush=True)

        rows = []
        for name in ("forecast-rollup", "pipeline-coverage", "pipeline-hygiene", "data-quality-audit",
                     "monte-carlo-forecast"):
            params = {"trials": args.trials, "seed": 1} if name == "monte-carlo-forecast" else {}
            timed = time_compute(db, settings, ws, name, params, today, args.repeat)
            if timed is None:
                print(f"  {name:<22} not available")
                rows.append((name, None, None, "not available"))
                continue
            median, runs, out = timed
            detail = ""
            if name == "monte-carlo-forecast":
                detail = (f"{out['trials']:,} trials x {out['open_deals']:,} open deals; P10 {float(out['p10']):,.0f}"
                          f" P50 {float(out['p50']):,.0f} P90 {float(out['p90']):,.0f}, P(quota) {out['p_hit_quota']:.2f}"
                          f", win rates from {out['win_rate_basis']}, slippage {out['slippage']['basis']}")
            elif name == "forecast-rollup":
                detail = f"base {float(out['base']):,.0f}, {len(out['reps'])} reps"
            elif name == "pipeline-coverage":
                detail = f"{out['team']['open_deals']:,} open deals in period, coverage {float(out['team']['coverage'] or 0):.2f}x"
            print(f"  {name:<22} " + "  ".join(f"{r:.3f}" for r in runs) + f" s  {detail}", flush=True)
            if name == "monte-carlo-forecast":
                sims = []
                for _ in range(args.repeat):
                    amounts, q = numpy.full(out["open_deals"], 40_000.0), numpy.full(out["open_deals"], 0.4)
                    t = time.perf_counter()
                    simulate(amounts, q, args.trials, 1)
                    sims.append(time.perf_counter() - t)
                print(f"  {'':<22} of which the simulation alone ({args.trials:,} x {out['open_deals']:,}): "
                      + "  ".join(f"{r:.3f}" for r in sims) + " s")
            rows.append((name, median, TARGETS[name], detail))

        print(f"\n{'skill (compute)':<24}{'median s':>9}{'target s':>10}  result")
        for name, median, target, detail in rows:
            if median is None:
                print(f"{name:<24}{'-':>9}{'-':>10}  not available")
            else:
                print(f"{name:<24}{median:9.3f}{target:10.1f}  {'PASS' if median < target else 'FAIL'}")
    finally:
        if db is not None:
            db.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the scratch database was dropped)")
    except Exception:  # a benchmark reports, it does not gate: print what broke and exit 0
        traceback.print_exc()
