"""On-demand call transcripts (core.transcripts) against the fake Gong and Fireflies: fetched once and cached on
the conversation, fetched again when stale or asked to, errors that say what happened and cache nothing, never
a read across workspaces; the "what did Acme say about pricing?" search, its conversation intent and tools, and
`pandora transcript`."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bot import intents
from bot.cli import main
from bot.conversation import answer
from connectors.fireflies.connector import FirefliesConnector
from core.connections import save_connection
from core.errors import InputError, NotFound
from core.sync import registry
from core.transcripts import get_transcript, search_transcripts, topic_terms
from core.transcripts.search import excerpts_of
from tests.fakes.anthropic_api import FakeAnthropic, tool_results, tool_use_block
from tests.fakes.fireflies_api import FakeFireflies, sentence
from tests.fakes.gong_api import load, make_call
from tests.support import new_workspace, rows, write
from tests.test_gong_support import JON, connect, connector, gong  # noqa: F401 (fixtures)

DISCOVERY, GLOBEX = "7782342274025937895", "7782342274025937999"   # fixture calls (Acme-linked / not)
PRICING, INTERNAL = "8800000000000000001", "8800000000000000002"
ACME_SF = "0015g00000XyZ12AAB"                                       # the Account in the fixture call's context
ADA_SPK, JON_SPK = "1232345678555530011", "6432345678555530067"
FAST = {"per_second": 1000}                                          # no real waiting in tests that can't inject sleep
ACME_CONTEXT = [{"system": "Salesforce", "objects": [{"objectType": "Account", "objectId": ACME_SF}]}]


# One database for the module, a workspace per test (every statement is workspace-scoped, and a test that
# reads across workspaces is part of the file): a clone per test would cost more than the tests themselves.
@pytest.fixture
def db(module_db):
    return module_db


@pytest.fixture
def settings(module_settings):
    return module_settings


@pytest.fixture
def vault(module_settings):
    from core.credentials import Vault

    return Vault.from_settings(module_settings)


@pytest.fixture
def workspace(module_db):
    return new_workspace(module_db, "Acme RevOps")


def mono(speaker: str, start_ms: int, *texts: str) -> dict:
    return {"speakerId": speaker, "topic": None,
            "sentences": [{"start": start_ms + i * 1000, "end": start_ms + i * 1000 + 900, "text": t}
                          for i, t in enumerate(texts)]}


def party(name: str, email: str, speaker: str, affiliation: str, user_id: str | None = None) -> dict:
    return {"id": f"p-{speaker}", "name": name, "emailAddress": email, "speakerId": speaker,
            "affiliation": affiliation, "userId": user_id}


def seed_acme(gong) -> None:
    """Acme's calls: the fixture discovery call (no pricing talk), a pricing call, an internal call about
    Acme's pricing (never searched), and Globex's call mentioning pricing (another account)."""
    gong.transcripts[DISCOVERY] = load("calls_transcript_CONSTRUCTED.json")["callTranscripts"][0]["transcript"]
    jon = party("Jon Snow", "jon.snow@example.com", JON_SPK, "Internal", JON)
    ada = party("Ada Example", "ada@example.org", ADA_SPK, "External")
    gong.calls.append(make_call(PRICING, JON, "2026-05-08T15:00:00+00:00", title="Acme | Proposal review",
                                parties=[jon, ada], context=ACME_CONTEXT))
    gong.transcripts[PRICING] = [
        mono(JON_SPK, 0, "Thanks for joining.", "Let's walk through the proposal."),
        mono(ADA_SPK, 65_000, "Honestly, the price is higher than we budgeted for this year."),
        mono(JON_SPK, 80_000, "We can look at volume discounts."),
        mono(ADA_SPK, 95_000, "Our security team still needs the SOC 2 report."),
        mono(JON_SPK, 120_000, "I will send it today."),
        mono(ADA_SPK, 3_725_000, "Please send the updated pricing sheet by Friday."),
    ]
    gong.calls.append(make_call(INTERNAL, JON, "2026-05-09T15:00:00+00:00", title="Acme deal strategy",
                                parties=[jon], context=ACME_CONTEXT))
    gong.transcripts[INTERNAL] = [mono(JON_SPK, 0, "Acme pricing is the blocker.")]
    gong.transcripts[GLOBEX] = [mono(JON_SPK, 0, "Globex asked about pricing too.")]


@pytest.fixture
def acme(db, vault, workspace, gong, connector, engine):
    """A workspace with Gong connected and synced, and Acme's CRM account, so the linker ties its calls to it."""
    seed_acme(gong)
    write(db, workspace, "accounts", [{"source_id": ACME_SF, "name": "Acme Corp", "domain": "acme.example.com"}],
          source="salesforce")
    connect(db, vault, workspace["id"], rate_limit=FAST)
    report = engine.run(workspace["id"], "gong")
    assert report.status == "succeeded", report.error
    return workspace


