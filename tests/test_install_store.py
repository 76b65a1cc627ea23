"""Slack installations in Postgres: tokens encrypted at rest, team → workspace mapping, one-time OAuth states."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_sdk.oauth.installation_store import Installation

from bot.install_store import (PostgresInstallationStore, PostgresOAuthStateStore, bot_token_for_workspace,
                               delete_installation, workspace_for_team)
from core.workspaces import create_workspace, get_workspace


def _install(team_id="T1", team_name="Acme Corp", bot_token="xoxb-secret-111", user_id="U1", **kw) -> Installation:
    return Installation(app_id="A1", team_id=team_id, team_name=team_name, bot_token=bot_token, bot_id="B1",
                        bot_user_id="UBOT", bot_scopes="commands,chat:write,files:write", user_id=user_id,
                        installed_at=kw.pop("installed_at", time.time()), **kw)


@pytest.fixture
def store(db, vault):
    return PostgresInstallationStore(db, vault)


def _raw_rows(db) -> str:
    with db.connection() as conn:
        return "".join(r["t"] for r in conn.execute(
            "SELECT row_to_json(i)::text || encode(coalesce(i.bot_token, ''), 'escape')"
            " || encode(coalesce(i.user_token, ''), 'escape') AS t FROM slack_installations i"))


def test_saved_installation_is_found_with_its_tokens(store):
    store.save(_install(user_token="xoxp-user-222", user_scopes="search:read"))
    found = store.find_installation(enterprise_id=None, team_id="T1")
    assert (found.bot_token, found.bot_id, found.bot_user_id, found.user_id) == ("xoxb-secret-111", "B1", "UBOT", "U1")
    assert found.user_token == "xoxp-user-222" and found.user_scopes == ["search:read"]
    assert found.bot_scopes == ["commands", "chat:write", "files:write"] and found.team_name == "Acme Corp"
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    assert bot.bot_token == "xoxb-secret-111" and bot.team_id == "T1"


def test_tokens_are_encrypted_at_rest(db, store):
    store.save(_install(user_token="xoxp-user-222"))
    raw = _raw_rows(db)
    assert "T1" in raw  # the rows are there …
    assert "xoxb-secret-111" not in raw and "xoxp-user-222" not in raw  # … the tokens are not, in any form


def test_an_unknown_team_has_no_installation(store):
    assert store.find_installation(enterprise_id=None, team_id="T404") is None
    assert store.find_bot(enterprise_id=None, team_id="T404") is None


def test_first_install_creates_a_workspace_named_after_the_team(db, store):
    store.save(_install())
    ws = workspace_for_team(db, "T1")
    with db.connection() as conn:
        assert get_workspace(conn, ws)["name"] == "Acme Corp"


def test_same_team_twice_maps_to_the_same_workspace(db, store):
    store.save(_install())
    first = workspace_for_team(db, "T1")
    store.save(_install(bot_token="xoxb-secret-new", user_id="U2"))
    assert workspace_for_team(db, "T1", create=True, team_name="Acme Corp") == first
    assert store.find_bot(enterprise_id=None, team_id="T1").bot_token == "xoxb-secret-new"


def test_two_teams_map_to_two_workspaces(db, store):
    store.save(_install("T1", "Acme Corp"))
    store.save(_install("T2", "Globex", bot_token="xoxb-globex"))
    assert workspace_for_team(db, "T1") != workspace_for_team(db, "T2")
    assert bot_token_for_workspace(db, store.vault, workspace_for_team(db, "T2")) == "xoxb-globex"


def test_a_team_named_like_an_existing_workspace_gets_its_own(db, store):
    with db.connection() as conn:
        existing = str(create_workspace(conn, "Acme Corp")["id"])
    store.save(_install())
    mapped = workspace_for_team(db, "T1")
    assert mapped != existing
    with db.connection() as conn:
        assert get_workspace(conn, mapped)["name"] == "Acme Corp (T1)"


def test_unknown_team_without_create_is_none(db):
    assert workspace_for_team(db, "T9") is None
    ws = workspace_for_team(db, "T9", team_name="Initech", create=True)
    assert ws and workspace_for_team(db, "T9") == ws


def test_concurrent_first_lookups_create_one_workspace(db):
    with db.connection():  # open the pool first: Database._open itself is not thread-safe
        pass
    barrier = threading.Barrier(4)

    def lookup(_):
        barrier.wait()
        return workspace_for_team(db, "T7", team_name="Hooli", create=True)

    with ThreadPoolExecutor(4) as pool:
        assert len(set(pool.map(lookup, range(4)))) == 1


def test_org_wide_install_serves_its_teams(db, store):
    store.save(Installation(app_id="A1", enterprise_id="E1", enterprise_name="Umbrella", team_id=None,
                            bot_token="xoxb-org", bot_id="B9", bot_user_id="UBOT", user_id="U1",
                            is_enterprise_install=True))
    org = workspace_for_team(db, None, enterprise_id="E1", is_enterprise_install=True)
    assert workspace_for_team(db, "T55", enterprise_id="E1") == org
    assert store.find_bot(enterprise_id="E1", team_id="T55", is_enterprise_install=True).bot_token == "xoxb-org"


def test_find_by_user_gets_the_teams_newest_bot_token(store):
    store.save(_install(user_id="U1", bot_token="xoxb-old", installed_at=time.time() - 60))
    store.save(_install(user_id="U2", bot_token="xoxb-new"))
    found = store.find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert found.user_id == "U1" and found.bot_token == "xoxb-new"
    assert store.find_installation(enterprise_id=None, team_id="T1", user_id="U3") is None


def test_user_only_reinstall_keeps_the_bot(store):
    store.save(_install(user_id="U1"))
    store.save(Installation(app_id="A1", team_id="T1", team_name="Acme Corp", user_id="U1",
                            user_token="xoxp-user-333"))
    found = store.find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert found.user_token == "xoxp-user-333" and found.bot_token == "xoxb-secret-111"


def test_uninstall_deletes_tokens_and_keeps_the_workspace(db, store, vault):
    store.save(_install())
    ws = workspace_for_team(db, "T1")
    assert bot_token_for_workspace(db, vault, ws) == "xoxb-secret-111"
    assert delete_installation(db, "T1") == 1
    assert store.find_installation(enterprise_id=None, team_id="T1") is None
    assert bot_token_for_workspace(db, vault, ws) is None
    assert workspace_for_team(db, "T1") == ws  # a reinstall comes back to the same data
    store.save(_install(bot_token="xoxb-again"))
    assert bot_token_for_workspace(db, vault, ws) == "xoxb-again"


def test_uninstall_of_an_unknown_team_is_a_no_op(db):
    assert delete_installation(db, "T404") == 0


def test_delete_bot_and_delete_all_through_the_store_interface(store):
    store.save(_install(user_token="xoxp-user-222"))
    store.delete_bot(enterprise_id=None, team_id="T1")
    assert store.find_bot(enterprise_id=None, team_id="T1") is None
    assert store.find_installation(enterprise_id=None, team_id="T1").user_token == "xoxp-user-222"
    store.delete_all(enterprise_id=None, team_id="T1")
    assert store.find_installation(enterprise_id=None, team_id="T1") is None


def test_workspace_for_team_needs_an_id(db):
    from core.errors import InputError

    with pytest.raises(InputError, match="team id"):
        workspace_for_team(db, None)


# --- OAuth state -------------------------------------------------------------------------------------------

def test_a_state_is_consumed_exactly_once(db):
    states = PostgresOAuthStateStore(db)
    state = states.issue()
    assert len(state) >= 32
    assert states.consume(state) is True
    assert states.consume(state) is False


def test_an_unknown_state_is_refused(db):
    assert PostgresOAuthStateStore(db).consume("made-up") is False


def test_an_expired_state_is_refused(db):
    states = PostgresOAuthStateStore(db, expiration_seconds=0)
    state = states.issue()
    time.sleep(0.01)
    assert states.consume(state) is False


def test_racing_callbacks_with_one_state_succeed_once(db):
    states = PostgresOAuthStateStore(db)
    state = states.issue()
    barrier = threading.Barrier(4)

    def consume(_):
        barrier.wait()
        return states.consume(state)

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(consume, range(4))) == [False, False, False, True]
