"""The Google Drive (v3) connector: files in the chosen folders and shared drives → `documents`.

A sync is one of two shapes, decided by `prepare` before the streams run:
- **Listing** (the first sync, `--full`, a changed folder choice, folders moved or renamed since, or a changes
  page token Drive no longer accepts): `prepare` takes `changes.getStartPageToken` FIRST, then the streams list
  every chosen folder (`files.list q="'<id>' in parents and trashed = false"`, one partition per folder of the
  tree, subfolders included) and every chosen shared drive (`corpora=drive`, `driveId`), then read the change
  feed from that token, so whatever changed while we listed is applied too, and store the feed's
  `newStartPageToken`. A killed listing resumes: finished folders are skipped, the interrupted one continues at
  its page token, and the start token stays the one taken before the listing began.
  Once every folder is listed, live rows the listing did not see are soft-deleted (`changes.sweep`).
- **Changes** (every other run): `changes.list` from the saved token, following `nextPageToken`; the last page's
  `newStartPageToken` is the next run's start. New and modified files in scope are upserted; removed, trashed
  and moved-out files are soft-deleted (see `changes`). `prepare` walks the folder tree every run (folders only,
  cheap): a tree that changed shape since the last run makes this run a listing, and a folder change the feed
  reports during the run marks the next one (moving a folder changes none of its files). It also asks Drive
  whether the saved token is still good (one `changes.list`, pageSize 1): a 400 on `pageToken` turns the run
  into a listing with a fresh token.

Why the feed uses `Stream.final_cursor` / `Stream.on_page`: its position for next time is in the last page's
payload, not in any record, and its removals carry no row to write (the hooks were added to the engine for it).
Links to accounts and deals are made by the `google_drive_links` post-sync step (`linking`); file content is
fetched on demand only (`content`). Rate limits: a token bucket (10/s by default, `metadata.rate_limit`), 429 and
the 403 rate-limit reasons retried with exponential backoff (`client`).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable

import httpx

from core.errors import AuthError, InputError, PageStateExpired
from core.sync.http import HttpClient, RateLimiter, RetryPolicy
from core.sync.paginators import AfterCursor
from core.sync.protocol import CredentialField, Stream, StreamContext
from connectors.google_drive import api, auth, changes, folders
from connectors.google_drive.client import LABEL, DriveClient
from connectors.google_drive.normalize import enrich_changes, enrich_files, normalize_change, normalize_file

FILES_STREAM, DRIVE_STREAM, CHANGES_STREAM = "folder_files", "drive_files", "changes"


def partition_key(stream: str, part: dict[str, Any]) -> str:
    """The key the engine saves a partition's state under (`SyncEngine._run_stream`)."""
    return f"{stream}:" + ",".join(f"{k}={v}" for k, v in sorted(part.items()))


