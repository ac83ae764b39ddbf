"""Leader election without processes: two candidates in one test, each with its own lock
(PostgreSQL: its own dedicated connection; SQLite: its own open file description)."""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from labbook.scheduler.election import (
    AdvisoryLockElection,
    FileLockElection,
    election_for,
    holder_name,
)
from tests.scheduler.support import wait_for

# A key of the tests' own, so that nothing else contending for the real one can interfere.
TEST_KEY = 0x7465_7374_6C6F_636B


@pytest.fixture
def candidates(backend, tmp_path):
    """Two candidates for the test backend; closed afterwards."""
    name, url = backend
    if name == "postgresql":
        made = [AdvisoryLockElection(url, key=TEST_KEY) for _ in range(2)]
    else:
        made = [election_for(url, tmp_path / "scheduler.lock") for _ in range(2)]
    yield made
    for election in made:
        election.close()


def test_election_for_picks_the_backend_lock(backend, tmp_path):
    name, url = backend
    election = election_for(url, tmp_path / "lock")
    expected = AdvisoryLockElection if name == "postgresql" else FileLockElection
    assert isinstance(election, expected)
    election.close()


def test_election_for_refuses_other_databases(tmp_path):
    with pytest.raises(ValueError, match="mysql"):
        election_for("mysql://u@localhost/labbook", tmp_path / "lock")


def test_second_candidate_waits_until_the_first_releases(candidates):
    first, second = candidates
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert second.try_acquire() is False           # polling does not steal it either
    assert first.still_held() is True
    assert second.still_held() is False
    first.release()
    assert first.still_held() is False
    # the server releases a killed session's locks as that backend exits: poll for it
    wait_for(second.try_acquire, 10, "the lock to be released")
    assert first.try_acquire() is False


def test_acquiring_again_while_holding_keeps_one_lock(candidates):
    first, second = candidates
    assert first.try_acquire() and first.try_acquire()
    first.release()                                 # one release frees it (not re-entrant)
    assert second.try_acquire() is True


def test_release_when_not_holding_is_harmless(candidates):
    first, second = candidates
    first.release()
    assert second.try_acquire() is True


def _pg_connection_count(url: str, pid: int) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                             {"p": pid}).scalar()
    engine.dispose()
    return int(count)


def test_lock_lost_is_noticed_and_taken_over(backend, candidates):
    """PostgreSQL: the leader's lock connection is killed (as when its host vanishes):
    still_held() says so, and the other candidate takes over. SQLite: the lock file is
    replaced, which would let a newcomer lock a new file: the holder steps down."""
    name, url = backend
    first, second = candidates
    assert first.try_acquire()
    if name == "postgresql":
        pid = first.backend_pid
        assert _pg_connection_count(url, pid) == 1
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        engine.dispose()
    else:
        os.replace(first.path, first.path.with_suffix(".old"))
        first.path.write_text("")
    assert first.still_held() is False
    # the server releases a killed session's locks as that backend exits: poll for it
    wait_for(second.try_acquire, 10, "the lock to be released")
    assert first.try_acquire() is False


def test_lock_names_its_holder_and_holds_no_transaction(backend, candidates):
    name, url = backend
    first, _ = candidates
    assert first.try_acquire()
    if name != "postgresql":
        assert first.path.read_text().strip() == holder_name()
        return
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT application_name, state FROM pg_stat_activity WHERE pid = :p"),
            {"p": first.backend_pid}).one()
    engine.dispose()
    assert row.application_name == "labbook-scheduler"
    assert row.state == "idle"                      # not "idle in transaction"
    # the server probes this session's peer, to free the lock of a vanished leader host
    assert first._conn.execute(sa.text("SHOW tcp_keepalives_idle")).scalar() == "10"
