"""Running a skill for the REST API and inbound webhooks: now (the result in the response) or in the background
(202 with a run id, the result POSTed to a callback URL as a signed webhook).

The skill name and its parameters are checked before anything starts, so a typo is a 404/400 at once rather
than a failed callback later. The run itself goes through `skills.runtime.run_skill` (recorded in
skill_runs like every other run); this module only decides where the result goes.
"""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from bot.sidecar.callbacks import deliver, record_delivery
from bot.sidecar.deps import Deps
from core.errors import InputError, PandoraError
from skills import registry
from skills.runtime import parse_params, run_skill

EVENT = "skill.run.completed"


def parse_run_body(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(params, callback_url) from {"params": {...}, "callback_url": "https://…"}; anything else is an InputError."""
    unknown = sorted(set(body) - {"params", "callback_url"})
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} (expected params, callback_url)", field=unknown[0])
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InputError("params must be a JSON object of parameter names to values", field="params")
    url = body.get("callback_url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
            raise InputError("callback_url must be an http(s) URL", field="callback_url")
    return params, url


def run_now(deps: Deps, workspace_id: str, skill_name: str, params: dict[str, Any], *, trigger: str) -> dict[str, Any]:
    result = run_skill(deps.db, deps.settings, workspace_id, skill_name, params, trigger=trigger)
    return result.to_dict()


def run_later(deps: Deps, workspace_id: str, skill_name: str, params: dict[str, Any], callback_url: str | None, *,
              trigger: str) -> dict[str, Any]:
    """Validate, then run in a background job; returns the 202 body {run_id, status, skill}."""
    skill = registry.get(skill_name)           # NotFound now, not in the callback
    parse_params(skill, params)                # InputError now, not in the callback
    run_id = str(uuid.uuid4())
    delivery_id = record_delivery(deps.db, workspace_id, callback_url, EVENT, run_id) if callback_url else None

    def job() -> None:
        payload: dict[str, Any] = {"event": EVENT, "run_id": run_id, "workspace_id": workspace_id,
                                   "skill": skill.name}
        try:
            result = run_skill(deps.db, deps.settings, workspace_id, skill.name, params, trigger=trigger)
            payload |= {"status": "succeeded", "skill_run_id": result.run_id, "result": result.to_dict()}
        except PandoraError as exc:
            payload |= {"status": "failed", "skill_run_id": exc.details.get("run_id"), "error": exc.to_dict()}
        except Exception as exc:  # the receiver still learns the run failed, without our internals
            payload |= {"status": "failed", "error": {"code": "internal_error",
                                                      "message": f"{skill.name} failed unexpectedly ({type(exc).__name__})"}}
        if delivery_id is not None:
            deliver(deps.db, deps.vault(), workspace_id, delivery_id, callback_url, payload,
                    transport=deps.transport, sleep=deps.sleep)

    deps.jobs.start(job, name=f"skill-{skill.name}-{run_id[:8]}")
    return {"run_id": run_id, "status": "running", "skill": skill.name, "callback_url": callback_url}
