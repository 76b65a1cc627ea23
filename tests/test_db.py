from __future__ import annotations

import pytest

from core.db.database import Database, check_connect, describe, resolve_url
from core.db.embedded import _changes, settings_for
from core.errors import DatabaseError
from core.settings import Settings


def test_unreachable_database_names_host_and_port_but_not_password():
    with pytest.raises(DatabaseError) as err:
        check_connect("postgresql://alice:s3cret-pw@127.0.0.1:1/pandora")
    assert "127.0.0.1:1" in err.value.message
    assert "s3cret-pw" not in err.value.message


def test_malformed_url_is_one_clear_line():
    with pytest.raises(DatabaseError) as err:
        check_connect("postgresql://alice:pw@host:notaport/x")
    assert "pw" not in err.value.message.replace("password", "")


def test_describe_hides_credentials():
    assert describe("postgresql://bob:hunter2@db.example.com:6543/prod") == "db.example.com:6543/prod"


@pytest.mark.parametrize("url", [
    "postgresql://app:s3cret-pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
    "host=ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech user=app password=s3cret-pw dbname=neondb",
])
def test_a_pooled_neon_endpoint_is_refused_with_the_direct_host_to_use(url, tmp_path):
    with pytest.raises(DatabaseError) as err:
        resolve_url(Settings.from_env({"DATABASE_URL": url, "PANDORA_HOME": str(tmp_path)}))
    assert "pooler" in err.value.message and "s3cret-pw" not in err.value.message
    assert err.value.message.endswith("use the host ep-cool-darkness-123456.us-east-2.aws.neon.tech")


def test_a_direct_url_is_used_as_given(tmp_path):
    url = "postgresql://app:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
    assert resolve_url(Settings.from_env({"DATABASE_URL": url, "PANDORA_HOME": str(tmp_path)})) == url


def test_pool_hands_out_working_connections(db: Database):
    with db.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_threads_sharing_a_fresh_database_open_its_pool_once(db_url):
    from concurrent.futures import ThreadPoolExecutor

    from core.db.database import Database

    with Database(db_url, max_size=4) as fresh:
        def one(_):
            with fresh.connection() as conn:
                return conn.execute("SELECT 1 AS one").fetchone()["one"]

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(16))) == [1] * 16


def test_embedded_settings_restart_the_server_only_for_what_is_read_at_start():
    running = {"shared_buffers": ("4017MB", "postmaster"), "wal_buffers": ("251MB", "postmaster"),
               "max_wal_size": ("4GB", "sighup"), "effective_cache_size": ("12051MB", "user")}
    wanted = {"shared_buffers": "4017MB", "wal_buffers": "251MB", "max_wal_size": "4096MB",
              "effective_cache_size": "12051MB"}
    assert _changes(running, wanted) == ({}, False)  # the same values, spelled otherwise
    assert _changes(running, {**wanted, "max_wal_size": "8GB"}) == ({"max_wal_size": "8GB"}, False)
    # The old code asked pg_settings.pending_restart right after the (asynchronous) reload and could miss it.
    assert _changes(running, {**wanted, "wal_buffers": "16MB"}) == ({"wal_buffers": "16MB"}, True)
    assert _changes({**running, "shared_buffers": ("128MB", "postmaster")}, wanted) == (
        {"shared_buffers": "4017MB"}, True)


def test_wal_buffers_grow_with_shared_buffers():
    big, small = settings_for(24 * 1024**3), settings_for(1024**3)
    assert (big["shared_buffers"], big["wal_buffers"]) == ("4096MB", "256MB")
    assert (small["shared_buffers"], small["wal_buffers"]) == ("170MB", "16MB")  # never below the default's cap
