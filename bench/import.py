"""Benchmark of the file import (`connectors.file_import.batch`: preview, then apply) against pandas + a plain COPY.

Run:  .venv/bin/python bench/import.py [--rows 100000] [--repeat 3] [--mem-rows 1000000] [--skip-mem]
      .venv/bin/python bench/import.py --rows 50000 --profile /tmp/import.prof.txt   (cProfile of one import)
(DATABASE_URL if set, else the embedded server; a scratch database `pandora_bench_<pid>` is created, migrated
and dropped at the end, also on error or Ctrl-C.) Not a test: CI never runs it, and it always exits 0.

Input: a seeded HubSpot-style deals export (its 13 deal columns + 2 custom ones; `$12,500.00`, `3/15/2026`, default
stage labels, `40%`), written to a temp dir untimed. Throughput is shown as a ratio to a reference measured in the
same run, on the same file, into the same emptied deals table (the machines are shared and noisy):
  reference  `pandas.read_csv` + vectorised `$`/`,`/`%` stripping + `COPY deals (...) FROM STDIN (FORMAT csv)` of
             the mapped columns (Postgres parses m/d/Y under `datestyle = 'ISO, MDY'`) + commit. It writes no
             source_data, custom_fields, row_hash or normalized stage: a floor, not a twin.
  ours       `preview` (read, classify, map; two worker processes parse and serialise every page and keep it;
             store a pending batch) + `apply(run_pipeline=False)` (send the kept pages through the upsert path,
             record what was inserted for rollback); then again with run_pipeline=True.
deals, import batches/changes and the importer's stage and saved mappings are emptied before each repeat (after an
untimed 500-row warm-up); CHECKPOINT before every timed phase; median of --repeat runs.

Memory: a child process (this script with --child-import; no pandas) imports a --mem-rows file (preview + apply,
pipeline off, import size limit raised to fit) and reports its own peak RSS: VmHWM from /proc/self/status. Its
ru_maxrss is printed too, but Linux seeds it with the parent's peak at spawn (carried over exec): an overstatement.
Its page workers' peak is their ru_maxrss (RUSAGE_CHILDREN: the largest one's), counted once per worker on top.
Targets: ours >= 0.5x the reference's rows/s (pipeline off); that peak sum < 500 MB on the 1M-row file.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench._scratch import scratch_database  # noqa: E402
from connectors.file_import import batch  # noqa: E402
from connectors.file_import.parsers import MAX_WORKERS  # noqa: E402
from core.db.database import Database  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workspaces import create_workspace  # noqa: E402

HEADER = ["Record ID", "Deal Name", "Associated Company", "Amount", "Deal Stage", "Pipeline", "Close Date",
          "Deal owner", "Create Date", "Probability", "Next Step", "Deal Type", "Lead Source", "Region", "Competitor"]
STAGES = [("Appointment Scheduled", 20), ("Qualified To Buy", 40), ("Presentation Scheduled", 60),
          ("Decision Maker Bought-In", 80), ("Contract Sent", 90), ("Closed Won", 100), ("Closed Lost", 0)]
OWNERS = [f"{f} {l}" for f in "Ana Ben Chloe Dev Elif Femi Grace Hugo Ines Jonas".split() for l in ("Okafor", "Rossi")]
COMPANIES = [f"{a} {b}" for a in "Acme Globex Initech Umbrella Hooli Stark Wayne Tyrell Soylent Wonka".split()
             for b in ("Inc.", "Labs", "Systems", "Logistics", "Health", "Capital", "GmbH", "LLC")]
STEPS = "Send revised proposal|Schedule security review|Follow up with procurement|Book demo||Intro to economic buyer||".split("|")
SOURCES = "Organic Search|Paid Search|Direct Traffic|Referrals|Social Media|Offline Sources".split("|")
REGIONS, COMPETITORS = ["EMEA", "North America", "APAC", "LATAM"], "||Salesforce|Pipedrive|Zoho|In-house spreadsheet".split("|")
# Reference: CSV column -> deals column (the rest of the CSV is ignored by the reference).
REF_COLS = {"Record ID": "source_id", "Deal Name": "name", "Associated Company": "account_name", "Amount": "amount",
            "Deal Stage": "stage", "Pipeline": "pipeline", "Close Date": "close_date", "Deal owner": "owner",
            "Create Date": "source_created_at", "Probability": "probability", "Next Step": "next_step",
            "Deal Type": "deal_type", "Lead Source": "lead_source"}
RESET = ["TRUNCATE deals, import_batch_changes, import_batches CASCADE",
         "DELETE FROM stage_mappings WHERE source = 'csv_import'", "DELETE FROM connections WHERE connector_name = 'csv_import'"]


def reset(admin) -> None:
    for stmt in RESET:
        admin.execute(stmt)
    admin.execute("CHECKPOINT")


def write_csv(path: Path, n: int, seed: int) -> None:
    mdy = lambda d: f"{d.month}/{d.day}/{d.year}"  # noqa: E731  HubSpot's US dates: 3/15/2026
    rng = random.Random(seed)
    epoch = datetime(2024, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as f:
        (w := csv.writer(f)).writerow(HEADER)
        for i in range(n):
            h = rng.getrandbits(64)
            stage, prob = STAGES[h % 7]
            company = COMPANIES[(h >> 3) % len(COMPANIES)]
            created = epoch + timedelta(minutes=(h >> 10) % 1_000_000)
            close = (created + timedelta(days=14 + (h >> 30) % 300)).date()
            amount = "" if (h >> 40) % 50 == 0 else f"${(1_000 + (h >> 20) % 250_000) * 5:,.2f}"
            kind = ("New Business", "Existing Business")[(h >> 45) % 2]
            w.writerow([18_000_000_000 + i, f"{company} - {kind} {close.year} #{i % 997}", company, amount, stage,
                        "Sales Pipeline", mdy(close), OWNERS[(h >> 48) % len(OWNERS)],
                        f"{mdy(created.date())} {created:%H:%M}", f"{prob}%", STEPS[(h >> 52) % 8], kind,
                        SOURCES[(h >> 55) % 6], REGIONS[(h >> 58) % 4], COMPETITORS[(h >> 60) % 6]])


def reference(conn, ws: str, path: Path) -> dict:
    import pandas as pd

    df = pd.read_csv(path)
    out = pd.DataFrame({"workspace_id": ws, "source": "csv_ref"}, index=df.index)
    for src, dst in REF_COLS.items():
        out[dst] = df[src]
    out["amount"] = out["amount"].str.replace(r"[$,]", "", regex=True)
    out["probability"] = out["probability"].str.rstrip("%")
    stmt = sql.SQL("COPY deals ({}) FROM STDIN (FORMAT csv)").format(sql.SQL(", ").join(map(sql.Identifier, out.columns)))
    with conn.cursor().copy(stmt) as copy:
        for start in range(0, len(out), 50_000):
            copy.write(out.iloc[start:start + 50_000].to_csv(header=False, index=False))
    conn.commit()
    return {"inserted": len(out)}


def ours(db, settings, ws: str, path: Path, pipeline: bool, times: dict) -> dict:
    t0 = time.perf_counter()
    pending = batch.preview(db, settings, ws, path)
    times["preview"] = time.perf_counter() - t0
    if pending["entity"] != "deals" or pending["skipped"]:
        print(f"  WARNING: classified as {pending['entity']}, {pending['skipped']} skipped: {pending['warnings']}")
    if "checkpoint" in times:
        times.pop("checkpoint")()
    t0 = time.perf_counter()
    done = batch.apply(db, settings, ws, pending["batch_id"], run_pipeline=pipeline)
    times["apply"] = time.perf_counter() - t0
    return {k: done[k] for k in ("inserted", "updated", "unchanged", "skipped")}


def _status_mb(key: str) -> float:  # VmRSS / VmHWM (peak RSS of this address space only), in MB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def child_import(args) -> None:
    """--child-import: one preview + apply in this fresh process; print its wall time and peak RSS as JSON."""
    rss0 = _status_mb("VmRSS")
    limit = max(Settings().import_max_bytes, Path(args.child_import).stat().st_size)  # 1M rows > the 200 MB default
    settings = Settings(database_url=args.child_db, pandora_home=Path(args.child_home), import_max_bytes=limit)
    with Database(args.child_db, max_size=2) as db:
        times: dict = {}
        t0 = time.perf_counter()
        counts = ours(db, settings, args.child_ws, Path(args.child_import), False, times)
        wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, **times, "counts": counts, "rss0_mb": rss0, "hwm_mb": _status_mb("VmHWM"),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      # the page workers it forked (reaped by now): the largest one's peak, pages it shares with
                      # this process included, so counting it once per worker on top of ours overstates the sum
                      "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def measure(name, admin, work, repeat, split=False):
    """Reset + CHECKPOINT (untimed), then work; `repeat` times. Returns median {total, preview, apply} and counts."""
    runs = []
    for k in range(repeat):
        reset(admin)
        times = {"checkpoint": lambda: admin.execute("CHECKPOINT")} if split else {}
        w0, c0 = time.perf_counter(), time.process_time()
        counts = work(times)
        times = {"total": time.perf_counter() - w0, **times}
        if split:
            times["total"] = times["preview"] + times["apply"]  # the CHECKPOINT between them is not counted
        runs.append(times)
        detail = "".join(f", {p} {times[p]:.2f} s" for p in ("preview", "apply") if p in times)
        print(f"  {name:<16} run {k + 1}/{repeat}: {times['total']:6.2f} s{detail}, client CPU "
              f"{time.process_time() - c0:5.2f} s  {counts}", flush=True)
    return sorted(runs, key=lambda r: r["total"])[(len(runs) - 1) // 2], counts  # the median run, all its parts


def memory(args, url: str, ws: str, settings, tmp: Path, admin) -> dict | None:
    m, path = args.mem_rows, tmp / "hubspot-deals-mem.csv"
    shutil.rmtree(settings.pandora_home / "imports", ignore_errors=True)
    write_csv(path, m, args.seed + 1)
    admin.execute("VACUUM deals")
    reset(admin)
    size, limit = path.stat().st_size / 2**20, Settings().import_max_bytes / 2**20
    note = f"; over the {limit:.0f} MB default import limit, which the child raises" if size > limit else ""
    print(f"\nmemory: child process importing {m:,} rows ({size:.0f} MB{note}), pipeline off...", flush=True)
    child = subprocess.run([sys.executable, __file__, "--child-import", str(path), "--child-db", url, "--child-ws", ws,
                            "--child-home", str(settings.pandora_home)], stdout=subprocess.PIPE, text=True)
    try:
        mem = json.loads(child.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return print(f"  child failed (exit {child.returncode}); its output: {child.stdout[-2000:]!r}")
    print(f"  child: {mem['wall']:.1f} s wall (preview {mem['preview']:.1f} s, apply {mem['apply']:.1f} s), "
          f"{m / mem['wall']:,.0f} rows/s; peak RSS (VmHWM) {mem['hwm_mb']:.0f} MB, RSS after imports "
          f"{mem['rss0_mb']:.0f} MB, ru_maxrss {mem['maxrss_mb']:.0f} MB (inherits the parent's peak); "
          f"largest page worker's peak {mem['worker_mb']:.0f} MB  {mem['counts']}")
    mem["total_mb"] = mem["hwm_mb"] + MAX_WORKERS * mem["worker_mb"]
    return mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--rows", 100_000), ("--repeat", 3), ("--seed", 7), ("--mem-rows", 1_000_000)):
        ap.add_argument(flag, type=int, default=default)
    ap.add_argument("--skip-mem", action="store_true")
    ap.add_argument("--profile", metavar="OUT", help="only profile one preview+apply of --rows with cProfile")
    for hidden in ("--child-import", "--child-db", "--child-ws", "--child-home"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_import:
        return child_import(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the `with` and finally below drop the database and tmp

    env = Settings.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="pandora_bench_import_"))
    try:
        with scratch_database(env) as url:
            benchmark(url, args, env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def benchmark(url: str, args, env: Settings, tmp: Path) -> None:
    """The benchmark, in the scratch database at `url`; its connections are closed before the database is dropped."""
    admin = ref = db = None
    try:
        admin = psycopg.connect(url, autocommit=True)
        ref = psycopg.connect(url, options="-c datestyle=ISO,MDY -c timezone=UTC")
        with psycopg.connect(url, row_factory=dict_row) as conn:
            ws = str(create_workspace(conn, "Bench")["id"])
        settings = Settings(database_url=url, pandora_home=tmp / "home", migrations_dir=env.migrations_dir)
        db = Database(url, max_size=2)
        n, path = args.rows, tmp / "hubspot-deals.csv"
        t0 = time.perf_counter()
        write_csv(path, n, args.seed)
        gen = time.perf_counter() - t0
        warm = tmp / "warm-up.csv"  # untimed: module imports (openai via the classifier), pool, first COPY
        write_csv(warm, 500, args.seed)
        ours(db, settings, ws, warm, False, {})

        if args.profile:  # one preview + apply(run_pipeline=False) under cProfile, top 25 by two sorts
            import cProfile
            import pstats

            reset(admin)
            prof = cProfile.Profile()
            prof.runcall(ours, db, settings, ws, path, False, {})
            with open(args.profile, "w") as out:
                for key in ("cumulative", "tottime"):
                    out.write(f"===== top 25 by {key} =====\n")
                    pstats.Stats(prof, stream=out).sort_stats(key).print_stats(25)
            return print(f"profile of one import of {n:,} rows written to {args.profile}")

        import pandas as pd
        print(f"PostgreSQL {admin.execute('SHOW server_version').fetchone()[0]}, psycopg {psycopg.__version__} "
              f"({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}), pandas {pd.__version__}, "
              f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print(f"rows {n:,} ({path.stat().st_size / 2**20:.1f} MB CSV, {len(HEADER)} columns, written in {gen:.1f} s, "
              f"untimed), repeat {args.repeat} (median), seed {args.seed}\n", flush=True)
        phases = {"reference": measure("reference", admin, lambda t: reference(ref, ws, path), args.repeat)}
        phases["ours"] = measure("ours", admin, lambda t: ours(db, settings, ws, path, False, t), args.repeat, True)
        try:
            phases["ours + pipeline"] = measure("ours + pipeline", admin, lambda t: ours(db, settings, ws, path, True, t),
                                                args.repeat, True)
        except Exception as exc:  # the post-sync pipeline is other people's moving code: report, go on
            print(f"  ours + pipeline  FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)

        mem = None if args.skip_mem else memory(args, url, ws, settings, tmp, admin)
        ref_rps = n / phases["reference"][0]["total"]
        print(f"\n{'phase':<16}{'preview s':>10}{'apply s':>9} {'total s':>8} {'rows/s':>8} {'x ref':>6}  counts")
        for name, (t, counts) in phases.items():
            parts = "".join(f"{t[p]:{w}.2f}" if p in t else f"{'-':>{w}}" for p, w in (("preview", 10), ("apply", 9)))
            print(f"{name:<16}{parts} {t['total']:8.2f} {n / t['total']:8,.0f} {n / t['total'] / ref_rps:6.2f}  {counts}")
        print("(the median run of each phase, by total; x ref = its rows/s / the reference's: ours / reference throughput)")
        ratio = n / phases["ours"][0]["total"] / ref_rps
        print("\ntargets:")
        print(f"  {'PASS' if ratio >= 0.5 else 'FAIL'}  import (preview + apply, pipeline off) >= 0.5x reference "
              f"throughput: {ratio:.2f}x ({ratio * 100:.0f}% of pandas + COPY rows/s)")
        if mem:
            print(f"  {'PASS' if mem['total_mb'] < 500 else 'FAIL'}  peak RSS importing {args.mem_rows:,} rows < 500 MB: "
                  f"{mem['total_mb']:.0f} MB (the importing process's VmHWM {mem['hwm_mb']:.0f} MB + {MAX_WORKERS} page "
                  f"workers x {mem['worker_mb']:.0f} MB, shared pages counted each time), {mem['wall']:.0f} s wall")
        else:
            print("  ----  peak RSS < 500 MB: " + ("skipped (--skip-mem)" if args.skip_mem else "child failed"))
    finally:
        for c in (db, ref, admin):
            if c:
                c.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the scratch database was dropped)")
    except Exception:  # a benchmark reports, it never fails a build
        traceback.print_exc()
