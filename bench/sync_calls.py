"""Benchmark of a Gong call sync: tracked reps × calls each, from the fake Gong enforcing its 3 requests/s.

Run:  PANDORA_HOME=/tmp/benchhome_calls .venv/bin/python bench/sync_calls.py [--reps 20] [--calls 1000]
      [--page-size 100] [--quick]
(the default is the issue's size: 20 tracked reps × 1,000 calls = 20,000 calls, Gong's real page of 100 calls,
so 200 requests, about 70 s at 3 requests/s; --quick is 4 reps × 300 calls, 12 requests, a few seconds.
DATABASE_URL if set, else the embedded server under PANDORA_HOME; a scratch database `pandora_bench_<pid>` is
created, migrated and dropped at the end.) Not a test: CI never runs it; exits 0.

What it runs: the real GongConnector (its token bucket, the shared HTTP client, one partition per rep), the
sync engine and the upsert path against tests/fakes/gong_api.py on loopback, whose rolling second answers 429 +
Retry-After past 3 requests and counts each as a violation.
Reported:
  calls stored, requests made, wall time of the API phase (the post-sync pipeline makes no requests);
  requests/s achieved vs Gong's 3/s (target >= 90 %) and violations (target 0);
  the write path's share of the API phase (time inside upsert_rows): if the page writes sat in the request
  stream's critical path they would show here as lost throughput.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database, timed_sync  # noqa: E402
from connectors.gong.connector import HEADROOM, RATE_PER_SECOND, GongConnector  # noqa: E402
from core.connections import save_connection  # noqa: E402
from core.credentials import Vault  # noqa: E402
from core.db.database import Database  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.sync import registry  # noqa: E402
from core.workspaces import create_workspace  # noqa: E402
from tests.fakes.gong_api import FakeGong, make_call, make_user  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"
EPOCH = datetime(2025, 1, 6, 9, tzinfo=timezone(timedelta(hours=-7)))   # local offsets, as Gong sends them
USER0 = 400_000_000_000_000


def rep(i: int) -> dict:
    return make_user(str(USER0 + i), f"Rep{i}", "Bench", f"rep{i}@example.com")


def call(r: int, n: int) -> dict:
    """Rep r's n-th call: the rep, an external buyer, a dial-in without e-mail, and CRM context on some."""
    uid, started = str(USER0 + r), (EPOCH + timedelta(hours=3 * n, minutes=r)).isoformat()
    parties = [{"id": f"p{r}-{n}-1", "name": f"Rep{r} Bench", "emailAddress": f"rep{r}@example.com",
                "userId": uid, "affiliation": "Internal"},
               {"id": f"p{r}-{n}-2", "name": f"Buyer {n}", "emailAddress": f"buyer{n % 400}@acct{n % 90}.example.org",
                "affiliation": "External"},
               {"id": f"p{r}-{n}-3", "name": "Dial-in User", "affiliation": "Unknown"}]
    context = [] if n % 3 else [{"system": "Salesforce", "objects": [
        {"objectType": "Account", "objectId": f"001BENCH{n % 90:07d}", "fields": [], "timing": "Now"}]}]
    return make_call(str(7_000_000_000_000_000_000 + r * 100_000 + n), uid, started,
                     title=f"Acct {n % 90} <> Example Co | call {n}", parties=parties, context=context,
                     duration=300 + n % 3000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="tracked reps (one partition each)")
    ap.add_argument("--calls", type=int, default=1000, help="calls per rep")
    ap.add_argument("--page-size", type=int, default=100, help="calls per page (Gong's real page is 100)")
    ap.add_argument("--quick", action="store_true", help="4 reps × 300 calls: a smoke run of a few seconds")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.calls = 4, 300

    settings = Settings.from_env()
    fake = FakeGong(KEY, SECRET, page_size=args.page_size, per_second=RATE_PER_SECOND).start()
    try:
        with (scratch_database(settings) as url, Database(url, min_size=1, max_size=4) as db,
              registry.registered(GongConnector(fake.url))):
            vault = Vault.from_settings(settings)
            fake.users = [rep(r) for r in range(args.reps)]
            fake.calls = [call(r, n) for r in range(args.reps) for n in range(args.calls)]
            users = [{"id": u["id"], "name": f"{u['firstName']} {u['lastName']}", "email": u["emailAddress"]}
                     for u in fake.users]
            with db.connection() as conn:
                ws = str(create_workspace(conn, "Bench calls")["id"])
                save_connection(conn, vault, ws, "gong", {"access_key": KEY, "access_key_secret": SECRET},
                                metadata={"users": users, "tracked_users": users})

            total = args.reps * args.calls
            print(f"fake Gong: {args.reps} tracked reps × {args.calls:,} calls = {total:,} calls, pages of "
                  f"{args.page_size}, limit {RATE_PER_SECOND:g} requests / rolling second; syncing…", flush=True)
            report, wall, write_s, _, pipeline_s = timed_sync(db, vault, ws, "gong")
            if report.status != "succeeded":
                print(f"sync failed: {report.error}")
                return
            with db.connection() as conn:
                stored = conn.execute("SELECT count(*) AS n, count(DISTINCT source_data->>'primary_user_id') AS reps"
                                      " FROM conversations WHERE workspace_id = %s AND source = 'gong'",
                                      (ws,)).fetchone()
            requests = len(fake.calls_requests())
            api_wall = wall - pipeline_s
            # n requests paced at r/s span (n - 1) / r seconds; the last one's answer and write close the phase.
            achieved = (requests - 1) / api_wall if requests > 1 else 0.0
            share = achieved / RATE_PER_SECOND
            expected_pages = args.reps * max(1, -(-args.calls // args.page_size))

            print(f"\ncalls stored   {stored['n']:,} of {total:,} ({stored['reps']} reps), {report.pages} pages")
            print(f"requests       {requests:,} (expected {expected_pages:,}); {len(fake.log):,} received incl. "
                  f"retries")
            print(f"wall time      {wall:.1f} s (API phase {api_wall:.1f} s, post-sync pipeline {pipeline_s:.1f} s)")
            print(f"throughput     {achieved:.2f} requests/s vs limit {RATE_PER_SECOND:g}/s = {share:.1%} of the "
                  f"limit (target >= 90 %;\n               the connector paces at {HEADROOM:.0%} of it, so that is "
                  "the ceiling)")
            print(f"violations     {fake.violations} (429s from the rolling second; target 0)")
            print(f"write path     {write_s:.2f} s inside upsert_rows = {write_s / api_wall:.1%} of the API "
                  f"phase ({stored['n'] / write_s:,.0f} rows/s)")
            ok = stored["n"] == total and stored["reps"] == args.reps
            print(f"  {'PASS' if ok else 'FAIL'}  every call stored once")
            print(f"  {'PASS' if share >= 0.90 else 'FAIL'}  throughput >= 90 % of Gong's limit ({share:.1%})")
            print(f"  {'PASS' if fake.violations == 0 else 'FAIL'}  no rate-limit violations ({fake.violations})")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
