"""The connect-a-source modal and its second step, tracked-rep selection (the seed's two-step conversation
connect: credentials → the source's user directory → pick the reps whose calls to sync).

Credentials are checked with the connector's `check_auth` before anything is saved; a rejected credential is
shown under its field and nothing is stored. Secrets are never prefilled, echoed in a view, an error or a
message: error texts pass through `_scrub`, which masks every submitted credential value. The directory and
the selection live in `connections.metadata` (`users`, `users_fetched_at`, `tracked_users`); removing a rep
only changes that list — calls already synced stay.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.modals_base import (MAX_OPTIONS, ModalOutcome, error_text, metadata, modal, option, plain, selected,
                             text_input, text_value)
from bot.render.blocks import button, context, mrkdwn_escape, section
from core.connections import get_connection, save_connection, update_metadata
from core.credentials import Vault
from core.errors import AuthError, ConnectorError, NotFound
from core.sync import registry
from core.sync.protocol import client_for

CONNECT_CALLBACK = "connect_submit"
TRACKED_CALLBACK = "tracked_reps_submit"
REPS_BLOCK = "tracked_reps"
MAX_DIRECTORY = MAX_OPTIONS * MAX_OPTIONS  # option_groups: 100 groups of 100 options


def _connector(name: str):
    from connectors import load_all

    load_all()
    return registry.get(name)


def _block(field_name: str) -> str:
    return f"cred_{field_name}"


def connect_view(connector_name: str, *, existing: dict[str, Any] | None = None,
                 oauth_link: str | None = None) -> dict[str, Any]:
    """One input per credential field. `existing` is the saved credentials (when editing): non-secret values
    are prefilled, secret ones never are — their inputs become optional and say "leave blank to keep".
    `oauth_link` (a connector with an OAuth app configured) adds a sign-in button: the web flow of
    bot/sidecar/routes_oauth.py connects the source without pasting any secret into Slack."""
    connector = _connector(connector_name)
    existing = existing or {}
    blocks = [section(f"Connect *{mrkdwn_escape(connector.label)}* to Pandora. The credentials are checked "
                      "before they are saved, and stored encrypted.")]
    if oauth_link:
        blocks.append(section(f"Easiest: sign in with {mrkdwn_escape(connector.label)} in your browser (the link "
                              "works for an hour). Or fill in the fields below.",
                              accessory=button(f"Sign in with {connector.label}", OAUTH_LINK_ACTION, connector.name,
                                               url=oauth_link)))
    for f in connector.credential_fields:
        saved = bool(existing.get(f.name))
        hint = f.help or None
        if f.secret and saved:
            hint = ((hint + " ") if hint else "") + "Leave blank to keep the saved value."
        blocks.append(text_input(
            _block(f.name), f.label, initial=None if f.secret or not saved else str(existing[f.name]),
            optional=(not f.required) or (f.secret and saved), hint=hint))
    title = f"Connect {connector.label}"
    return modal(CONNECT_CALLBACK, title, blocks, submit="Connect", metadata={"connector": connector.name})


OAUTH_LINK_ACTION = "connect_oauth_link"


def _scrub(text: str, secrets: dict[str, Any]) -> str:
    for value in secrets.values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "•••")
    return text


def _directory(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{id, name, email}] with string ids, sorted by name (the convention every reader of metadata expects)."""
    users = []
    for u in raw or []:
        if not isinstance(u, dict) or u.get("id") in (None, ""):
            continue
        users.append({"id": str(u["id"]), "name": u.get("name") or u.get("email") or str(u["id"]),
                      "email": u.get("email")})
    return sorted(users, key=lambda u: (str(u["name"]).casefold(), u["id"]))