def conv(db, ws, source_id: str) -> dict:
    [row] = rows(db, ws, "SELECT * FROM conversations WHERE workspace_id = %s AND source_id = %s", source_id)
    return row


def fetch(db, vault, ws, ref, sleeps, **kw):
    return get_transcript(db, vault, ws["id"], ref, sleep=sleeps.append, **kw)


# ------------------------------------------------------------------------------------------ Gong: fetch and cache

def test_gong_transcript_is_fetched_with_speaker_names_then_served_from_the_cache(db, vault, acme, gong, sleeps):
    row = conv(db, acme, DISCOVERY)
    t = fetch(db, vault, acme, str(row["id"]), sleeps)
    assert not t.from_cache and t.source == "gong" and t.title == "Acme Corp <> Example Co | Discovery"
    assert t.lines == ["[00:00] Jon Snow: Thanks for making the time today. Can you walk me through how you "
                       "forecast today?",
                       "[00:04] Ada Example: Mostly spreadsheets, honestly, and a weekly call."]
    assert gong.transcript_requests() == [{"filter": {"callIds": [DISCOVERY]}}]
    # names came from the speakers map sync stored on the call: no parties lookup
    assert not [b for b in gong.calls_requests() if "callIds" in b["filter"]]
    stored = conv(db, acme, DISCOVERY)
    assert stored["transcript"] == t.text and stored["transcript_fetched_at"] == t.fetched_at
    assert stored["updated_at"] == row["updated_at"]            # the cache write is not a source change

    again = fetch(db, vault, acme, DISCOVERY, sleeps)          # by Gong call id this time
    assert again.from_cache and again.text == t.text and again.fetched_at == t.fetched_at
    assert len(gong.transcript_requests()) == 1                 # no second request


def test_a_call_synced_without_a_speakers_map_names_speakers_with_one_parties_lookup(db, vault, acme, gong, sleeps):
    with db.connection() as conn:  # as rows synced before the map was stored
        conn.execute("UPDATE conversations SET source_data = source_data - 'speakers'"
                     " WHERE workspace_id = %s AND source_id = %s", (acme["id"], DISCOVERY))
    t = fetch(db, vault, acme, DISCOVERY, sleeps)
    assert t.lines[:2] == ["[00:00] Jon Snow: Thanks for making the time today. Can you walk me through how you "
                           "forecast today?",
                           "[00:04] Ada Example: Mostly spreadsheets, honestly, and a weekly call."]
    assert [b["filter"] for b in gong.calls_requests()][-1] == {"callIds": [DISCOVERY]}


def test_a_stale_cache_is_fetched_again_and_max_age_decides_what_stale_is(db, vault, acme, gong, sleeps):
    first = fetch(db, vault, acme, DISCOVERY, sleeps)
    later = first.fetched_at + timedelta(days=8)
    assert fetch(db, vault, acme, DISCOVERY, sleeps, now=later, max_age=timedelta(days=30)).from_cache
    assert len(gong.transcript_requests()) == 1
    t = fetch(db, vault, acme, DISCOVERY, sleeps, now=later)   # default 7 days
    assert not t.from_cache and len(gong.transcript_requests()) == 2
    assert conv(db, acme, DISCOVERY)["transcript_fetched_at"] == later


def test_the_context_layer_sets_the_cache_lifetime(db, vault, acme, gong, sleeps):
    from core.context import update_section

    first = fetch(db, vault, acme, DISCOVERY, sleeps)
    with db.connection() as conn:
        update_section(conn, acme["id"], "goals_and_targets", {"thresholds": {"transcript_max_age_days": 1}})
    assert not fetch(db, vault, acme, DISCOVERY, sleeps, now=first.fetched_at + timedelta(days=2)).from_cache


def test_a_call_changed_by_a_later_sync_is_fetched_again(db, vault, acme, gong, engine, sleeps):
    fetch(db, vault, acme, DISCOVERY, sleeps)
    call = next(c for c in gong.calls if c["metaData"]["id"] == DISCOVERY)
    call["metaData"]["title"] = "Acme Corp <> Example Co | Discovery (re-processed)"
    gong.transcripts[DISCOVERY][1]["sentences"][0]["text"] = "Spreadsheets, and a weekly forecast call."
    assert engine.run(acme["id"], "gong", full=True).status == "succeeded"
    t = fetch(db, vault, acme, DISCOVERY, sleeps)
    assert not t.from_cache and "Ada Example: Spreadsheets, and a weekly forecast call." in t.text
    assert len(gong.transcript_requests()) == 2


