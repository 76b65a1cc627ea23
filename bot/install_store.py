"""Slack installations in Postgres: which Slack team is which Pandora workspace, and the app's tokens.

`PostgresInstallationStore` and `PostgresOAuthStateStore` implement slack_sdk's OAuth store interfaces, so
Bolt's OAuth flow (install page, callback, `oauth.v2.access`, per-request authorize) runs on them unchanged.
Saving an installation maps its Slack team to a workspace (created from the team name on first install);
uninstalling deletes the tokens and keeps the mapping, so a reinstall finds the same workspace and its data.

This module must never store or log a token in clear text (every token goes through the Vault), and never
map a Slack team to an existing workspace by name: two teams called "Acme" are two tenants.
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Any

import psycopg
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from core.credentials import Vault
from core.errors import InputError
from core.settings import Settings
from core.workspaces import create_workspace

log = logging.getLogger("pandora.slack.install")
NO_TENANT = "00000000-0000-0000-0000-000000000000"  # slack_oauth_states' workspace_id (see 0008_slack.sql)

_BOT_COLUMNS = ("app_id", "bot_token", "bot_refresh_token", "bot_token_expires_at", "bot_id", "bot_user_id",
                "bot_scopes")


def _vault(vault: Vault | Settings) -> Vault:
    return vault if isinstance(vault, Vault) else Vault.from_settings(vault)


def _key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> dict:
    """The stored identity of an installation: '' for absent ids; an org-wide install has no team."""
    team = "" if is_enterprise_install or team_id is None else team_id
    return {"enterprise_id": enterprise_id or "", "team_id": team}


def _ts(value: float | int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


# --- team → workspace ---------------------------------------------------------------------------------------

def _find_workspace(conn: psycopg.Connection, key: dict) -> str | None:
    row = conn.execute(
        "SELECT workspace_id FROM slack_teams WHERE enterprise_id = %(enterprise_id)s AND team_id = %(team_id)s",
        key).fetchone()
    return str(row["workspace_id"]) if row else None


def _workspace_for_key(conn: psycopg.Connection, key: dict, *, name: str | None, create: bool) -> str | None:
    found = _find_workspace(conn, key)
    if found is None and key["enterprise_id"] and key["team_id"]:
        # A team inside an Enterprise Grid org that installed Pandora org-wide belongs to the org's workspace.
        found = _find_workspace(conn, {"enterprise_id": key["enterprise_id"], "team_id": ""})
    if found is not None or not create:
        return found
    # Two callbacks for the same team at once must not create two workspaces: serialise on the team, re-check.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('slack-team:' || %(enterprise_id)s || ':' || %(team_id)s))",
                 key)
    found = _find_workspace(conn, key)
    if found is not None:
        return found
    label = (name or "").strip() or f"Slack {key['team_id'] or key['enterprise_id']}"
    try:
        ws = create_workspace(conn, label)
    except InputError:  # a workspace of that name exists and belongs to someone else: never adopt it
        ws = create_workspace(conn, f"{label} ({key['team_id'] or key['enterprise_id']})")
    conn.execute(
        "INSERT INTO slack_teams (workspace_id, enterprise_id, team_id, team_name)"
        " VALUES (%(workspace_id)s, %(enterprise_id)s, %(team_id)s, %(team_name)s)",
        {"workspace_id": ws["id"], **key, "team_name": name})
    log.info("Slack team %s/%s mapped to new workspace %s", key["enterprise_id"], key["team_id"], ws["id"])
    return str(ws["id"])


def workspace_for_team(db, team_id: str | None, *, enterprise_id: str | None = None, team_name: str | None = None,
                       create: bool = False, is_enterprise_install: bool = False) -> str | None:
    """The Pandora workspace id of a Slack team (or of an org, for org-wide installs); with create=True a
    team seen for the first time gets a new workspace named after it. None when unknown and not created."""
    key = _key(enterprise_id, team_id, is_enterprise_install)
    if not (key["enterprise_id"] or key["team_id"]):
        raise InputError("a Slack team id (or enterprise id) is needed to find the workspace", field="team_id")
    with db.connection() as conn:
        return _workspace_for_key(conn, key, name=team_name, create=create)


def bot_token_for_workspace(db, vault: Vault | Settings, workspace_id: str) -> str | None:
    """The newest bot token installed for a workspace (decrypted), or None when the app is not installed."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT bot_token FROM slack_installations WHERE workspace_id = %(workspace_id)s"
            " AND bot_token IS NOT NULL ORDER BY installed_at DESC LIMIT 1",
            {"workspace_id": str(workspace_id)}).fetchone()
    return _vault(vault).decrypt(row["bot_token"]).get("v") if row else None


