"""The post-sync pipeline: ordered, idempotent, set-based steps run over a workspace after every sync and
import (and on `pandora relink`).

Steps register here with a name and an order, and run after every step of a lower order but those independent
of them (no shared rows or inputs; either of the two may say so in `independent_of`, so a connector's step can
name the core steps it leaves alone), so independent steps run at once, PARALLEL_STEPS at a time;
each receives a pooled connection (its own transaction, so one slow step never holds another's locks) and a
`PipelineRun`:
- `workspace_id`;
- `since`: None for a full run; otherwise from when the previous run could see every row (its start, or the
  start of a transaction still open then: `SEEN_FROM`), and a step may limit its work to
  rows created or updated since then (entity `updated_at` moves only when a sync or import changed a row; the
  pipeline's own updates never touch it; `changed_since` says it for each table) plus whatever those rows affect;
- `own_since`: from when the pipeline's OWN stamps (`linked_at`; the deal contacts and stage mappings it writes:
  `changed_since`) are news: the end of the previous complete run (`pipeline_done_at`, migration 0029).
  Runs of a workspace never overlap (an advisory lock), so what was stamped before it was stamped by runs
  that completed, and their later steps already followed it (`since`, earlier, would take a full run's every
  link for a change); what a failed run stamped after it is followed by the next one. None on a full run;
  `since` when not given (no complete run recorded its end: a workspace migrated from before 0029);
- `context`: the workspace's context layer (thresholds, internal domains), read once per run;
- `as_of`: "now" for time-based rules (days in stage, staleness), fixed per run so tests can pin it.
A step returns a dict of counts of what it changed; a second run over unchanged data returns nothing.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg

from core.context import get_context
from core.pipeline.domains import last_used, remember


@dataclass
class PipelineRun:
    workspace_id: str
    since: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    as_of: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    changed_ids: dict[str, set] = field(default_factory=dict)
    own_since: datetime | None = None

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Never before `since`: the pipeline's stamps older than that were followed by an earlier run anyway.
        self.own_since = None if self.since is None else max(self.own_since or self.since, self.since)

    def note(self, key: str, ids) -> None:
        """Record the ids of rows a step changed without moving their updated_at ("contacts.account_id"), so
        later steps of an incremental run look at them too. Full runs look at everything and record nothing."""
        if self.since is not None:
            with self._lock:  # steps that do not depend on each other run in threads at once
                self.changed_ids.setdefault(key, set()).update(i for i in ids if i is not None)

    def noted(self, *keys: str) -> list:
        """The ids recorded under any of `keys`."""
        with self._lock:
            return sorted(set().union(*(self.changed_ids.get(k, set()) for k in keys)), key=str)

    def noted_on(self, table: str) -> list:
        """The ids recorded under any key of `table` ("activities.deal_id", "activities.contact_id", ...)."""
        with self._lock:  # another step may be adding a key meanwhile
            keys = [k for k in self.changed_ids if k.startswith(f"{table}.")]
        return self.noted(*keys)

    @property
    def params(self) -> dict[str, Any]:
        """Named parameters every step's SQL may use: workspace_id, since (NULL = everything), own_since and as_of."""
        return {"workspace_id": self.workspace_id, "since": self.since, "own_since": self.own_since,
                "as_of": self.as_of}


# Rows of these tables the pipeline writes itself, as a condition on the row ({p}: the alias): the association
# steps' deal contacts, the stage mappings the stage step adds for a stage it first meets (default/inferred).
_OWN_ROWS = {
    "deal_contacts": "{p}role_source IN ('explicit_deal_name', 'inferred_single_deal')",
    "stage_mappings": "{p}origin IS DISTINCT FROM 'user'",
}


def changed_since(table: str, alias: str = "") -> str:
    """SQL condition: a sync or import wrote this row since the previous run (`%(since)s`), through the table's
    (workspace_id, updated_at) index. A contact counts only when created since or when a write changed what
    the pipeline reads of it (e-mail, company, account reference, named deals, deletion: `links_changed_at`,
    migration 0016, NULL until such a change after its creation; indexed by migration 0017), so ten thousand
    title edits put no contact in any step's scope. A row of `_OWN_ROWS` the pipeline wrote counts only after
    `%(own_since)s` (the previous complete run, which followed it, wrote it before), through the same index range
    from `since` (never later)."""
    p = f"{alias}." if alias else ""
    if table == "contacts":
        return f"COALESCE({p}links_changed_at, {p}created_at) > %(since)s"
    if table in _OWN_ROWS:
        return (f"{p}updated_at > %(since)s AND ({p}updated_at > %(own_since)s"
                f" OR ({_OWN_ROWS[table].format(p=p)}) IS NOT TRUE)")
    return f"{p}updated_at > %(since)s"


