"""Benchmark of the entity write path (`core.db.upsert.upsert_rows`) against a plain COPY, on the deals table.

Run:  .venv/bin/python bench/upsert.py [--rows 100000] [--page-size 1000] [--repeat 3] [--mem-rows 20000]
(DATABASE_URL if set, else the embedded server; a scratch database `pandora_bench_<pid>` is created, migrated
and dropped at the end, also on error or Ctrl-C.) Not a test: CI never runs it, and it always exits 0.

The machines are shared and noisy, so every figure is also shown as a ratio to a reference measured in the same
run: a plain `COPY deals (...) FROM STDIN` of the same rows (same generator, jsonb sent as `json.dumps` text via
`copy.write_row`) into the empty table, one commit per page. Then, through `upsert_rows` with a commit per page:
  first load   into the empty table (TRUNCATE before each repeat)
  unchanged    a re-sync of the same rows (VACUUM ANALYZE before, as autovacuum would have)
  10% changed  a re-sync where every 10th row has a new amount (also in source_data) and a new modified date
               in source_data (the table is put back to the original rows, untimed, before each repeat)
CHECKPOINT runs before every measured phase; each is repeated --repeat times and the median wall time is kept.
The rows are generated lazily, one page at a time, deterministically (seeded); generation is inside every
timed phase, including the reference, and its cost alone is printed for context.

Memory: tracemalloc slows Python allocation about 8x, so it is never on during a timed run. After the timed
runs, each phase runs once more under tracemalloc (peak Python-allocated memory during the phase) on
--mem-rows rows (default 20,000: 20 pages), then again on twice as many rows. Only one page of rows is ever
alive, so a page-bounded write path shows the same peak for both; one that accumulates state would not.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench._scratch import scratch_database  # noqa: E402
from core.db.upsert import UpsertResult, upsert_rows  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workspaces import create_workspace  # noqa: E402

COLS = ("source", "source_id", "name", "amount", "stage", "stage_normalized", "close_date", "owner",
        "owner_email", "probability", "source_created_at", "source_data")
STAGES = [("appointmentscheduled", "awareness", 10), ("qualifiedtobuy", "qualification", 20),
          ("presentationscheduled", "evaluation", 40), ("decisionmakerboughtin", "proposal", 60),
          ("contractsent", "negotiation", 80), ("closedwon", "closed_won", 100), ("closedlost", "closed_lost", 0)]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kai", "Lena"]
LAST = ["Okafor", "Schmidt", "Nakamura", "Garcia", "Lindqvist", "Moreau", "Patel", "Rossi", "Walsh", "Zhang"]
OWNERS = [(f"{f} {l}", f"{f.lower()}.{l.lower()}@pandora-demo.io") for f in FIRST for l in LAST[:2]]
COMPANIES = [f"{a} {b}" for a in ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
             for b in ("Corp", "Labs", "Systems", "Logistics", "Health", "Capital")]
WORDS = ("renewal pricing security review procurement legal redlines champion budget pilot rollout seats "
         "integration timeline stakeholder onboarding expansion discount quarter signature").split()
DESCRIPTIONS = [" ".join(random.Random(k).choices(WORDS, k=22)).capitalize() + "." for k in range(64)]
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def make_row(i: int, h: int, changed: bool) -> dict:
    """Deal number i from 64 random bits h: a plausible HubSpot-like record (~1 KB of source_data as JSON)."""
    stage, normalized, prob = STAGES[h % 7]
    owner, owner_email = OWNERS[(h >> 3) % len(OWNERS)]
    company = COMPANIES[(h >> 8) % len(COMPANIES)]
    cents = 100_000 + (h >> 14) % 25_000_000
    if changed and i % 10 == 0:
        cents += 12_345
    created = EPOCH + timedelta(seconds=(h >> 40) % 40_000_000)
    close = (created + timedelta(days=14 + (h >> 20) % 300)).date()
    modified = created + timedelta(days=3 + changed * 30 * (i % 10 == 0))
    sid = str(9_000_000_000 + i)
    name = f"{company} - {('New business', 'Expansion', 'Renewal')[h % 3]} {close.year}"
    props = {
        "dealname": name, "amount": f"{cents / 100:.2f}", "dealstage": stage, "pipeline": "default",
        "closedate": close.isoformat() + "T00:00:00Z", "createdate": created.isoformat(),
        "hs_lastmodifieddate": modified.isoformat(), "hs_object_id": sid,
        "hubspot_owner_id": str(100_000 + (h >> 3) % len(OWNERS)), "hubspot_owner_email": owner_email,
        "hs_deal_stage_probability": f"{prob / 100:.2f}", "hs_forecast_category": ("pipeline", "best_case", "commit")[h % 3],
        "dealtype": ("newbusiness", "existingbusiness")[h % 2], "hs_priority": ("low", "medium", "high")[(h >> 5) % 3],
        "description": DESCRIPTIONS[(h >> 26) % 64], "num_associated_contacts": str((h >> 30) % 9),
        "hs_analytics_source": ("ORGANIC_SEARCH", "PAID_SEARCH", "DIRECT_TRAFFIC", "REFERRALS")[(h >> 33) % 4],
        "hs_is_closed": str(normalized.startswith("closed")).lower(), "hs_deal_currency_code": "USD",
    }
    return {
        "source": "bench", "source_id": sid, "name": name, "amount": cents / 100, "stage": stage,
        "stage_normalized": normalized, "close_date": close, "owner": owner, "owner_email": owner_email,
        "probability": prob, "source_created_at": created,
        "source_data": {"id": sid, "properties": props, "archived": False, "createdAt": created.isoformat(),
                        "updatedAt": modified.isoformat(),
                        "associations": {"companies": [str(7_000_000 + (h >> 8) % len(COMPANIES))],
                                         "contacts": [str(5_000_000 + (h >> k) % 90_000) for k in (2, 9, 17)]}},
    }


def pages(n: int, page_size: int, seed: int, changed: bool = False):
    """Lazily yield the n rows as lists of page_size dicts; only one page is ever alive."""
    for start in range(0, n, page_size):
        rng = random.Random(seed * 1_000_003 + start)
        yield [make_row(i, rng.getrandbits(64), changed) for i in range(start, min(n, start + page_size))]


def plain_copy(conn, ws: str, n: int, args) -> dict:
    stmt = sql.SQL("COPY deals ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, ("workspace_id", *COLS))))
    for page in pages(n, args.page_size, args.seed):
        with conn.cursor().copy(stmt) as copy:
            for r in page:
                copy.write_row([ws, *(r[c] for c in COLS[:-1]), json.dumps(r["source_data"])])
        conn.commit()
    return {"inserted": n, "updated": 0, "unchanged": 0}


def upsert(conn, ws: str, n: int, args, changed: bool = False) -> dict:
    total = UpsertResult("deals")
    for page in pages(n, args.page_size, args.seed, changed):
        total.add(upsert_rows(conn, "deals", ws, page))
        conn.commit()
    return total.counts()


def measure(name, admin, setup, work, repeat):
    """Run setup (untimed) + CHECKPOINT + work, `repeat` times; return (median wall s, cpu s, counts)."""
    runs = []
    for k in range(repeat):
        setup()
        admin.execute("CHECKPOINT")
        w0, c0 = time.perf_counter(), time.process_time()
        counts = work()
        runs.append((time.perf_counter() - w0, time.process_time() - c0, counts))
        print(f"  {name:<12} run {k + 1}/{repeat}: {runs[-1][0]:6.2f} s wall, {runs[-1][1]:5.2f} s client CPU  {counts}", flush=True)
    if any(r[2] != runs[0][2] for r in runs):
        print(f"  WARNING: {name} counts differ between repeats")
    wall = statistics.median(r[0] for r in runs)
    return wall, statistics.median(r[1] for r in runs), runs[0][2]


def peak_mb(work) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mem-rows", type=int, default=20_000, help="rows of the tracemalloc passes (and 2x that)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the `with` below drops the database

    with scratch_database(Settings.from_env()) as url:
        benchmark(url, args)


def benchmark(url: str, args) -> None:
    """The benchmark, in the scratch database at `url`; its connections are closed before the database is dropped."""
    n = args.rows
    conns = []
    try:
        admin = psycopg.connect(url, autocommit=True)
        conn = psycopg.connect(url, row_factory=dict_row)
        conns += [admin, conn]
        ws = str(create_workspace(conn, "Bench")["id"])
        conn.commit()

        def truncate():
            admin.execute("TRUNCATE deals CASCADE")

        def vacuum():
            admin.execute("VACUUM ANALYZE deals")

        def restore():
            upsert(conn, ws, n, args)
            vacuum()

        print(f"PostgreSQL {admin.execute('SHOW server_version').fetchone()[0]}, psycopg {psycopg.__version__} "
              f"({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}), Python {sys.version.split()[0]}")
        sample = next(pages(1, 1, args.seed))[0]
        t0 = time.perf_counter()
        for _ in pages(n, args.page_size, args.seed):
            pass
        print(f"rows {n:,}, page size {args.page_size}, repeat {args.repeat} (median), seed {args.seed}; "
              f"source_data {len(json.dumps(sample['source_data']))} B as JSON; generating the rows alone "
              f"takes {time.perf_counter() - t0:.2f} s (included in every phase below)\n", flush=True)

        phases = {}
        phases["plain COPY"] = measure("plain COPY", admin, truncate, lambda: plain_copy(conn, ws, n, args), args.repeat)
        phases["first load"] = measure("first load", admin, truncate, lambda: upsert(conn, ws, n, args), args.repeat)
        phases["unchanged"] = measure("unchanged", admin, vacuum, lambda: upsert(conn, ws, n, args), args.repeat)
        phases["10% changed"] = measure("10% changed", admin, restore, lambda: upsert(conn, ws, n, args, True), args.repeat)

        m = args.mem_rows
        print(f"\nmemory passes (untimed, under tracemalloc) on {m:,} then {2 * m:,} rows...", flush=True)

        def mem_passes(rows: int) -> dict:
            truncate()
            return {"first load": peak_mb(lambda: upsert(conn, ws, rows, args)),
                    "unchanged": peak_mb(lambda: upsert(conn, ws, rows, args)),
                    "10% changed": peak_mb(lambda: upsert(conn, ws, rows, args, True))}

        peaks, peaks_2x = mem_passes(m), mem_passes(2 * m)
        peaks["plain COPY"] = peak_mb(lambda: (truncate(), plain_copy(conn, ws, m, args)))

        copy_rps = n / phases["plain COPY"][0]
        print(f"\n{'phase':<12} {'wall s':>7} {'CPU s':>6} {'rows/s':>8} {'x COPY':>7} {'inserted':>9} "
              f"{'updated':>8} {'unchanged':>9} {'peak MB*':>8} {'2x rows':>7}")
        for name, (wall, cpu, c) in phases.items():
            print(f"{name:<12} {wall:7.2f} {cpu:6.2f} {n / wall:8,.0f} {n / wall / copy_rps:7.2f} {c['inserted']:9,} "
                  f"{c['updated']:8,} {c['unchanged']:9,} {peaks[name]:8.1f} {f'{peaks_2x[name]:.1f}' if name in peaks_2x else '-':>7}")
        print("(CPU s = client Python process CPU; x COPY = rows/s divided by plain COPY rows/s;\n"
              f" * peak tracemalloc MB of a separate pass on {m:,} rows, then on {2 * m:,})")

        first, same = phases["first load"][0], phases["unchanged"][0]
        growth = max(peaks_2x[k] / peaks[k] for k in peaks_2x)
        targets = [
            ("first load >= 0.9 x plain COPY rows/s", copy_rps * 0.9 <= n / first, f"{copy_rps / (n / first):.2f}x COPY's time, "
             f"{n / first / copy_rps:.2f} of its rows/s"),
            ("unchanged re-sync >= 1.5x faster than first load", first / same >= 1.5, f"{first / same:.2f}x faster"),
            (f"peak memory bounded by page size ({2 * m:,} rows vs {m:,}: <= 1.25x)", growth <= 1.25,
             ", ".join(f"{k} {peaks[k]:.1f} -> {peaks_2x[k]:.1f} MB" for k in peaks_2x)),
        ]
        print("\ntargets:")
        for label, ok, detail in targets:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {detail}")
        print(f"\nru_maxrss (whole process, all passes): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")
    finally:
        for c in conns:
            c.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the scratch database was dropped)")
