"""Which files a Drive connection covers: the chosen folders (with every subfolder) and shared drives.

`connections.metadata` names them: `folders` (folder ids) and/or `shared_drives` (drive ids), as plain ids or
`{"id": …, "name": …}` dicts (what a picker built on `list_folders` / `list_shared_drives` would store).
`walk_tree` reads the folder tree under them at the start of every sync (folders only, a few requests per
level, parents batched into one query); `Scope` answers, during the sync, whether a file is inside it and under
which folder path ("/Sales/Customers/Acme"), looking up folders it has not met (created or moved in since the
tree was read) with `files.get` and caching every answer for the run.
Moving or renaming a folder changes none of its files, so the feed cannot tell their new path or scope: a tree
that changed shape since the last walk (`reshaped`), or a folder change the feed reports during a sync
(`observe_folder`), makes the connector list everything again. A folder created after the last walk is the
exception: every file in it came through the feed.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

from core.errors import ConnectorError
from core.sync.http import HttpClient
from core.sync.paginators import AfterCursor, iterate_pages
from core.sync.times import iso_time
from connectors.google_drive import api
from connectors.google_drive.client import quote

Tree = dict[str, dict[str, Any]]   # folder id -> {"name", "parent" (None for a chosen root), "drive", "created"}
PARENTS_PER_QUERY = 20
MAX_DEPTH = 64
# A folder created this long after a tree walk is surely new (not moved in with old files), whatever the clock
# difference between Drive and us: every file in it arrived through the change feed.
CLOCK_MARGIN = timedelta(minutes=10)


def configured(metadata: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(folder ids, shared drive ids) from the connection metadata, in order, without duplicates."""
    def ids(key: str) -> list[str]:
        out: list[str] = []
        for item in metadata.get(key) or []:
            value = item.get("id") if isinstance(item, dict) else item
            if value not in (None, "") and str(value) not in out:
                out.append(str(value))
        return out
    return ids("folders"), ids("shared_drives")


def pages(client: HttpClient, path: str, params: dict[str, Any], records: str = "files") -> Iterator[dict[str, Any]]:
    for page in iterate_pages(client, method="GET", path=path, records_path=records, params=params,
                              paginator=AfterCursor(cursor_path="nextPageToken", param="pageToken")):
        yield from (r for r in page.records if isinstance(r, dict))


def get_file(client: HttpClient, file_id: str, fields: str = "id,name,mimeType,parents,trashed,driveId,createdTime"
             ) -> dict[str, Any] | None:
    """files.get, or None when Drive answers 404 (deleted, or not shared with the connected account)."""
    try:
        return client.get_json(f"{api.FILES}/{file_id}", params={"fields": fields, "supportsAllDrives": "true"})
    except ConnectorError as exc:
        if exc.details.get("status") == 404:
            return None
        raise


def walk_tree(client: HttpClient, folders: list[str], drives: list[str]) -> tuple[Tree, list[dict[str, str]]]:
    """The folder tree under the chosen folders and drives, and the chosen ones Drive no longer shows us."""
    tree: Tree = {}
    missing: list[dict[str, str]] = []
    for drive in drives:
        try:
            info = client.get_json(f"{api.DRIVES}/{drive}", params={"fields": "id,name"})
        except ConnectorError as exc:
            if exc.details.get("status") != 404:
                raise
            missing.append({"id": drive, "kind": "shared_drive"})
            continue
        tree[drive] = {"name": info.get("name") or drive, "parent": None, "drive": drive}
        found = list(pages(client, api.FILES, {"q": api.LIVE_FOLDERS, "corpora": "drive", "driveId": drive,
                                               "pageSize": api.MAX_PAGE, "fields": api.FOLDER_FIELDS,
                                               **api.ALL_DRIVES}))
        ids = {f["id"] for f in found} | {drive}
        for f in found:
            parent = next((p for p in f.get("parents") or [] if p in ids), drive)
            tree.setdefault(f["id"], {"name": f.get("name"), "parent": parent, "drive": drive,
                                      "created": f.get("createdTime")})
    frontier = []
    for folder in folders:
        if folder in tree:  # inside a chosen shared drive: listed with it
            continue
        info = get_file(client, folder)
        if info is None or info.get("trashed") or info.get("mimeType") != api.FOLDER:
            missing.append({"id": folder, "kind": "folder"})
            continue
        tree[folder] = {"name": info.get("name") or folder, "parent": None, "drive": None}
        frontier.append(folder)
    while frontier:
        found_ids: list[str] = []
        for i in range(0, len(frontier), PARENTS_PER_QUERY):
            batch = frontier[i:i + PARENTS_PER_QUERY]
            q = f"{api.LIVE_FOLDERS} and (" + " or ".join(f"{quote(p)} in parents" for p in batch) + ")"
            for f in pages(client, api.FILES, {"q": q, "corpora": "allDrives", "pageSize": api.MAX_PAGE,
                                               "fields": api.FOLDER_FIELDS, **api.ALL_DRIVES}):
                if f["id"] in tree:
                    continue
                parent = next((p for p in f.get("parents") or [] if p in batch), batch[0])
                tree[f["id"]] = {"name": f.get("name"), "parent": parent, "drive": None,
                                 "created": f.get("createdTime")}
                found_ids.append(f["id"])
        frontier = found_ids
    return tree, missing