class GoogleDriveConnector:
    name = "google_drive"
    label = LABEL
    credential_fields = [
        CredentialField("access_token", "Access token",
                        help="An OAuth access token with the drive.readonly scope (for testing; 'Sign in with "
                             "Google' stores a refresh token as well)"),
        CredentialField("refresh_token", "Refresh token", required=False,
                        help="Lets Pandora renew the hour-long access token; needs GOOGLE_CLIENT_ID/SECRET"),
    ]

    def __init__(self, api_base: str = api.API_BASE, *, token_url: str = auth.TOKEN_URL,
                 page_size: int = api.MAX_PAGE, rate_per_second: float = 10.0) -> None:
        self.api_base = api_base.rstrip("/")
        self.oauth = auth.oauth_spec(token_url)
        self.page_size = min(int(page_size), api.MAX_PAGE)
        self.rate_per_second = rate_per_second

    # -- connection -------------------------------------------------------------------------------------------
    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
               on_credentials: Callable[[dict[str, Any]], None] | None = None) -> HttpClient:
        token = credentials.get("access_token")
        if not token:
            raise AuthError("No Google Drive access token is stored: reconnect Google Drive", connector=self.name)
        refresher = None
        if credentials.get("refresh_token"):
            refresher = auth.TokenRefresher(credentials, token_url=self.oauth.token_url,
                                            on_credentials=on_credentials, transport=transport)
        limit = metadata.get("rate_limit") or {}
        sleep = sleep or time.sleep
        per_second = float(limit.get("per_second", self.rate_per_second))
        return DriveClient(
            metadata.get("base_url") or self.api_base, connector=self.name, label=self.label,
            headers={"Authorization": f"Bearer {token}"}, auth=refresher, transport=transport, sleep=sleep,
            retry=RetryPolicy(max_attempts=int(limit.get("attempts", 6)), base_delay=1.0, max_delay=32.0),
            rate_limiter=RateLimiter(per_second, burst=int(limit.get("burst", per_second)), sleep=sleep),
        )

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """Who the token belongs to (`about.user`)."""
        user = (client.get_json(api.ABOUT, params={"fields": "user(displayName,emailAddress,permissionId)"})
                or {}).get("user") or {}
        return {"email": user.get("emailAddress"), "name": user.get("displayName"), "id": user.get("permissionId")}

    def list_folders(self, client: HttpClient, parent: str | None = None) -> list[dict[str, Any]]:
        return folders.list_folders(client, parent)

    def list_shared_drives(self, client: HttpClient) -> list[dict[str, Any]]:
        return folders.list_shared_drives(client)

    # -- before the streams -----------------------------------------------------------------------------------
    def prepare(self, client: HttpClient, ctx: StreamContext) -> dict[str, Any]:
        chosen, drives = folders.configured(ctx.metadata)
        if not chosen and not drives:
            raise InputError("Google Drive has no folders or shared drives chosen yet: choose them when connecting "
                             "(connection metadata `folders` / `shared_drives`), then sync again", field="folders")
        walked = datetime.now(timezone.utc).isoformat(timespec="seconds")
        tree, missing = folders.walk_tree(client, chosen, drives)
        patch: dict[str, Any] = {"folder_tree": tree, "missing_folders": missing, "tree_at": walked}
        previous = ctx.metadata.get("folder_tree")
        moved = bool(previous) and folders.reshaped(previous, tree, ctx.metadata.get("tree_at"))
        reason = self._listing_reason(client, ctx, {"folders": sorted(chosen), "drives": sorted(drives)}, moved)
        if reason:
            token = (client.get_json(api.START_TOKEN, params={"supportsAllDrives": "true"}) or {}).get("startPageToken")
            started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            patch["listing"] = {"id": started, "token": str(token), "reason": reason,
                                "scope": {"folders": sorted(chosen), "drives": sorted(drives)}}
            patch["relist"] = False
        return patch

    def _listing_reason(self, client: HttpClient, ctx: StreamContext, scope: dict[str, list[str]],
                        moved: bool) -> str | None:
        """Why this run must list everything (None: read the change feed)."""
        current = ctx.metadata.get("listing") or {}
        saved = (ctx.cursors.get(CHANGES_STREAM) or {}).get("cursor")
        finished = isinstance(saved, dict) and current and saved.get("listing") == current.get("id")
        if ctx.full:
            return "full re-sync"
        if current and not finished:  # a listing in progress goes on, unless what it lists changed meanwhile
            if current.get("scope") != scope:
                return "the chosen folders changed"
            return "folders were moved or renamed" if moved else None
        if not finished:
            return "first sync"
        if current.get("scope") != scope:
            return "the chosen folders changed"
        if moved or ctx.metadata.get("relist"):
            return "folders were moved or renamed"
        try:
            client.get_json(api.CHANGES, params={"pageToken": saved["token"], "pageSize": 1,
                                                 "fields": "nextPageToken,newStartPageToken", **api.ALL_DRIVES})
        except PageStateExpired:
            return "the saved changes page token expired"
        return None

    # -- streams ----------------------------------------------------------------------------------------------
    def streams(self, ctx: StreamContext) -> list[Stream]:
        current = ctx.metadata.get("listing") or {}
        if not current:
            return []
        saved = (ctx.cursors.get(CHANGES_STREAM) or {}).get("cursor")
        listing = not (isinstance(saved, dict) and saved.get("listing") == current["id"])
        pages = AfterCursor(cursor_path="nextPageToken", param="pageToken")
        feed = Stream(
            name=CHANGES_STREAM, entity="documents", path=api.CHANGES, paginator=pages, records_path="changes",
            params={"pageSize": self.page_size, "fields": api.CHANGE_FIELDS, "includeRemoved": "true",
                    "spaces": "drive", **api.ALL_DRIVES, **({"pageToken": current["token"]} if listing else {})},
            normalize=normalize_change, enrich=enrich_changes, final_cursor=changes.changes_cursor,
            on_page=partial(changes.on_changes_page, after_listing=listing),
            since=None if listing else (lambda cursor: {"params": {"pageToken": cursor["token"]}}),
        )
        if not listing:
            return [feed]
        common = dict(entity="documents", path=api.FILES, paginator=pages, records_path="files",
                      normalize=normalize_file, enrich=enrich_files, final_cursor=changes.listing_done,
                      on_page=changes.on_listing_page)
        base = {"q": api.LIVE_FILES, "pageSize": self.page_size, "fields": api.LIST_FIELDS, **api.ALL_DRIVES}
        return [
            Stream(name=FILES_STREAM, params={**base, "corpora": "allDrives"},
                   partitions=partial(self._to_list, FILES_STREAM, "folderId"), **common),
            Stream(name=DRIVE_STREAM, params={**base, "corpora": "drive"},
                   partitions=partial(self._to_list, DRIVE_STREAM, "driveId"), **common),
            feed,
        ]

    @staticmethod
    def _to_list(stream: str, param: str, ctx: StreamContext) -> list[dict[str, Any]]:
        """The listing's partitions not finished yet: every folder of the tree outside the chosen shared drives
        (folderId), or every chosen shared drive (driveId)."""
        tree = ctx.metadata.get("folder_tree") or {}
        done = (ctx.metadata.get("listing") or {}).get("id")
        if param == "driveId":
            ids = [k for k, v in tree.items() if v.get("parent") is None and v.get("drive") == k]
        else:
            ids = [k for k, v in tree.items() if not v.get("drive")]
        def finished(part: dict[str, Any]) -> bool:
            state = ctx.cursors.get(partition_key(stream, part)) or {}
            return state.get("cursor") == done and not state.get("page")
        return [part for part in ({param: k} for k in ids) if not finished(part)]


def register() -> GoogleDriveConnector:
    from core.sync import registry
    from connectors.google_drive import linking  # noqa: F401  (registers the post-sync step on import)

    return registry.register(GoogleDriveConnector())