def submit_connect(db, settings, workspace_id, view: dict[str, Any], *, transport=None) -> ModalOutcome:
    name = metadata(view).get("connector") or ""
    connector = _connector(name)
    vault = Vault.from_settings(settings)
    with db.connection() as conn:
        try:
            row = get_connection(conn, workspace_id, connector.name)
            saved, meta = vault.decrypt(row["credentials"]), dict(row["metadata"] or {})
        except NotFound:
            saved, meta = {}, {}
    creds: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in connector.credential_fields:
        value = text_value(view, _block(f.name))
        if value:
            creds[f.name] = value
        elif saved.get(f.name):
            creds[f.name] = saved[f.name]
        elif f.required:
            errors[_block(f.name)] = f"{f.label} is required."
    if errors:
        return ModalOutcome(errors=errors)
    secret_fields = [f for f in connector.credential_fields if f.secret] or connector.credential_fields
    where = _block(secret_fields[0].name)
    supports_directory = callable(getattr(connector, "list_users", None))
    users: list[dict[str, Any]] | None = None
    directory_problem = None
    try:
        with client_for(connector, creds, meta, transport=transport) as client:
            account = connector.check_auth(client)
            if supports_directory:
                try:
                    users = _directory(connector.list_users(client))
                except ConnectorError as exc:  # the credentials work; only the directory failed
                    directory_problem = _scrub(exc.message, creds)
    except AuthError as exc:
        status = exc.details.get("status")
        return ModalOutcome(errors={where: error_text(
            f"{connector.label} rejected these credentials" + (f" (HTTP {status})" if status else "")
            + ". Check them and try again; nothing was saved.")}, data={"error": _scrub(exc.message, creds)})
    except ConnectorError as exc:
        return ModalOutcome(errors={where: error_text(
            f"Couldn't check the credentials with {connector.label}: {_scrub(exc.message, creds)}. "
            "Nothing was saved; try again in a minute.")})
    patch: dict[str, Any] = {"account": account}
    if users is not None:
        patch.update(users=users, users_fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    with db.connection() as conn:
        save_connection(conn, vault, workspace_id, connector.name, creds, metadata=patch)
    message = f"Connected {connector.label}."
    if directory_problem:
        message += (f" I couldn't fetch its user directory ({directory_problem}); pick the reps to track later "
                    f"with `/pandora connect {connector.name}`.")
        return ModalOutcome(message=message, data={"connector": connector.name})
    if users is not None:
        return ModalOutcome(next_view=tracked_reps_view(db, workspace_id, connector.name),
                            message=message + " Next: pick the reps whose calls to sync.",
                            data={"connector": connector.name, "users": len(users)})
    return ModalOutcome(message=message + f" Run `/pandora sync {connector.name}` to load its data.",
                        data={"connector": connector.name})


# --- step two: tracked reps --------------------------------------------------------------------------------------

def _rep_option(user: dict[str, Any]) -> dict[str, Any]:
    label = user["name"] + (f" ({user['email']})" if user.get("email") and user["email"] != user["name"] else "")
    return option(label, user["id"])


def _rep_select(users: list[dict[str, Any]], tracked_ids: set[str]) -> dict[str, Any]:
    """Up to 100 users: plain options. More: option_groups of 100 (Slack allows 100 options per select and
    100 groups), labelled by the first and last name in each group; a directory beyond 10,000 users is cut
    (the view says so)."""
    options = [_rep_option(u) for u in users[:MAX_DIRECTORY]]
    element: dict[str, Any] = {"type": "multi_static_select", "action_id": "value",
                               "placeholder": plain("Choose reps", 150)}
    if len(options) <= MAX_OPTIONS:
        element["options"] = options
    else:
        element["option_groups"] = [
            {"label": plain(f"{users[i]['name'][:30]} – {users[min(i + MAX_OPTIONS, len(options)) - 1]['name'][:30]}",
                            75),
             "options": options[i:i + MAX_OPTIONS]}
            for i in range(0, len(options), MAX_OPTIONS)]
    initial = [o for o in options if o["value"] in tracked_ids]
    if initial:
        element["initial_options"] = initial
    return {"type": "input", "block_id": REPS_BLOCK, "optional": True, "label": plain("Reps to track"),
            "element": element,
            "hint": plain("Only these reps' calls are synced. Removing a rep keeps the calls already synced.")}


def tracked_reps_view(db, workspace_id, connector_name: str) -> dict[str, Any]:
    """Multi-select over the directory stored in metadata, the current `tracked_users` preselected."""
    connector = _connector(connector_name)
    with db.connection() as conn:
        row = get_connection(conn, workspace_id, connector.name)
    meta = row["metadata"] or {}
    users = _directory(meta.get("users") or [])
    tracked = {str(u.get("id")) for u in meta.get("tracked_users") or [] if isinstance(u, dict)}
    fetched = meta.get("users_fetched_at") or "never"
    title = f"{connector.label} reps"
    if not users:
        blocks = [section(f"*{mrkdwn_escape(connector.label)}* returned no users (directory fetched {fetched}). "
                          f"Reconnect with `/pandora connect {connector.name}` to fetch it again.")]
        return modal(TRACKED_CALLBACK, title, blocks, submit=None, close="Close",
                     metadata={"connector": connector.name})
    blocks = [section(f"Pick the *{mrkdwn_escape(connector.label)}* users who are sales reps. Pandora syncs only "
                      "their calls, so engineering stand-ups and HR 1:1s stay out."),
              _rep_select(users, tracked),
              context(f"{len(users)} users in the directory, fetched {fetched}; {len(tracked)} tracked now.")]
    if len(users) > MAX_DIRECTORY:
        blocks.append(context(f"Only the first {MAX_DIRECTORY:,} users (by name) can be listed here."))
    return modal(TRACKED_CALLBACK, title, blocks, submit="Save reps", metadata={"connector": connector.name})


def submit_tracked_reps(db, settings, workspace_id, view: dict[str, Any]) -> ModalOutcome:
    connector = _connector(metadata(view).get("connector") or "")
    chosen = set(selected(view, REPS_BLOCK))
    with db.connection() as conn:
        row = get_connection(conn, workspace_id, connector.name)
        users = _directory((row["metadata"] or {}).get("users") or [])
        tracked = [u for u in users if u["id"] in chosen]
        update_metadata(conn, workspace_id, connector.name, {"tracked_users": tracked})
    names = ", ".join(u["name"] for u in tracked[:10]) + (f" and {len(tracked) - 10} more" if len(tracked) > 10 else "")
    message = (f"Tracking {len(tracked)} rep{'s' if len(tracked) != 1 else ''} on {connector.label}: {names}."
               if tracked else f"No reps tracked on {connector.label}: its calls won't be synced until you pick some.")
    return ModalOutcome(message=message, data={"tracked_users": tracked})
