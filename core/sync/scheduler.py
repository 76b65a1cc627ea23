"""The daily sync: every active connection of every workspace, one after another.

`sync_all_active` is the unit of work (also callable from the CLI or a test); `build_scheduler` wraps it in an
apscheduler cron job that fires once a day at `hour` UTC. Missed runs (the process was down at that hour)
are coalesced into one run within the grace window, never replayed several times.
"""
from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from core.connections import active_connections
from core.errors import PandoraError
from core.pipeline import run_post_sync
from core.sync import registry
from core.sync.orchestrator import SyncEngine

log = logging.getLogger("pandora.scheduler")
DAILY_JOB_ID = "daily-sync"


def sync_all_active(engine: SyncEngine) -> list[dict[str, Any]]:
    """Sync each active connection whose connector is registered (one failure never stops the others), then
    run the full post-sync pipeline once per workspace."""
    with engine.db.connection() as conn:
        work = active_connections(conn)
    known = set(registry.names())
    results = []
    for item in work:
        ws, name = str(item["workspace_id"]), item["connector_name"]
        if name not in known:  # csv_import and connectors this build lacks have nothing to pull
            continue
        try:
            report = engine.run(ws, name, trigger="scheduled")
            results.append({"workspace_id": ws, "connector": name, "status": report.status, "error": report.error})
        except PandoraError as exc:  # e.g. a manual sync of the same pair is running right now
            results.append({"workspace_id": ws, "connector": name, "status": "skipped", "error": exc.message})
        log.info("scheduled sync %s/%s: %s", ws, name, results[-1]["status"])
    # Syncs run the pipeline incrementally; once a day every workspace also gets a full run, which refreshes
    # the time-based fields (days in stage, staleness, CWD ageing) on rows no sync touched.
    for ws in dict.fromkeys(str(item["workspace_id"]) for item in work):
        run_post_sync(engine.db, ws)
    return results


def build_scheduler(engine: SyncEngine, *, hour: int = 5) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        sync_all_active, CronTrigger(hour=hour, minute=0, timezone="UTC"), args=[engine],
        id=DAILY_JOB_ID, coalesce=True, max_instances=1, misfire_grace_time=6 * 3600, replace_existing=True,
    )
    return scheduler
