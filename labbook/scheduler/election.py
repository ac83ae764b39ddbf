"""Leader election: of several scheduler processes, exactly one schedules.

Each backend offers the same three calls, so the runner (and the tests) need not care
which one is in use:

* ``try_acquire()``: take the leadership if it is free (never blocks); True when held.
* ``still_held()``: is the leadership still ours? The leader asks every election period
  and stops scheduling as soon as the answer is no.
* ``release()``: give it up (clean shutdown); safe to call when not held.

PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(LOCK_KEY)``, taken on a
dedicated connection that is not part of any pool and runs in autocommit (so no
transaction stays open). The server holds the lock as long as that session lives: when the
leader process dies, its connection closes and the server releases the lock, and the next
candidate's poll gets it. TCP keepalives on both ends make a silently vanished peer (the
leader's host, or the database server) detectable.

SQLite: an exclusive, non-blocking ``fcntl.flock`` on ``LABBOOK_SCHEDULER_LOCK_FILE``; the
kernel drops it when the holder dies. This only works between processes of one host,
which is also the only place a SQLite database can be shared.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

log = logging.getLogger("labbook.scheduler")

# "labbook" in ASCII plus 1: a fixed key that every labbook scheduler of one database
# contends for (advisory locks are scoped to the database, so other databases on the same
# server do not interfere).
LOCK_KEY = 0x6C61_6262_6F6F_6B01
SERVER_KEEPALIVES = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)
LIBPQ_DRIVERS = {"postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
HELD_SQL = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo "
    "AND objsubid = 1"
)


def holder_name() -> str:
    """``hostname:pid``: who holds the leadership, as the admin page shows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Election(Protocol):
    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLockElection:
    """PostgreSQL session advisory lock on a dedicated autocommit connection."""

    def __init__(self, url: str | sa.URL, key: int = LOCK_KEY, connect_timeout: int = 5) -> None:
        url = sa.make_url(url)
        connect_args: dict[str, Any] = {}
        if url.drivername in LIBPQ_DRIVERS:
            connect_args = {
                "connect_timeout": connect_timeout, "application_name": "labbook-scheduler",
                # the leader notices a vanished server, and (server side, for this session
                # only) the server notices a vanished leader host, within about 25 s
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                "keepalives_count": 3, "options": SERVER_KEEPALIVES,
            }
        self.key = key
        self._engine = sa.create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=connect_args
        )
        self._conn: sa.Connection | None = None
        self.held = False
        self.backend_pid: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it. A database error counts as "not acquired"."""
        if self.held:
            return self.still_held()
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self.backend_pid = self._conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            got = self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        except sa.exc.SQLAlchemyError as error:
            log.warning("scheduler election: database unavailable (%s)", type(error).__name__)
            self._drop()
            return False
        self.held = bool(got)
        return self.held

    def still_held(self) -> bool:
        """Ask the server whether this session still holds the lock; a dead connection
        means no (the server has released it, or will)."""
        if not self.held or self._conn is None:
            return False
        hi, lo = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        try:
            count = self._conn.execute(HELD_SQL, {"hi": hi, "lo": lo}).scalar()
        except sa.exc.SQLAlchemyError as error:
            log.warning("scheduler election: lock connection lost (%s)", type(error).__name__)
            self._drop()
            return False
        if not count:
            self.held = False
        return self.held

    def release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except sa.exc.SQLAlchemyError:
                pass  # the session is gone, and the lock with it
        self._drop()

    def close(self) -> None:
        self.release()
        self._engine.dispose()

    def _drop(self) -> None:
        self.held = False
        self.backend_pid = None
        if self._conn is not None:
            try:
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None


class FileLockElection:
    """An exclusive ``flock`` on a file (SQLite: processes of one host)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return self.still_held()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder_name()}\n".encode())
        return True

    def still_held(self) -> bool:
        """Held unless the lock file was removed or replaced under us (a new file would let
        another process lock it while we still hold the old one)."""
        if self._fd is None:
            return False
        try:
            mine, current = os.fstat(self._fd), os.stat(self.path)
            same = (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)
        except OSError:
            same = False
        if not same:
            log.warning("scheduler election: lock file %s was removed or replaced", self.path)
            self.release()
        return same

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self.release()


def election_for(url: str | sa.URL, lock_file: str | os.PathLike[str]) -> Any:
    """The election that suits the database at ``url``.

    :raises ValueError: for a database other than PostgreSQL or SQLite.
    """
    backend = sa.make_url(url).get_backend_name()
    if backend == "postgresql":
        return AdvisoryLockElection(url)
    if backend == "sqlite":
        return FileLockElection(lock_file)
    raise ValueError(f"the scheduler cannot elect a leader on a {backend} database")
