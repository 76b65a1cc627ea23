"""Benchmark of a full HubSpot sync (deals + contacts) from the fake HubSpot enforcing its rate limit.

Run:  .venv/bin/python bench/sync_crm.py [--scale 0.2] [--limit 100] [--window 10]
(--scale 1 = 100,000 deals + 200,000 contacts, the issue's size: about 5,300 requests, ~9 minutes at 100 requests
/ 10 s; the default 0.2 takes about two. DATABASE_URL if set, else the embedded server; a scratch database
`pandora_bench_<pid>` is created, migrated and dropped at the end.) Not a test: CI never runs it; exits 0.

What it runs: the real connector, sync engine, HTTP client and upsert path against tests/fakes/hubspot_api.py
on loopback, whose rolling window answers 429 TEN_SECONDLY_ROLLING past `--limit` requests per `--window`
seconds (HubSpot's documented burst limit is 100 / 10 s for private apps on lower tiers). Each deal has two
contacts and one company (v4 associations read per page), stage-history dates and an owner.
Reported:
  requests/s achieved vs the limit (target >= 90 %) and violations (429s from the window; target 0);
  rows/s of the whole sync (bounded by the API limit, not by us);
  rows/s of the write path alone (time inside upsert_rows during the sync) vs a plain COPY of the same rows
  into the same tables measured in the same run (the foundation's reference).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench._scratch import scratch_database, timed_sync  # noqa: E402
from connectors.hubspot.connector import HubSpotConnector  # noqa: E402
from connectors.hubspot.normalize import normalize_contact, normalize_deal  # noqa: E402
from core.connections import save_connection  # noqa: E402
from core.credentials import Vault  # noqa: E402
from core.db.database import Database  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.sync import registry  # noqa: E402
from core.sync.protocol import StreamContext  # noqa: E402
from core.workspaces import create_workspace  # noqa: E402
from tests.fakes.hubspot_api import FakeHubSpot, record  # noqa: E402

TOKEN = "pat-bench"
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
          "contractsent", "closedwon", "closedlost"]
DEAL0, CONTACT0, COMPANY0 = 10_000_000, 50_000_000, 90_000_000


def make_deal(i: int) -> dict:
    n = i - DEAL0
    stage = STAGES[n % len(STAGES)]
    when = EPOCH + timedelta(minutes=n)
    return record(i, "deals", when, dealname=f"Deal {n}", amount=str(1000 + n % 90_000), dealstage=stage,
                  pipeline="default", closedate=(when + timedelta(days=60)).strftime("%Y-%m-%dT00:00:00Z"),
                  hubspot_owner_id="6166860" if n % 2 else "6166861",
                  **{f"hs_v2_date_entered_{stage}": when.isoformat().replace("+00:00", "Z")})


def make_contact(i: int) -> dict:
    n = i - CONTACT0
    return record(i, "contacts", EPOCH + timedelta(seconds=30 * n), email=f"person{n}@example{n % 500}.com",
                  firstname=f"First{n}", lastname=f"Last{n}", jobtitle="VP Sales" if n % 7 == 0 else None,
                  hubspot_owner_id="6166860", associatedcompanyid=str(COMPANY0 + n % 1000))


def associations(from_type: str, to_type: str, from_id: str) -> list:
    n = int(from_id) - DEAL0
    if (from_type, to_type) == ("deals", "contacts"):
        return [(str(CONTACT0 + 2 * n), None), (str(CONTACT0 + 2 * n + 1), None)]
    if (from_type, to_type) == ("deals", "companies"):
        return [(str(COMPANY0 + n % 1000), None)]
    return []


def plain_copy(conn, ws: str, table: str, rows: list[dict]) -> float:
    cols = list(rows[0])
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, ("workspace_id", *cols))))
    started = time.perf_counter()
    for start in range(0, len(rows), 100):  # one commit per page, as the sync does
        with conn.cursor().copy(stmt) as copy:
            for row in rows[start:start + 100]:
                copy.write_row([ws, *[Jsonb(v) if isinstance(v, (dict, list)) else v for v in row.values()]])
        conn.commit()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2, help="1 = 100,000 deals + 200,000 contacts")
    ap.add_argument("--limit", type=int, default=100, help="requests per window the fake admits")
    ap.add_argument("--window", type=float, default=10.0, help="rolling window, seconds")
    args = ap.parse_args()
    deals, contacts = int(100_000 * args.scale), int(200_000 * args.scale)

    settings = Settings.from_env()
    fake = FakeHubSpot().start()
    try:
        with scratch_database(settings) as url, Database(url, min_size=1, max_size=4) as db:
            vault = Vault.from_settings(settings)
            portal = fake.add_portal(1, TOKEN)
            portal.store("deals").factory, portal.store("deals").generated = make_deal, range(DEAL0, DEAL0 + deals)
            portal.store("contacts").factory = make_contact
            portal.store("contacts").generated = range(CONTACT0, CONTACT0 + contacts)
            portal.assoc_factory = associations
            fake.max_requests, fake.window = args.limit, args.window
            registry.register(HubSpotConnector(fake.url, objects=("contacts", "deals")))
            with db.connection() as conn:
                ws = str(create_workspace(conn, "Bench sync")["id"])
                ref_ws = str(create_workspace(conn, "Bench COPY")["id"])
                save_connection(conn, vault, ws, "hubspot", {"access_token": TOKEN},
                                metadata={"rate_limit": {"per_10s": args.limit, "window": args.window}})

            print(f"fake HubSpot: {deals:,} deals + {contacts:,} contacts, limit {args.limit} requests / "
                  f"{args.window:g} s; syncing…", flush=True)
            report, wall, write_s, write_n, pipeline_s = timed_sync(db, vault, ws, "hubspot")
            if report.status != "succeeded":
                print(f"sync failed: {report.error}")
                return
            api = list(fake.log)
            api_wall = wall - pipeline_s  # the post-sync pipeline makes no requests
            written = sum(c["inserted"] + c["updated"] for c in report.counts.values())
            rate_limit = args.limit / args.window
            achieved = len(api) / api_wall

            # The reference: the same rows (normalized exactly as the sync did) by plain COPY, same tables.
            with db.connection() as conn:
                meta = conn.execute("SELECT metadata FROM connections WHERE workspace_id = %s",
                                    (ws,)).fetchone()["metadata"]
            ctx = StreamContext(ref_ws, "hubspot", meta)
            contact_rows = [normalize_contact(make_contact(i), ctx) for i in range(CONTACT0, CONTACT0 + contacts)]
            deal_rows = []
            for i in range(DEAL0, DEAL0 + deals):
                raw = make_deal(i)
                raw["associations"] = {"contacts": [{"id": c, "label": None, "primary": False}
                                                    for c, _ in associations("deals", "contacts", str(i))]}
                deal_rows.append(normalize_deal(raw, ctx))
            with psycopg.connect(url) as conn:
                copy_s = (plain_copy(conn, ref_ws, "contacts", contact_rows)
                          + plain_copy(conn, ref_ws, "deals", deal_rows))
            copy_rows = len(contact_rows) + len(deal_rows)
            entity_rows = report.counts["contacts"]["inserted"] + report.counts["deals"]["inserted"]

            print(f"\nsync {wall:.1f} s (API phase {api_wall:.1f} s, post-sync pipeline {pipeline_s:.1f} s); "
                  f"{report.pages} pages, {written:,} rows written ({entity_rows:,} deals+contacts, "
                  f"{report.counts.get('deal_stage_history', {}).get('inserted', 0):,} stage history, "
                  f"{report.counts.get('deal_contacts', {}).get('inserted', 0):,} deal_contacts)")
            print(f"requests       {len(api):,} in {api_wall:.1f} s = {achieved:.2f}/s vs limit {rate_limit:.2f}/s "
                  f"= {achieved / rate_limit:.1%} of the limit (target >= 90 %)")
            print(f"violations     {fake.violations} (429s from the rolling window; target 0)")
            print(f"sync rows/s    {entity_rows / wall:,.0f} deals+contacts per second overall (API-bound)")
            path_rps = write_n / write_s
            print(f"write path     {path_rps:,.0f} rows/s inside upsert_rows ({write_s:.2f} s for "
                  f"{write_n:,} rows: deals, contacts, stage history)")
            print(f"plain COPY     {copy_rows / copy_s:,.0f} rows/s (deals + contacts, same tables, commit per 100) "
                  f"-> write path = {path_rps / (copy_rows / copy_s):.2f}x plain COPY's rows/s")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
