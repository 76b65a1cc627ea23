"""Completing a page of HubSpot records before normalize (the streams' `enrich` step).

- `read_associations`: v4 batch read (`POST /crm/v4/associations/{from}/{to}/batch/read`), one call per page
  and target type. A 207 names inputs that failed: "no associations found" is an answer (none), anything
  else is retried (up to `ATTEMPTS` calls, with a short pause) and, if it still fails, the sync stops with a
  ConnectorError — a link is never silently dropped. Records with more associations than one response holds
  carry `paging.next.after` and are read again from there.
- `read_properties`: batch read of the properties that did not fit into the list endpoint's URL (see
  `connectors.hubspot.connector`), merged into each record's `properties`.

Results land in `record["associations"][<to type>]` as `[{"id", "label", "primary"}]` (ids as strings, though
v4 sends `toObjectId` as a number). Nothing here touches the database.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from core.errors import ConnectorError
from core.sync.http import HttpClient
from core.sync.protocol import StreamContext

ATTEMPTS = 4
NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"
PRIMARY_LABELS = {"Primary"}


def _pause(client: HttpClient) -> Callable[[float], None]:
    return getattr(client, "_sleep", time.sleep)  # the client's injected sleep (tests never wait)


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    types = item.get("associationTypes") or []
    labels = [t.get("label") for t in types if t.get("label")]
    return {"id": str(item.get("toObjectId", item.get("id"))),
            "label": next((label for label in labels if label not in PRIMARY_LABELS), None),
            "primary": any(label in PRIMARY_LABELS for label in labels)}


def read_associations(client: HttpClient, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[dict]]:
    """{from id: [association entries]} for every id asked about (an id with none maps to [])."""
    found: dict[str, list[dict]] = {i: [] for i in ids}
    pending: list[dict[str, str]] = [{"id": i} for i in ids]
    failures = 0
    path = f"/crm/v4/associations/{from_type}/{to_type}/batch/read"
    while pending:
        payload = client.post_json(path, json={"inputs": pending}) or {}
        asked = {p["id"] for p in pending}
        answered, more = set(), []
        for result in payload.get("results") or []:
            from_id = str((result.get("from") or {}).get("id"))
            answered.add(from_id)
            seen = {e["id"] for e in found.setdefault(from_id, [])}
            found[from_id].extend(e for e in map(_entry, result.get("to") or []) if e["id"] not in seen)
            after = ((result.get("paging") or {}).get("next") or {}).get("after")
            if after:
                more.append({"id": from_id, "after": after})
        for error in payload.get("errors") or []:
            if error.get("subCategory") == NO_ASSOCIATIONS:
                answered.update(str(i) for i in (error.get("context") or {}).get("fromObjectId") or [])
        failed = sorted(asked - answered)
        if failed:
            failures += 1
            if failures >= ATTEMPTS:
                shown = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
                raise ConnectorError(
                    f"HubSpot kept failing to read the {to_type} associated with {len(failed)} {from_type} "
                    f"({shown}) after {ATTEMPTS} attempts; the sync stopped so no link is lost and will pick up "
                    "from this page next time", connector="hubspot", path=path)
            _pause(client)(min(2.0, 0.25 * 2 ** failures))
        pending = more + [{"id": i} for i in failed]
    return found


def read_properties(client: HttpClient, object_type: str, records: list[dict[str, Any]],
                    properties: list[str]) -> None:
    """Fetch `properties` for the page's records with one batch read (POST body: no URL length limit)."""
    if not properties or not records:
        return
    payload = client.post_json(f"/crm/v3/objects/{object_type}/batch/read", json={
        "properties": properties, "inputs": [{"id": str(r["id"])} for r in records]}) or {}
    by_id = {str(r.get("id")): r.get("properties") or {} for r in payload.get("results") or []}
    missing = [str(r["id"]) for r in records if str(r["id"]) not in by_id and not r.get("archived")]
    if missing:
        raise ConnectorError(f"HubSpot's batch read of {object_type} returned no properties for "
                             f"{', '.join(missing[:5])}; the sync stopped so no field is lost",
                             connector="hubspot")
    for record in records:
        record.setdefault("properties", {}).update(
            {k: val for k, val in by_id.get(str(record["id"]), {}).items() if k in properties})


def enricher(object_type: str, to_types: tuple[str, ...], batch_properties: list[str]):
    """The `Stream.enrich` for one object type: extra properties, then each association type."""
    def enrich(client: HttpClient, records: list[dict[str, Any]], ctx: StreamContext) -> None:
        read_properties(client, object_type, records, batch_properties)
        ids = [str(r["id"]) for r in records]
        for to_type in to_types:
            links = read_associations(client, object_type, to_type, ids)
            for record in records:
                record.setdefault("associations", {})[to_type] = links.get(str(record["id"]), [])
    return enrich