def delete_installation(db, team_id: str | None, enterprise_id: str | None = None, *,
                        is_enterprise_install: bool = False) -> int:
    """app_uninstalled / tokens_revoked: delete every token stored for the team (its workspace and data stay).
    Returns how many installation rows were deleted."""
    key = _key(enterprise_id, team_id, is_enterprise_install)
    with db.connection() as conn:
        ws = _find_workspace(conn, key)
        if ws is None:
            return 0
        return conn.execute(
            "DELETE FROM slack_installations WHERE workspace_id = %(workspace_id)s"
            " AND enterprise_id = %(enterprise_id)s AND team_id = %(team_id)s",
            {"workspace_id": ws, **key}).rowcount


# --- slack_sdk InstallationStore ------------------------------------------------------------------------------

class PostgresInstallationStore(InstallationStore):
    """slack_sdk's InstallationStore over `slack_installations` (one row per team and installing user)."""

    def __init__(self, db, vault: Vault | Settings, *, logger: logging.Logger | None = None) -> None:
        self.db = db
        self.vault = _vault(vault)
        self._logger = logger or log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def _enc(self, value: Any) -> bytes | None:
        return None if value in (None, "", {}) else self.vault.encrypt({"v": value})

    def _dec(self, blob) -> Any:
        return None if blob is None else self.vault.decrypt(blob).get("v")

    def save(self, installation: Installation) -> None:
        i = installation
        key = _key(i.enterprise_id, i.team_id, i.is_enterprise_install)
        hook = {"url": i.incoming_webhook_url, "channel": i.incoming_webhook_channel,
                "channel_id": i.incoming_webhook_channel_id,
                "configuration_url": i.incoming_webhook_configuration_url} if i.incoming_webhook_url else None
        row = {**key, "user_id": i.user_id or "", "app_id": i.app_id, "enterprise_name": i.enterprise_name,
               "enterprise_url": i.enterprise_url, "team_name": i.team_name, "bot_token": self._enc(i.bot_token),
               "bot_refresh_token": self._enc(i.bot_refresh_token), "bot_token_expires_at": _ts(i.bot_token_expires_at),
               "bot_id": i.bot_id, "bot_user_id": i.bot_user_id, "bot_scopes": list(i.bot_scopes or []),
               "user_token": self._enc(i.user_token), "user_refresh_token": self._enc(i.user_refresh_token),
               "user_token_expires_at": _ts(i.user_token_expires_at), "user_scopes": list(i.user_scopes or []),
               "incoming_webhook": self._enc(hook), "is_enterprise_install": bool(i.is_enterprise_install),
               "token_type": i.token_type, "installed_at": _ts(i.installed_at)}
        # A user-token-only reinstall carries no bot token: keep the bot the team already has.
        keep_bot = ", ".join(f"{c} = CASE WHEN EXCLUDED.bot_token IS NULL THEN slack_installations.{c} ELSE EXCLUDED.{c} END"
                             for c in _BOT_COLUMNS)
        others = [c for c in row if c not in _BOT_COLUMNS and c not in ("enterprise_id", "team_id", "user_id")]
        with self.db.connection() as conn:
            ws = _workspace_for_key(conn, key, name=i.team_name or i.enterprise_name, create=True)
            conn.execute(
                f"INSERT INTO slack_installations (workspace_id, {', '.join(row)})"
                f" VALUES (%(workspace_id)s, {', '.join(f'%({c})s' for c in row)})"
                " ON CONFLICT (workspace_id, enterprise_id, team_id, user_id) DO UPDATE SET "
                + ", ".join(f"{c} = EXCLUDED.{c}" for c in others) + ", " + keep_bot,
                {"workspace_id": ws, **row})

    def save_bot(self, bot: Bot) -> None:
        """Bolt saves whole installations; a bare bot (token rotation) refreshes the team's bot columns."""
        key = _key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        values = {"app_id": bot.app_id, "bot_token": self._enc(bot.bot_token),
                  "bot_refresh_token": self._enc(bot.bot_refresh_token),
                  "bot_token_expires_at": _ts(bot.bot_token_expires_at), "bot_id": bot.bot_id,
                  "bot_user_id": bot.bot_user_id, "bot_scopes": list(bot.bot_scopes or [])}
        with self.db.connection() as conn:
            ws = _workspace_for_key(conn, key, name=bot.team_name or bot.enterprise_name, create=True)
            updated = conn.execute(
                "UPDATE slack_installations SET " + ", ".join(f"{c} = %({c})s" for c in values)
                + " WHERE workspace_id = %(workspace_id)s AND enterprise_id = %(enterprise_id)s AND team_id = %(team_id)s",
                {"workspace_id": ws, **key, **values}).rowcount
            if not updated:
                conn.execute(
                    f"INSERT INTO slack_installations (workspace_id, enterprise_id, team_id, user_id, team_name,"
                    f" is_enterprise_install, {', '.join(values)}) VALUES (%(workspace_id)s, %(enterprise_id)s,"
                    f" %(team_id)s, '', %(team_name)s, %(ent)s, {', '.join(f'%({c})s' for c in values)})",
                    {"workspace_id": ws, **key, **values, "team_name": bot.team_name,
                     "ent": bool(bot.is_enterprise_install)})

    def _rows(self, key: dict, *, user_id: str | None = None, with_bot: bool = False) -> list[dict]:
        with self.db.connection() as conn:
            ws = _find_workspace(conn, key)
            if ws is None:
                return []
            return conn.execute(
                "SELECT * FROM slack_installations WHERE workspace_id = %(workspace_id)s"
                " AND enterprise_id = %(enterprise_id)s AND team_id = %(team_id)s"
                " AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)"
                " AND (NOT %(with_bot)s OR bot_token IS NOT NULL) ORDER BY installed_at DESC LIMIT 1",
                {"workspace_id": ws, **key, "user_id": user_id, "with_bot": with_bot}).fetchall()

    def find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                 is_enterprise_install: bool | None = False) -> Bot | None:
        rows = self._rows(_key(enterprise_id, team_id, is_enterprise_install), with_bot=True)
        if not rows:
            return None
        r = rows[0]
        return Bot(app_id=r["app_id"], enterprise_id=r["enterprise_id"] or None,
                   enterprise_name=r["enterprise_name"], team_id=r["team_id"] or None, team_name=r["team_name"],
                   bot_token=self._dec(r["bot_token"]), bot_refresh_token=self._dec(r["bot_refresh_token"]),
                   bot_token_expires_at=r["bot_token_expires_at"], bot_id=r["bot_id"], bot_user_id=r["bot_user_id"],
                   bot_scopes=list(r["bot_scopes"]), is_enterprise_install=r["is_enterprise_install"],
                   installed_at=r["installed_at"])

    def find_installation(self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
                          is_enterprise_install: bool | None = False) -> Installation | None:
        key = _key(enterprise_id, team_id, is_enterprise_install)
        rows = self._rows(key, user_id=user_id)
        if not rows:
            return None
        r = dict(rows[0])
        if user_id is not None or r["bot_token"] is None:
            # The user's own row may predate the current bot: the team's newest bot token is the one that works.
            bots = self._rows(key, with_bot=True)
            if bots:
                r.update({c: bots[0][c] for c in _BOT_COLUMNS if c != "app_id"})
        hook = self._dec(r["incoming_webhook"]) or {}
        return Installation(
            app_id=r["app_id"], enterprise_id=r["enterprise_id"] or None, enterprise_name=r["enterprise_name"],
            enterprise_url=r["enterprise_url"], team_id=r["team_id"] or None, team_name=r["team_name"],
            bot_token=self._dec(r["bot_token"]), bot_refresh_token=self._dec(r["bot_refresh_token"]),
            bot_token_expires_at=r["bot_token_expires_at"], bot_id=r["bot_id"], bot_user_id=r["bot_user_id"],
            bot_scopes=list(r["bot_scopes"]), user_id=r["user_id"], user_token=self._dec(r["user_token"]),
            user_refresh_token=self._dec(r["user_refresh_token"]), user_token_expires_at=r["user_token_expires_at"],
            user_scopes=list(r["user_scopes"]), incoming_webhook_url=hook.get("url"),
            incoming_webhook_channel=hook.get("channel"), incoming_webhook_channel_id=hook.get("channel_id"),
            incoming_webhook_configuration_url=hook.get("configuration_url"),
            is_enterprise_install=r["is_enterprise_install"], token_type=r["token_type"],
            installed_at=r["installed_at"])

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        key = _key(enterprise_id, team_id)
        with self.db.connection() as conn:
            ws = _find_workspace(conn, key)
            if ws is not None:
                conn.execute(
                    "UPDATE slack_installations SET " + ", ".join(f"{c} = NULL" for c in _BOT_COLUMNS if c != "bot_scopes")
                    + ", bot_scopes = '{}' WHERE workspace_id = %(workspace_id)s AND enterprise_id = %(enterprise_id)s"
                    " AND team_id = %(team_id)s", {"workspace_id": ws, **key})

    def delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                            user_id: str | None = None) -> None:
        key = _key(enterprise_id, team_id)
        with self.db.connection() as conn:
            ws = _find_workspace(conn, key)
            if ws is not None:
                conn.execute(
                    "DELETE FROM slack_installations WHERE workspace_id = %(workspace_id)s"
                    " AND enterprise_id = %(enterprise_id)s AND team_id = %(team_id)s"
                    " AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)",
                    {"workspace_id": ws, **key, "user_id": user_id})


