from __future__ import annotations

import stat

import pytest

from core.connections import get_connection, save_connection
from core.credentials import Vault
from core.errors import ConfigError
from core.settings import Settings


def test_settings_come_from_the_environment_in_one_place(tmp_path):
    s = Settings.from_env({"PANDORA_HOME": str(tmp_path), "DATABASE_URL": "postgresql://h/db", "PANDORA_DB_POOL_MAX": "3"})
    assert s.pandora_home == tmp_path and s.database_url == "postgresql://h/db" and s.db_pool_max == 3
    assert not s.embedded
    assert Settings.from_env({}).embedded


def test_malformed_setting_names_the_variable():
    with pytest.raises(ConfigError, match="PANDORA_DB_POOL_MAX"):
        Settings.from_env({"PANDORA_DB_POOL_MAX": "many"})


def test_missing_required_setting_names_the_variable():
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        Settings.from_env({}).require("anthropic_api_key", "ANTHROPIC_API_KEY")


def test_embedded_default_generates_a_private_key_file_once(tmp_path):
    s = Settings(pandora_home=tmp_path / "home")
    blob = Vault.from_settings(s).encrypt({"token": "abc"})
    key_file = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Vault.from_settings(s).decrypt(blob) == {"token": "abc"}


def test_external_database_requires_an_explicit_secret_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        Vault.from_settings(Settings(database_url="postgresql://h/db", pandora_home=tmp_path))
    assert err.value.details["variable"] == "PANDORA_SECRET_KEY"


def test_wrong_key_is_a_clear_error_not_garbage(tmp_path):
    blob = Vault.from_settings(Settings(secret_key="one")).encrypt({"token": "abc"})
    with pytest.raises(ConfigError, match="PANDORA_SECRET_KEY"):
        Vault.from_settings(Settings(secret_key="two")).decrypt(blob)


def test_credentials_are_encrypted_at_rest(db, vault, workspace):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "hubspot", {"token": "pat-na1-SECRET"}, metadata={"portal": 1})
        raw = conn.execute("SELECT credentials FROM connections WHERE workspace_id = %s", (workspace["id"],)).fetchone()
        stored = get_connection(conn, workspace["id"], "hubspot")
    assert b"SECRET" not in bytes(raw["credentials"])
    assert vault.decrypt(stored["credentials"]) == {"token": "pat-na1-SECRET"}


def test_reconnecting_merges_metadata_and_keeps_credentials_when_none_given(db, vault, workspace):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "gong", {"key": "k"}, metadata={"users": [1]})
        row = save_connection(conn, vault, workspace["id"], "gong", None, metadata={"tracked": [1]})
        stored = get_connection(conn, workspace["id"], "gong")
    assert row["metadata"] == {"users": [1], "tracked": [1]}
    assert vault.decrypt(stored["credentials"]) == {"key": "k"}