def test_refresh_fetches_even_a_fresh_cache(db, vault, acme, gong, sleeps):
    fetch(db, vault, acme, DISCOVERY, sleeps)
    assert not fetch(db, vault, acme, DISCOVERY, sleeps, refresh=True).from_cache
    assert len(gong.transcript_requests()) == 2


def test_gong_rate_limits_are_honoured_by_the_shared_client(db, vault, acme, gong, sleeps):
    gong.throttle(1)   # the next request answers 429 with Retry-After: 2
    t = fetch(db, vault, acme, DISCOVERY, sleeps)
    assert "Jon Snow:" in t.text and 2.0 in sleeps
    assert len(gong.transcript_requests()) == 2


def test_speakers_gong_cannot_name_get_stable_labels(db, vault, acme, gong, sleeps):
    gong.transcripts[DISCOVERY].append(mono("999", 30_000, "Sorry, I joined late."))
    gong.transcripts[DISCOVERY].append(mono("998", 40_000, "Me too."))
    t = fetch(db, vault, acme, DISCOVERY, sleeps)
    assert t.lines[2:] == ["[00:30] Speaker 1: Sorry, I joined late.", "[00:40] Speaker 2: Me too."]


def test_gong_no_calls_found_is_a_clear_error_and_nothing_is_cached(db, vault, acme, gong, sleeps):
    del gong.transcripts[DISCOVERY]          # Gong answers its "No calls found" 404
    with pytest.raises(NotFound) as err:
        fetch(db, vault, acme, DISCOVERY, sleeps)
    assert "Gong has no transcript for 'Acme Corp <> Example Co | Discovery'" in err.value.message
    assert "Nothing was cached" in err.value.message
    row = conv(db, acme, DISCOVERY)
    assert row["transcript"] is None and row["transcript_fetched_at"] is None


# ------------------------------------------------------------------------------------------ errors and scoping

def test_unknown_or_another_workspaces_conversation_is_not_found_and_nothing_is_asked(db, vault, acme, gong, sleeps):
    other = new_workspace(db, "Other Co")
    discovery = conv(db, acme, DISCOVERY)
    for ref in (str(discovery["id"]), DISCOVERY, str(uuid.uuid4())):
        with pytest.raises(NotFound) as err:
            fetch(db, vault, other, ref, sleeps)
        assert "in this workspace" in err.value.message and "Acme" not in err.value.message
    assert gong.transcript_requests() == []


def test_a_source_without_transcripts_is_a_clear_error(db, vault, workspace, sleeps):
    write(db, workspace, "conversations", [{"source_id": "m-1", "title": "Imported meeting"}], source="csv_import")
    [row] = rows(db, workspace, "SELECT id FROM conversations WHERE workspace_id = %s")
    with pytest.raises(InputError) as err:
        fetch(db, vault, workspace, str(row["id"]), sleeps)
    assert "Conversations from csv_import have no transcript Pandora can fetch" in err.value.message
    assert "gong" in err.value.message and "fireflies" in err.value.message


def test_a_source_that_is_no_longer_connected_says_how_to_connect(db, vault, workspace, connector, sleeps):
    write(db, workspace, "conversations", [{"source_id": "123", "title": "Old call"}], source="gong")
    with pytest.raises(NotFound) as err:
        fetch(db, vault, workspace, "123", sleeps)
    assert "pandora connect gong" in err.value.message


# ------------------------------------------------------------------------------------------ Fireflies

FF_KEY = "ff-test-key"
FF_CALL, FF_EMPTY = "01HZX5B3Q7EXAMPLE0001", "01HZX5B3Q7EXAMPLE0002"   # fixture transcripts


@pytest.fixture
def fireflies(db, vault, workspace, engine):
    from connectors import load_all

    load_all()
    with FakeFireflies(FF_KEY) as fake, registry.registered(FirefliesConnector(fake.url)):
        fake.sentences[FF_CALL] = [
            sentence(0, "Jon Snow", "How do you forecast today?", 1.5),
            sentence(1, "Jon Snow", "Walk me through it.", 3.0),
            sentence(2, "Ada Example", "Spreadsheets. And pricing has to stay under budget.", 75.2, speaker_id=1),
            sentence(3, None, "Hello?", 80.0, speaker_id=7),
        ]
        with db.connection() as conn:
            save_connection(conn, vault, workspace["id"], "fireflies", {"api_key": FF_KEY}, metadata={
                "rate_limit": {"requests": 100_000, "period": 1},
                "tracked_users": [{"id": "u1", "name": "Jon Snow", "email": "jon.snow@example.com"}]})
        assert engine.run(workspace["id"], "fireflies").status == "succeeded"
        yield fake