class PostgresOAuthStateStore(OAuthStateStore):
    """One-time OAuth `state` values with an expiry; consuming is a single DELETE … RETURNING, so a state
    works once even when two callbacks race."""

    def __init__(self, db, expiration_seconds: int = 600, *, logger: logging.Logger | None = None) -> None:
        self.db = db
        self.expiration_seconds = expiration_seconds
        self._logger = logger or log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def issue(self, *args, **kwargs) -> str:
        state = secrets.token_urlsafe(32)
        with self.db.connection() as conn:
            # Abandoned install attempts would pile up: each issue sweeps states that expired a day ago.
            conn.execute("DELETE FROM slack_oauth_states WHERE workspace_id = %(nil)s"
                         " AND expires_at < now() - interval '1 day'", {"nil": NO_TENANT})
            conn.execute(
                "INSERT INTO slack_oauth_states (workspace_id, state, expires_at)"
                " VALUES (%(nil)s, %(state)s, now() + make_interval(secs => %(secs)s))",
                {"nil": NO_TENANT, "state": state, "secs": self.expiration_seconds})
        return state

    def consume(self, state: str) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                "DELETE FROM slack_oauth_states WHERE workspace_id = %(nil)s AND state = %(state)s"
                " RETURNING expires_at > now() AS fresh", {"nil": NO_TENANT, "state": state or ""}).fetchone()
        return bool(row and row["fresh"])