def deal_links_changed(alias: str = "") -> str:
    """SQL condition: a sync or import wrote this deal since the previous run and it is new, opened, closed,
    deleted, restored, moved to another account or got another creation date (migrations 0017, 0018): what
    the linker and the association inference read of a deal. (The steps note the deals they re-point or
    re-stage themselves.) Through the (workspace_id, updated_at) index."""
    p = f"{alias}." if alias else ""
    return (f"{p}updated_at > %(since)s AND ({p}created_at > %(since)s OR {p}open_changed_at > %(since)s"
            f" OR {p}links_changed_at > %(since)s)")


def deleted_ids(table: str) -> str:
    """SQL query: the ids of this workspace's rows of `table` (accounts, contacts, deals) that their source deleted
    (soft deletes), through the partial indexes of migration 0030: few rows. A step tests its joined rows against
    these (`id NOT IN (...)`, a hashed lookup) rather than `deleted_at IS NULL` on the table, which the planner
    evaluates in the scan of every row (a million contacts: +0.07-0.1 s a statement)."""
    return f"SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND deleted_at IS NOT NULL"


StepFn = Callable[[psycopg.Connection, PipelineRun], "dict[str, int]"]


@dataclass(frozen=True)
class Step:
    """A step runs after every step of a lower order except those independent of it (steps that write none of
    what it reads and none of the rows it writes), so two independent steps may run at once. Independence is
    mutual: it is enough that one of the two names the other in `independent_of`. `cost`: roughly how long the
    step takes where it matters most, a first run over a large workspace (seconds of bench/pipeline.py's first
    run, 1M contacts); only how the steps' costs compare matters: they decide which ready step starts first
    until the workspace's own runs have measured the step (`priorities`)."""
    name: str
    order: int
    fn: StepFn
    independent_of: frozenset[str] = frozenset()
    cost: float = 1.0


_STEPS: dict[str, Step] = {}


def register_step(name: str, order: int, independent_of: tuple[str, ...] = (),
                  cost: float = 1.0) -> Callable[[StepFn], StepFn]:
    def wrap(fn: StepFn) -> StepFn:
        _STEPS[name] = Step(name, order, fn, frozenset(independent_of), cost)
        return fn

    return wrap


def steps() -> list[Step]:
    _load_builtin()
    return sorted(_STEPS.values(), key=lambda s: (s.order, s.name))


def _load_builtin() -> None:
    import importlib

    for name in ("stages", "references", "associations", "linker", "internal", "cwd", "computed"):
        try:
            importlib.import_module(f"core.pipeline.{name}")  # each registers itself
        except ModuleNotFoundError as exc:
            if exc.name != f"core.pipeline.{name}":
                raise


# From when this transaction can see every row. Rows carry their transaction's start time (updated_at = now()),
# so a transaction open now may still commit rows dated before this one: the earliest start among this
# database's other open client transactions bounds those (a microsecond before it, as later runs look at rows
# stamped after this time). A client session of another role hides its start without pg_read_all_stats (Neon's
# roles): its state and backend_type read NULL, its role does not. While such a session is inside a transaction
# (pg_locks, which every role may read: it holds its virtual transaction id) the watermark is an hour before now
# instead; idle ones (a provider's monitoring sessions, between their queries) do not count, so a run does not
# look back an hour every time. Never more than an hour back: a session left idle in a transaction for hours (a
# forgotten psql) would otherwise make every later run look at everything written since.
SEEN_FROM = """(SELECT CASE WHEN bool_or(a.pid IS NOT NULL AND a.state IS NULL AND EXISTS (
                                SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'virtualxid'))
                       THEN now() - interval '1 hour'
                       ELSE GREATEST(LEAST(now(), min(a.xact_start)), now() - interval '1 hour')
                            - interval '1 microsecond' END
                  FROM (SELECT 1) AS one
                  LEFT JOIN pg_stat_activity a
                         ON a.datname = current_database() AND a.pid <> pg_backend_pid()
                        AND (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL)))"""


