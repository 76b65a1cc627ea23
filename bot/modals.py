"""Pandora's modals, in one place for the Slack listeners: which views exist, how to open one from a router
`Reply.modal` name, and how to handle a submission by its callback_id.

    view = view_for(db, settings, workspace_id, reply.modal)        # "connect:hubspot", "context", "quota", …
    outcome = submit(db, settings, workspace_id, body["view"], client=client)
    if outcome.errors:     ack(response_action="errors", errors=outcome.errors)
    elif outcome.next_view: ack(response_action="update", view=outcome.next_view)
    else:                  ack()
    then post outcome.message (if any) to the user, and run outcome.after() (if any) in a lazy listener.

The views and handlers live in modals_connect (connect + tracked reps), modals_settings (context + quota) and
modals_import (import mapping). This module holds no logic of its own beyond the dispatch; it never opens a
view itself (the listener has the trigger_id) and never raises for a user's bad input (that is `errors`).
"""
from __future__ import annotations

from typing import Any

from bot.modals_base import ModalOutcome
from bot.modals_connect import (CONNECT_CALLBACK, OAUTH_LINK_ACTION, TRACKED_CALLBACK, connect_view, submit_connect,
                                submit_tracked_reps, tracked_reps_view)
from bot.modals_import import MAPPING_CALLBACK, mapping_view, submit_mapping
from bot.modals_settings import (CONTEXT_CALLBACK, QUOTA_CALLBACK, context_view, quota_view, submit_context,
                                 submit_quota)
from core.connections import get_connection
from core.credentials import Vault
from core.errors import InputError, NotFound

CALLBACK_IDS = (CONNECT_CALLBACK, TRACKED_CALLBACK, CONTEXT_CALLBACK, QUOTA_CALLBACK, MAPPING_CALLBACK)
ACTION_IDS: tuple[str, ...] = (OAUTH_LINK_ACTION,)  # the sign-in link; inputs dispatch no block_actions

__all__ = ["ACTION_IDS", "CALLBACK_IDS", "ModalOutcome", "connect_view", "context_view", "mapping_view",
           "quota_view", "submit", "submit_connect", "submit_context", "submit_mapping", "submit_quota",
           "submit_tracked_reps", "tracked_reps_view", "view_for"]


def _oauth_link(settings, source: str, workspace_id) -> str | None:
    """The sign-in link of a connector with an OAuth app configured (its client id set), else None."""
    from core.sync import registry

    spec = getattr(registry.get(source), "oauth", None)
    if spec is None or not spec.client_id(settings):
        return None
    from bot.sidecar.routes_oauth import start_url

    return start_url(settings, Vault.from_settings(settings), source, str(workspace_id))


def view_for(db, settings, workspace_id, name: str) -> dict[str, Any]:
    """The view for a `Reply.modal` name: "connect:<source>" (prefilled from the saved connection, secrets
    left blank), "tracked_reps:<source>", "context", "quota", "mapping:<batch_id>"."""
    kind, _, arg = name.partition(":")
    if kind == "connect":
        existing = None
        with db.connection() as conn:
            try:
                row = get_connection(conn, workspace_id, arg)
                existing = Vault.from_settings(settings).decrypt(row["credentials"])
            except NotFound:
                pass
        return connect_view(arg, existing=existing, oauth_link=_oauth_link(settings, arg, workspace_id))
    if kind == "tracked_reps":
        return tracked_reps_view(db, workspace_id, arg)
    if kind == "context":
        return context_view(db, workspace_id)
    if kind == "quota":
        return quota_view(db, workspace_id)
    if kind == "mapping":
        return mapping_view(db, workspace_id, arg)
    raise InputError(f"no modal named {name!r}", field="modal")


def submit(db, settings, workspace_id, view: dict[str, Any], *, client=None, transport=None) -> ModalOutcome:
    """Route a view_submission to its handler by callback_id."""
    callback = view.get("callback_id")
    if callback == CONNECT_CALLBACK:
        return submit_connect(db, settings, workspace_id, view, transport=transport)
    if callback == TRACKED_CALLBACK:
        return submit_tracked_reps(db, settings, workspace_id, view)
    if callback == CONTEXT_CALLBACK:
        return submit_context(db, settings, workspace_id, view)
    if callback == QUOTA_CALLBACK:
        return submit_quota(db, settings, workspace_id, view)
    if callback == MAPPING_CALLBACK:
        return submit_mapping(db, settings, workspace_id, view, client=client)
    raise InputError(f"no modal handles callback_id {callback!r}", field="callback_id")
