"""CLI for the sidecar's credentials: `pandora apikey create|list|revoke --workspace W` and
`pandora webhook secret --workspace W [--rotate]`.

An API key's secret is printed once, on creation, and cannot be shown again; `list` shows prefixes only.
The webhook secret is printed on request: the person configuring a sender needs it, and it is the workspace's
own (anyone who can run the CLI against this database can already read it).
"""
from __future__ import annotations

from core.api_keys import create_api_key, ensure_webhook_secret, list_api_keys, revoke_api_key
from core.credentials import Vault
from core.db.database import open_database
from core.errors import InputError
from core.workspaces import get_workspace


def apikey_cmd(args, settings):
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        if args.action == "create":
            row, key = create_api_key(conn, ws["id"], args.label or "")
            data = {**row, "key": key}
            text = (f"API key {row['prefix']}… for {ws['name']} (id {row['id']})\n\n    {key}\n\n"
                    "Copy it now: it is stored hashed and cannot be shown again.\n"
                    f"Use it as `Authorization: Bearer {row['prefix']}…` on /api/workspaces/{ws['id']}/…")
            return data, text
        if args.action == "list":
            rows = list_api_keys(conn, ws["id"])
            lines = [f"{r['prefix']}…  {r['id']}  {'revoked' if r['revoked_at'] else 'active':<8}"
                     f"  last used {r['last_used_at'] or 'never'}  {r['label']}" for r in rows]
            return {"keys": rows}, "\n".join(lines) or f"no API keys in {ws['name']} (pandora apikey create --workspace W)"
        if not args.key:
            raise InputError("revoke needs the key's id or prefix: pandora apikey revoke KEY --workspace W", field="key")
        row = revoke_api_key(conn, ws["id"], args.key)
        return row, f"revoked API key {row['prefix']}… ({row['id']})"


def webhook_cmd(args, settings):
    vault = Vault.from_settings(settings)
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        secret, new = ensure_webhook_secret(conn, vault, ws["id"], rotate=args.rotate)
    state = "rotated" if args.rotate else "created" if new else "existing"
    text = (f"webhook secret for {ws['name']} ({state}):\n\n    {secret}\n\n"
            "Sign each request: X-Pandora-Timestamp: <unix seconds>, X-Pandora-Signature: v1=<hex HMAC-SHA256 of "
            "\"{timestamp}.{raw body}\">, sent to "
            f"/webhooks/{ws['id']}/events or /webhooks/{ws['id']}/skills/SKILL")
    return {"workspace_id": ws["id"], "secret": secret, "state": state}, text


def register(add) -> None:
    p = add("apikey", apikey_cmd, "create, list or revoke REST API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("key", nargs="?", help="for revoke: the key's id or its prefix (pk_…)")
    p.add_argument("--workspace", required=True)
    p.add_argument("--label", help="what the key is for (shown in `list`)")

    p = add("webhook", webhook_cmd, "show (creating if needed) or rotate the webhook signing secret")
    p.add_argument("action", choices=["secret"])
    p.add_argument("--workspace", required=True)
    p.add_argument("--rotate", action="store_true", help="replace the secret (senders must switch to the new one)")