def run_post_sync(db, workspace_id, *, incremental: bool = False, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Run every registered step in order; returns [{name, ms, changed}] (kept in sync_log.steps).

    `incremental` lets steps work only on what changed since the previous run of this workspace. The run's
    own watermark (taken as it starts) is stored only once every step has committed: after a failed step the
    next incremental run still starts where the last complete one did, so nothing written in between is lost
    to it. Runs of one workspace wait for each other (`_take_turn`): two syncs ending at once would otherwise
    update the same rows in two orders, and `own_since` relies on it."""
    workspace_id = str(workspace_id)
    with db.connect(autocommit=True) as conn:
        _take_turn(conn, workspace_id)
        row = conn.execute(
            f"SELECT COALESCE(pipeline_seen_from, pipeline_ran_at) AS previous, pipeline_done_at AS done,"
            f" clock_timestamp() AS ran_at, {SEEN_FROM} AS seen_from FROM workspaces WHERE id = %(workspace_id)s",
            {"workspace_id": workspace_id},
        ).fetchone()
        since = row["previous"] if (incremental and row) else None
        run = PipelineRun(workspace_id, since, get_context(conn, workspace_id), own_since=row["done"] if row else None)
        if as_of is not None:
            run.as_of = as_of
        kind = "full" if since is None else "incremental"
        durations = (last_used(conn, workspace_id, DURATIONS) or {}) if row is not None else {}
        report = _run_steps(db, run, steps(), durations.get(kind))
        if row is not None:
            conn.execute("UPDATE workspaces SET pipeline_ran_at = %(ran_at)s, pipeline_seen_from = %(seen_from)s,"
                         " pipeline_done_at = clock_timestamp() WHERE id = %(workspace_id)s",
                         {**row, "workspace_id": workspace_id})
            remember(conn, workspace_id, DURATIONS, {**durations, kind: {r["name"]: r["ms"] / 1000 for r in report}})
    return report  # closing the connection released the lock


# Where a workspace's complete runs leave their steps' durations (pipeline_state), per kind of run ("full",
# "incremental"): the next run of that kind starts its ready steps by them (`priorities`).
DURATIONS = "step_durations"


# How often a run waiting for another run of its workspace asks again.
TURN_POLL_SECONDS = 0.2


def _take_turn(conn, workspace_id: str) -> None:
    """Wait until no other run of this workspace is running, then hold its session advisory lock until `conn`
    closes (a connection of the run's own, outside the pool its steps use). Asked again every
    TURN_POLL_SECONDS rather than waited for in pg_advisory_lock: a session waiting there is inside a
    transaction for as long, and every other workspace's run would take its start for the start of a
    transaction that may still commit rows (SEEN_FROM) and look back that far."""
    key = {"key": f"pipeline:{workspace_id}"}
    while not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%(key)s, 0)) AS ok", key).fetchone()["ok"]:
        time.sleep(TURN_POLL_SECONDS)


# Steps running at once. Each step's statements run on one server core (PostgreSQL plans no parallel workers
# for UPDATE), so on the 2-core machines two independent steps finish in the time of the longer one.
PARALLEL_STEPS = 2

# The step whose statements a connection serves (set in the thread running it), for instrumentation that
# wraps `db` (bench/pipeline.py times every statement by step).
current_step: ContextVar[str | None] = ContextVar("current_step", default=None)


def dependencies(ordered: list[Step]) -> dict[str, set[str]]:
    """For each step, the steps it waits for: every lower-ordered one but those the two call independent."""
    return {s.name: {t.name for t in ordered
                     if t.order < s.order and t.name not in s.independent_of and s.name not in t.independent_of}
            for s in ordered}


def priorities(ordered: list[Step], needs: dict[str, set[str]],
               seconds: dict[str, float] | None = None) -> dict[str, float]:
    """Per step, the cost of the costliest chain it heads: its own cost and that of the steps waiting on it, on
    and on. Of the steps ready at once, the highest starts first. A step's cost is how long it took on the
    workspace's last complete run of the same kind (`seconds`), else its `Step.cost` (a first run). The internal
    filter (5 s of a large first run) and the stage step (2 s) both feed the linker; counted in steps, the two
    tied and the stage step, lower in order, went first whenever resolve_references ended before the activities'
    references, and the linker started ~2 s later. Likewise computed_contacts (and computed_accounts behind it)
    goes before computed_deals and CWD. Incremental runs differ: there contact_scope and the accounts of changed
    deals (nothing on a full run) are as long as CWD, and the contact and account scores wait on them."""
    seconds = seconds or {}
    chain: dict[str, float] = {}
    for s in reversed(ordered):  # the steps waiting on a step come after it in order
        chain[s.name] = seconds.get(s.name, s.cost) + max(
            (chain[t.name] for t in ordered if s.name in needs[t.name]), default=0)
    return chain


def _run_steps(db, run: PipelineRun, ordered: list[Step],
               seconds: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Run the steps, each in its own transaction on its own pooled connection, up to PARALLEL_STEPS at once:
    a step starts once every step it depends on has committed (of those ready, the one heading the costliest
    chain of steps waiting on it first, `priorities`: by `seconds` where given, then the lowest order). After a
    failure no further step starts; the ones running finish, then the first error is raised. The report keeps
    step order."""
    needs = dependencies(ordered)
    chain = priorities(ordered, needs, seconds)
    pending, running, done, reports = sorted(ordered, key=lambda s: (-chain[s.name], s.order)), {}, set(), {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=PARALLEL_STEPS, thread_name_prefix="pipeline") as pool:
        while pending or running:
            for step in [s for s in pending if failure is None and needs[s.name] <= done]:
                if len(running) < PARALLEL_STEPS:
                    pending.remove(step)
                    running[pool.submit(_run_step, db, run, step)] = step
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    reports[step.name] = future.result()
                    done.add(step.name)
                except BaseException as exc:  # noqa: BLE001 (re-raised below, once the running steps are done)
                    failure = failure or exc
    if failure is not None:
        raise failure
    return [reports[s.name] for s in ordered]


def _run_step(db, run: PipelineRun, step: Step) -> dict[str, Any]:
    current_step.set(step.name)
    started = time.perf_counter()
    with db.connection() as conn:
        if run.since is not None:
            # An incremental run reaches its few thousand rows by index. At the default random_page_cost (4,
            # priced for spinning disks) the planner would rather hash a whole table than probe an index a few
            # thousand times, which on a cached or SSD database (the embedded server, Neon) is several times
            # slower. Full runs keep the default their plans were tuned with.
            # Nor parallel plans: two steps already share the two cores, and for a statement of milliseconds
            # starting workers costs more than it saves; each worker also built its own copy of the hash tables
            # (computed_contacts hashed the changed conversations three times: 85 ms against ~30 serially).
            conn.execute("SELECT set_config('random_page_cost', '1.1', true),"
                         " set_config('max_parallel_workers_per_gather', '0', true)")
        changed = step.fn(conn, run) or {}
        _analyze_rewritten(conn, changed)
    return {"name": step.name, "ms": round((time.perf_counter() - started) * 1000, 1),
            "changed": {k: v for k, v in changed.items() if v}}


ANALYZE_AFTER_ROWS = 5000
_ANALYZABLE = frozenset({"accounts", "contacts", "deals", "deal_stage_history", "activities", "conversations",
                         "tasks", "calls", "documents", "leads", "deal_contacts"})


def _analyze_rewritten(conn, changed: dict[str, int]) -> None:
    """Fresh planner statistics for tables a step just rewrote in bulk (a first sync fills account_id on a
    million contacts). The next step plans its joins on them at once — before autovacuum would analyse —
    and on stale statistics a hash join can turn into a nested loop that runs for hours. Only the columns that
    are not JSON: the pipeline writes ids, flags, dates and scores, and no plan filters on the JSON it writes
    (link details, risk factors), while the payloads (participants, source data) are most of ANALYZE's time
    (conversations 0.6 s, against 0.13 s for the rest) and keep their statistics (and those of the indexes on
    them: an ANALYZE with a column list leaves index expressions alone)."""
    per_table: dict[str, int] = {}
    for key, n in changed.items():
        table = key.split(".", 1)[0]
        if table in _ANALYZABLE and isinstance(n, int):
            per_table[table] = per_table.get(table, 0) + n
    for table, n in per_table.items():
        if n >= ANALYZE_AFTER_ROWS:
            columns = conn.execute(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS columns FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND atttypid <> 'jsonb'::regtype",
                (table,)).fetchone()["columns"]
            conn.execute(f"ANALYZE {table} ({columns})")  # table names from the fixed set above, columns quoted