def test_fireflies_sentences_become_speaker_turns(db, vault, workspace, fireflies, sleeps):
    t = fetch(db, vault, workspace, FF_CALL, sleeps)
    assert t.source == "fireflies" and not t.from_cache
    assert t.lines == ["[00:01] Jon Snow: How do you forecast today? Walk me through it.",
                       "[01:15] Ada Example: Spreadsheets. And pricing has to stay under budget.",
                       "[01:20] Speaker 1: Hello?"]
    [req] = fireflies.transcript_fetches()
    assert req["variables"] == {"id": FF_CALL} and "transcript(id: $id)" in req["query"]
    assert fetch(db, vault, workspace, FF_CALL, sleeps).from_cache and len(fireflies.transcript_fetches()) == 1


def test_fireflies_object_not_found_or_no_sentences_is_a_clear_error(db, vault, workspace, fireflies, sleeps):
    with pytest.raises(NotFound) as err:
        fetch(db, vault, workspace, FF_EMPTY, sleeps)           # known, but no sentences yet
    assert "Fireflies has no transcript for 'Internal standup'" in err.value.message
    fireflies.transcripts = [t for t in fireflies.transcripts if t["id"] != FF_CALL]   # gone at Fireflies
    with pytest.raises(NotFound):
        fetch(db, vault, workspace, FF_CALL, sleeps)
    assert rows(db, workspace, "SELECT count(*) AS n FROM conversations WHERE workspace_id = %s"
                               " AND transcript IS NOT NULL")[0]["n"] == 0


# ------------------------------------------------------------------------------------------ search

def test_topic_words_and_excerpt_windows():
    assert topic_terms("the price increase on our last call") == ["price", "increase"]
    text = "\n".join(["[00:00] A: hello", "[00:05] B: our pricing is fixed", "[00:09] A: ok",
                      "[00:20] B: unrelated", "[00:30] A: bye", "[00:40] B: Prices again"])
    found = excerpts_of(text, ["pricing"])
    assert [e[0] for e in found] == ["[00:00] A: hello\n[00:05] B: our pricing is fixed\n[00:09] A: ok",
                                     "[00:30] A: bye\n[00:40] B: Prices again"]
    assert found[0][1] == 5.0 and found[0][2] == ["pricing"]


def test_search_finds_what_the_account_said_about_pricing_on_its_external_calls(db, vault, acme, gong, sleeps):
    acct = rows(db, acme, "SELECT id FROM accounts WHERE workspace_id = %s")[0]
    found = search_transcripts(db, vault, acme["id"], topic="pricing", account_id=acct["id"], sleep=sleeps.append)
    assert [s.title for s in found.conversations] == ["Acme | Proposal review", "Acme Corp <> Example Co | Discovery"]
    assert [(e.title, e.at) for e in found.excerpts] == [("Acme | Proposal review", 65.0),
                                                         ("Acme | Proposal review", 3725.0)]
    first, last = found.excerpts[0].text.splitlines(), found.excerpts[1].text.splitlines()
    assert first == ["[00:00] Jon Snow: Thanks for joining. Let's walk through the proposal.",
                     "[01:05] Ada Example: Honestly, the price is higher than we budgeted for this year.",
                     "[01:20] Jon Snow: We can look at volume discounts."]
    assert last[-1] == "[1:02:05] Ada Example: Please send the updated pricing sheet by Friday."
    assert found.excerpts[0].call_url == f"https://app.gong.io/call?id={PRICING}"
    # the internal call and Globex's call were never fetched
    assert {b["filter"]["callIds"][0] for b in gong.transcript_requests()} == {PRICING, DISCOVERY}
    again = search_transcripts(db, vault, acme["id"], topic="pricing", account_id=acct["id"], sleep=sleeps.append)
    assert all(s.from_cache for s in again.conversations) and len(gong.transcript_requests()) == 2


