"""A small connector for the sync-engine tests, declared the way real connectors are, over `PagedApi`."""
from __future__ import annotations

import time
from decimal import Decimal

from core.errors import AuthError
from core.sync.http import HttpClient, RateLimiter, RetryPolicy
from core.sync.paginators import AfterCursor
from core.sync.protocol import CredentialField, Stream, StreamContext


def normalize_deal(record: dict, ctx: StreamContext) -> dict:
    props = record["properties"]
    return {
        "source": "fakecrm",
        "source_id": record["id"],
        "name": props.get("dealname"),
        "amount": Decimal(props["amount"]) if props.get("amount") else None,
        "stage": props.get("dealstage"),
        "close_date": props.get("closedate") or None,
        "source_updated_at": props.get("hs_lastmodifieddate"),
        "source_data": record,
    }


class PagedConnector:
    name = "fakecrm"
    label = "Fake CRM"
    credential_fields = [CredentialField("token", "API token")]

    def __init__(self, page_size: int = 3) -> None:
        self.page_size = page_size

    def client(self, credentials, metadata, *, transport=None, sleep=None) -> HttpClient:
        return HttpClient(
            metadata["base_url"], connector=self.name, transport=transport,
            headers={"Authorization": f"Bearer {credentials['token']}"},
            retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
            rate_limiter=RateLimiter(200, burst=10), sleep=sleep or time.sleep,
        )

    def check_auth(self, client: HttpClient) -> dict:
        client.get_json("/v1/deals", params={"limit": 1})
        return {"portal": "fake"}

    def streams(self, ctx: StreamContext) -> list[Stream]:
        return [
            Stream(
                name="deals", entity="deals", path="/v1/deals", paginator=AfterCursor(),
                normalize=normalize_deal, records_path="results", params={"limit": self.page_size},
                cursor_field="properties.hs_lastmodifieddate", since=lambda since: {"params": {"since": since}},
            )
        ]


__all__ = ["PagedConnector", "AuthError"]
