"""Webhooks: inbound signatures (good accepted; forged, stale, future, missing and unconfigured rejected),
event ingestion through the upsert path (rows in Postgres, the pipeline run after, bad records named), skill
triggers, and outbound callbacks to a local receiver — signed so the receiver can verify them, retried on 5xx,
recorded in webhook_deliveries."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from bot.sidecar.auth import verify_signature
from bot.sidecar.http import ApiError
from tests.test_sidecar_support import (Api, Receiver, make_client, new_key, new_workspace, signed,
                                        webhook_secret_for)


@pytest.fixture
def hook(db, settings):
    """(client, workspace id, secret, jobs)"""
    client, jobs = make_client(db, settings)
    ws = new_workspace(db, "Hooks")
    secret = webhook_secret_for(db, settings, ws)
    with client:
        yield client, ws, secret, jobs
    assert jobs.join(60)


def post(client, ws, path, raw, headers):
    return client.post(f"/webhooks/{ws}/{path}", content=raw, headers=headers)


def receiver_verifies(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """What a receiver does with our callback, written independently of the code under test."""
    ts = headers["X-Pandora-Timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Pandora-Signature"]) and abs(time.time() - int(ts)) < 300


EVENT = {"entity": "activities", "records": [
    {"source_id": "evt-1", "activity_type": "email", "subject": "Pricing follow-up", "occurred_at": "2026-11-20T10:00:00Z",
     "owner_email": "dana@demo.co", "participants": [{"email": "jane@acme.io"}]},
    {"source_id": 2, "activity_type": "call", "subject": "Discovery", "duration_seconds": 900},
]}


def test_a_signed_event_batch_is_ingested_through_the_upsert_path(db, hook):
    client, ws, secret, _ = hook
    raw, headers = signed(secret, EVENT)
    r = post(client, ws, "events", raw, headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inserted"] == 2 and body["entity"] == "activities" and body["steps"]
    with db.connection() as conn:
        rows = conn.execute("SELECT source, source_id, subject, duration_seconds, row_hash FROM activities"
                            " WHERE workspace_id = %s ORDER BY source_id", (ws,)).fetchall()
    assert [(r["source"], r["source_id"], r["subject"]) for r in rows] == [
        ("webhook", "2", "Discovery"), ("webhook", "evt-1", "Pricing follow-up")]
    assert all(r["row_hash"] for r in rows)  # written by the one upsert path
    raw, headers = signed(secret, EVENT)
    again = post(client, ws, "events", raw, headers).json()
    assert again["inserted"] == 0 and again["unchanged"] == 2


def test_a_forged_signature_is_401_and_nothing_is_written(db, hook):
    client, ws, secret, _ = hook
    raw, headers = signed("whsec_someone-else", EVENT)
    r = post(client, ws, "events", raw, headers)
    assert r.status_code == 401 and "does not match" in r.json()["error"]["message"]
    raw, headers = signed(secret, EVENT)
    tampered = raw.replace(b"Discovery", b"Discount!")
    assert post(client, ws, "events", tampered, headers).status_code == 401
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM activities WHERE workspace_id = %s", (ws,)).fetchone()["n"] == 0


@pytest.mark.parametrize("skew, words", [(-301, "old"), (-3600, "old"), (301, "future")])
def test_stale_or_future_timestamps_are_401(hook, skew, words):
    client, ws, secret, _ = hook
    raw, headers = signed(secret, EVENT, timestamp=int(time.time()) + skew)
    r = post(client, ws, "events", raw, headers)
    assert r.status_code == 401 and words in r.json()["error"]["message"]


def test_missing_headers_are_401(hook):
    client, ws, secret, _ = hook
    raw, headers = signed(secret, EVENT)
    for drop in ("X-Pandora-Signature", "X-Pandora-Timestamp"):
        r = post(client, ws, "events", raw, {k: v for k, v in headers.items() if k != drop})
        assert r.status_code == 401 and "missing" in r.json()["error"]["message"]


def test_a_workspace_without_a_secret_cannot_receive_webhooks(db, hook):
    client, _, secret, _ = hook
    other = new_workspace(db, "NoSecret")
    raw, headers = signed(secret, EVENT)
    r = post(client, other, "events", raw, headers)
    assert r.status_code == 401 and "pandora webhook secret" in r.json()["error"]["message"]


def test_a_rotated_signature_list_is_accepted_when_one_matches(hook):
    client, ws, secret, _ = hook
    raw, headers = signed(secret, EVENT)
    headers["X-Pandora-Signature"] = "v1=" + "0" * 64 + ", " + headers["X-Pandora-Signature"]
    assert post(client, ws, "events", raw, headers).status_code == 200


def test_verify_signature_window_edges():
    body = b'{"a":1}'
    now = 1_800_000_000
    _, headers = signed("s3cret", body, timestamp=now - 299)
    verify_signature("s3cret", headers["X-Pandora-Timestamp"], headers["X-Pandora-Signature"], body, now=now)
    with pytest.raises(ApiError):
        verify_signature("s3cret", "yesterday", headers["X-Pandora-Signature"], body, now=now)


@pytest.mark.parametrize("body, field", [
    ({"entity": "spaceships", "records": [{"source_id": "1"}]}, "entity"),
    ({"entity": "activities", "records": []}, "records"),
    ({"entity": "activities", "records": [{"source_id": "1"}, "text"]}, "records[1]"),
    ({"entity": "activities", "records": [{"subject": "no id"}]}, "records[0].source_id"),
    ({"entity": "activities", "records": [{"source_id": "1", "colour": "red"}]}, "records[0].colour"),
    ({"entity": "activities", "records": [{"source_id": "1", "id": "x"}]}, "records[0].id"),
    ({"entity": "activities", "records": [{"source_id": "1", "source": "hubspot"}]}, "records[0].source"),
    ({"entity": "activities", "records": [{"source_id": "1"}, {"source_id": "2", "subject": {"x": 1}}]},
     "records[1].subject"),
])
def test_bad_records_are_400_naming_the_record_and_field(db, hook, body, field):
    client, ws, secret, _ = hook
    raw, headers = signed(secret, body)
    r = post(client, ws, "events", raw, headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM activities WHERE workspace_id = %s", (ws,)).fetchone()["n"] == 0


def test_ingested_records_are_linked_by_the_pipeline(db, hook):
    client, ws, secret, _ = hook
    for entity, records in (
        ("accounts", [{"source_id": "acc-1", "name": "Acme", "domain": "acme.io"}]),
        ("deals", [{"source_id": "deal-1", "name": "Acme expansion", "amount": 50000, "account_source_id": "acc-1"}]),
    ):
        raw, headers = signed(secret, {"entity": entity, "records": records})
        assert post(client, ws, "events", raw, headers).status_code == 200
    with db.connection() as conn:
        deal = conn.execute("SELECT d.account_id, a.id AS acme FROM deals d, accounts a WHERE d.workspace_id = %s"
                            " AND a.workspace_id = d.workspace_id", (ws,)).fetchone()
    assert deal["account_id"] == deal["acme"]


def test_a_webhook_skill_trigger_runs_in_the_background_and_calls_back_signed(db, hook):
    client, ws, secret, jobs = hook
    with Receiver() as receiver:
        raw, headers = signed(secret, {"params": {}, "callback_url": f"{receiver.url}/done"})
        r = post(client, ws, "skills/hygiene", raw, headers)
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        assert receiver.got.wait(30)
        assert jobs.join(30)
    [(got_headers, got_raw)] = receiver.received
    assert receiver_verifies(secret, got_headers, got_raw)
    payload = json.loads(got_raw)
    assert payload["run_id"] == run_id and payload["status"] == "succeeded"
    assert payload["event"] == "skill.run.completed" and payload["result"]["skill"] == "pipeline-hygiene"
    with db.connection() as conn:
        run = conn.execute("SELECT trigger, status FROM skill_runs WHERE workspace_id = %s AND id = %s",
                           (ws, payload["skill_run_id"])).fetchone()
        delivery = conn.execute("SELECT status, status_code, attempts FROM webhook_deliveries"
                                " WHERE workspace_id = %s AND run_id = %s", (ws, run_id)).fetchone()
    assert run == {"trigger": "webhook", "status": "succeeded"}
    assert delivery == {"status": "delivered", "status_code": 200, "attempts": 1}


def test_a_rest_skill_run_with_a_callback_is_202_and_retried_past_a_5xx(db, settings, hook):
    client, ws, secret, jobs = hook
    api = Api(client, ws, new_key(db, ws), jobs)
    with Receiver(statuses=[503]) as receiver:
        r = api.post("/skills/forecast/run", {"callback_url": f"{receiver.url}/hook"})
        assert r.status_code == 202, r.text
        assert receiver.got.wait(30)
        assert jobs.join(30)
    assert len(receiver.received) == 2
    for got_headers, got_raw in receiver.received:
        assert receiver_verifies(secret, got_headers, got_raw)
    assert json.loads(receiver.received[-1][1])["run_id"] == r.json()["run_id"]
    with db.connection() as conn:
        delivery = conn.execute("SELECT status, status_code, attempts, error FROM webhook_deliveries"
                                " WHERE workspace_id = %s", (ws,)).fetchone()
    assert delivery == {"status": "delivered", "status_code": 200, "attempts": 2, "error": None}


def test_a_callback_refused_with_4xx_is_not_retried_and_is_recorded_failed(db, hook):
    client, ws, secret, jobs = hook
    api = Api(client, ws, new_key(db, ws), jobs)
    with Receiver(statuses=[410, 410]) as receiver:
        assert api.post("/skills/hygiene/run", {"callback_url": f"{receiver.url}/gone"}).status_code == 202
        assert jobs.join(30)
    assert len(receiver.received) == 1
    with db.connection() as conn:
        delivery = conn.execute("SELECT status, status_code, attempts, error FROM webhook_deliveries"
                                " WHERE workspace_id = %s", (ws,)).fetchone()
    assert delivery["status"] == "failed" and delivery["status_code"] == 410 and delivery["attempts"] == 1
    assert "410" in delivery["error"]


def test_a_callback_is_signed_even_when_the_workspace_had_no_secret(db, settings):
    client, jobs = make_client(db, settings)
    ws = new_workspace(db, "Fresh")
    api = Api(client, ws, new_key(db, ws), jobs)
    with client, Receiver() as receiver:
        assert api.post("/skills/hygiene/run", {"callback_url": receiver.url}).status_code == 202
        assert jobs.join(30)
    secret = webhook_secret_for(db, settings, ws)  # created by the delivery
    assert receiver_verifies(secret, *receiver.received[0])


def test_a_bad_callback_url_or_unknown_skill_fails_before_anything_runs(db, hook):
    client, ws, secret, _ = hook
    api = Api(client, ws, new_key(db, ws), None)
    r = api.post("/skills/hygiene/run", {"callback_url": "ftp://example.com/x"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "callback_url"
    raw, headers = signed(secret, {"callback_url": "http://127.0.0.1:9/x"})
    assert post(client, ws, "skills/astrology", raw, headers).status_code == 404
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE workspace_id = %s",
                            (ws,)).fetchone()["n"] == 0