def test_a_source_refusing_is_reported_per_call_and_not_asked_again(db, vault, acme, gong, sleeps):
    acct = rows(db, acme, "SELECT id FROM accounts WHERE workspace_id = %s")[0]
    gong.auth = "Basic revoked"                # the key was revoked in Gong: every request is a 401
    found = search_transcripts(db, vault, acme["id"], topic="pricing", account_id=acct["id"], sleep=sleeps.append)
    assert found.excerpts == [] and len(found.conversations) == 2
    assert all("reconnect Gong" in s.error for s in found.conversations)
    assert len(gong.transcript_requests()) == 1


# ------------------------------------------------------------------------------------------ conversation + CLI

def test_intent_of_what_did_an_account_say_about_a_topic():
    i = intents.parse("What did the Acme team say about pricing?", datetime.now().date())
    assert (i.kind, i.account_term, i.topic) == ("transcript_search", "acme", "pricing")
    i = intents.parse("show me the transcript of the Acme discovery call", datetime.now().date())
    assert (i.kind, i.call_term) == ("transcript", "acme discovery call")
    assert intents.parse("what did we win this quarter?", datetime.now().date()).kind == "deals"


def test_what_did_acme_say_about_pricing_through_the_router(db, settings, acme):
    from bot.router import route

    reply = route(db, settings, acme["id"], "/pandora what did Acme say about pricing?", source="slack")
    assert reply.ok and reply.data["tool"] == "search_call_transcripts" and reply.data["answered_by"] == "keywords"
    assert "What Acme Corp said about 'pricing'" in reply.text
    assert "Ada Example: Honestly, the price is higher than we budgeted" in reply.text
    assert "No mention of 'pricing'" in reply.text and "Acme Corp <> Example Co | Discovery" in reply.text
    assert "No LLM key is set" in reply.text                  # the excerpts are the answer, and it says so
    assert [r["at_seconds"] for r in reply.data["rows"]] == [65.0, 3725.0]
    assert len(reply.blocks) <= 50


def test_transcript_of_a_call_by_title_words(db, settings, acme):
    reply = answer(db, settings, acme["id"], "transcript of the proposal review")
    assert reply.data["tool"] == "get_call_transcript" and "Transcript: Acme | Proposal review" in reply.text
    assert "[01:05] Ada Example: Honestly, the price" in reply.text
    assert reply.data["rows"][0]["from_cache"] is False


def test_claude_gets_the_excerpts_as_data_and_summarises(db, settings, acme):
    use = tool_use_block("search_call_transcripts", {"account": "Acme", "topic": "pricing"})
    with FakeAnthropic(replies=[[use], "Acme finds the price above budget and wants the pricing sheet."]) as fake:
        reply = answer(db, replace(settings, anthropic_api_key="test-key", anthropic_base_url=fake.url), acme["id"],
                       "what did Acme say about pricing?")
    assert "search_call_transcripts" in {t["name"] for t in fake.requests[0]["tools"]}
    [result] = tool_results(fake.requests[1])
    assert result["content"].startswith("<<<DATA tool_result START>>>")
    assert "higher than we budgeted" in result["content"]
    assert reply.text.startswith("Acme finds the price above budget") and "No LLM key is set" not in reply.text


def test_cli_prints_the_transcript_as_json_and_refresh_fetches_again(db, acme, gong, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("PANDORA_HOME", str(tmp_path))
    monkeypatch.setenv("PANDORA_SECRET_KEY", "test-secret-key")   # the vault fixture's key

    def cli(*argv):
        code = main(list(argv))
        return code, json.loads(capsys.readouterr().out)

    code, data = cli("transcript", DISCOVERY, "--workspace", str(acme["id"]), "--json")
    assert code == 0 and data["from_cache"] is False and data["source"] == "gong" and data["lines"] == 2
    assert data["text"].startswith("[00:00] Jon Snow: Thanks for making the time today.")
    assert cli("transcript", DISCOVERY, "--workspace", str(acme["id"]), "--json")[1]["from_cache"] is True
    assert cli("transcript", DISCOVERY, "--workspace", str(acme["id"]), "--refresh", "--json")[1]["from_cache"] is False
    code, err = cli("transcript", str(uuid.uuid4()), "--workspace", str(acme["id"]), "--json")
    assert code == 1 and err["error"]["code"] == "not_found"



def test_the_transcript_cache_lifetime_is_a_validated_context_setting(db, workspace):
    from core.context import get_context, update_section
    from core.errors import InputError

    with db.connection() as conn:
        assert get_context(conn, workspace["id"])["goals_and_targets"]["thresholds"]["transcript_max_age_days"] == 7
        for bad in (-1, "a week", True):
            with pytest.raises(InputError, match="transcript_max_age_days"):
                update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"transcript_max_age_days": bad}})
        update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"transcript_max_age_days": 0.5}})
