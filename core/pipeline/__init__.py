"""The post-sync pipeline: ordered, idempotent, set-based steps run over a whole workspace after every sync
and import. Steps register here (name, order, function); the sync engine and the importer call
`run_post_sync`. Each step takes (conn, workspace_id) and returns how many rows it changed (or a dict of
counts); each runs in its own transaction so one slow step never holds another's locks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import psycopg

StepFn = Callable[[psycopg.Connection, str], "int | dict[str, int]"]


@dataclass(frozen=True)
class Step:
    name: str
    order: int
    fn: StepFn


_STEPS: dict[str, Step] = {}


def register_step(name: str, order: int) -> Callable[[StepFn], StepFn]:
    def wrap(fn: StepFn) -> StepFn:
        _STEPS[name] = Step(name, order, fn)
        return fn

    return wrap


def steps() -> list[Step]:
    _load_builtin()
    return sorted(_STEPS.values(), key=lambda s: (s.order, s.name))


def _load_builtin() -> None:
    from core.pipeline import associations, references, stages  # noqa: F401  (they register themselves)


def run_post_sync(db, workspace_id) -> list[dict[str, Any]]:
    """Run every registered step in order; returns [{name, ms, changed}] for sync_log.steps."""
    report = []
    for step in steps():
        started = time.perf_counter()
        with db.connection() as conn:
            changed = step.fn(conn, str(workspace_id))
        report.append({"name": step.name, "ms": round((time.perf_counter() - started) * 1000, 1), "changed": changed})
    return report