def brand_new(folder: dict[str, Any], since: str | None) -> bool:
    """Created after the walk at `since` (plus the margin): it can hold nothing the feed did not report."""
    created, walked = iso_time(folder.get("created") or folder.get("createdTime")), iso_time(since)
    return created is not None and walked is not None and created > walked + CLOCK_MARGIN


def reshaped(old: Tree, new: Tree, since: str | None) -> bool:
    """Whether the folders changed shape since the walk at `since`: renamed, moved, gone, or come in (other than
    brand new): their files' paths or scope changed without a change to the files themselves."""
    for folder_id, entry in new.items():
        before = old.get(folder_id)
        if before is None:
            if not brand_new(entry, since):
                return True
        elif (before.get("name"), before.get("parent")) != (entry.get("name"), entry.get("parent")):
            return True
    return any(folder_id not in new for folder_id in old)


def path_names(tree: Tree, folder_id: str) -> list[str] | None:
    """Folder names from the chosen root down to `folder_id`; None when it is not in the tree."""
    if folder_id not in tree:
        return None
    names: list[str] = []
    seen: set[str] = set()
    current: str | None = folder_id
    while current is not None and current in tree and current not in seen:
        seen.add(current)
        names.append(str(tree[current].get("name") or current))
        current = tree[current].get("parent")
    return names[::-1]


def as_path(names: list[str]) -> str:
    return "/" + "/".join(names)


class Scope:
    """The tree of one sync, grown by lookups of folders met on the way (cached, hits and misses)."""

    def __init__(self, client: HttpClient, tree: Tree, since: str | None = None) -> None:
        self.client = client
        self.since = since
        self.tree: Tree = {k: dict(v) for k, v in tree.items()}
        self.outside: set[str] = set()
        self.discovered: set[str] = set()

    def locate(self, file: dict[str, Any]) -> str | None:
        """The folder path of a file inside the scope, else None."""
        for parent in file.get("parents") or []:
            names = self._names(parent)
            if names is not None:
                return as_path(names)
        return None

    def _names(self, folder_id: str, depth: int = 0) -> list[str] | None:
        if folder_id in self.tree:
            return path_names(self.tree, folder_id)
        if folder_id in self.outside or depth > MAX_DEPTH:
            return None
        info = get_file(self.client, folder_id)
        if info is None or info.get("mimeType") != api.FOLDER or info.get("trashed"):
            self.outside.add(folder_id)
            return None
        for parent in info.get("parents") or []:
            up = self._names(parent, depth + 1)
            if up is not None:
                self.tree[folder_id] = {"name": info.get("name"), "parent": parent,
                                        "drive": self.tree[parent].get("drive"), "created": info.get("createdTime")}
                self.discovered.add(folder_id)
                return up + [str(info.get("name") or folder_id)]
        self.outside.add(folder_id)
        return None

    def observe_folder(self, change: dict[str, Any]) -> bool:
        """Apply a folder's change to the tree; True when the folders' contents need listing again."""
        folder_id, file = change.get("fileId"), change.get("file")
        entry = self.tree.get(folder_id)
        known = entry is not None and folder_id not in self.discovered
        if change.get("removed") or not file or file.get("trashed"):
            return self._drop(folder_id) if entry is not None else False
        if entry is not None and entry.get("parent") is None:  # a chosen root: only its name can change
            if file.get("name") and file.get("name") != entry.get("name"):
                entry["name"] = file["name"]
                return True
            return False
        parent = next((p for p in file.get("parents") or [] if p != folder_id and self._names(p) is not None), None)
        if parent is None:
            return self._drop(folder_id) if entry is not None else False
        if known and entry.get("name") == file.get("name") and entry.get("parent") == parent:
            return False
        self.tree[folder_id] = {"name": file.get("name"), "parent": parent, "drive": self.tree[parent].get("drive"),
                                "created": file.get("createdTime")}
        return known or not brand_new(file, self.since)

    def _drop(self, folder_id: str) -> bool:
        gone = {folder_id}
        grew = True
        while grew:
            more = {k for k, v in self.tree.items() if v.get("parent") in gone and k not in gone}
            gone |= more
            grew = bool(more)
        for k in gone:
            self.tree.pop(k, None)
            self.outside.add(k)
        return True


def list_folders(client: HttpClient, parent: str | None = None) -> list[dict[str, Any]]:
    """Folders the connected account can see (inside `parent` when given), for a folder picker."""
    q = api.LIVE_FOLDERS + (f" and {quote(parent)} in parents" if parent else "")
    found = [{"id": f["id"], "name": f.get("name"), "parents": f.get("parents") or [], "drive_id": f.get("driveId")}
             for f in pages(client, api.FILES, {"q": q, "corpora": "allDrives", "pageSize": api.MAX_PAGE,
                                                "fields": api.FOLDER_FIELDS, **api.ALL_DRIVES})]
    return sorted(found, key=lambda f: (str(f["name"] or "").casefold(), f["id"]))


def list_shared_drives(client: HttpClient) -> list[dict[str, Any]]:
    """Shared drives the connected account belongs to, for the same picker."""
    return [{"id": d["id"], "name": d.get("name")}
            for d in pages(client, api.DRIVES, {"pageSize": 100, "fields": "nextPageToken,drives(id,name)"}, "drives")]
