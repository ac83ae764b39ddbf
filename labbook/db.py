"""Database layer: declarative base, naming convention, the UTC datetime type and
per-dialect connection settings.

Times are stored in UTC. ``UTCDateTime`` refuses naive datetimes on the way in and always
returns aware UTC datetimes on the way out, on SQLite (which has no time zone type) as on
PostgreSQL (``timestamptz``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def now_utc() -> datetime:
    """The current time, timezone-aware in UTC. Used as a callable column default."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    :raises ValueError: when a naive datetime is bound, which would be ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given where a timezone-aware one is required")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite settings for every connection: foreign keys, WAL, a busy timeout, and the
    driver's own transaction handling switched off (``isolation_level = None``) so that
    SQLAlchemy's ``begin`` hook below decides how transactions start. This is the recipe
    from SQLAlchemy's SQLite dialect documentation; it also makes SAVEPOINT work."""
    if not _is_sqlite(dbapi_connection):
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
    if mode not in ("memory", "wal"):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(conn: Any) -> None:
    """Start every SQLite transaction with ``BEGIN IMMEDIATE``: it takes the write lock up
    front, so a check-then-insert inside one transaction cannot interleave with another
    writer (the database, not Python, serializes them). Readers in WAL mode are not
    blocked by it."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: exclusion constraints (named ``ex_*``) are written by hand in the
    migrations; autogenerate cannot model them, so it must not try to drop their index."""
    return not (type_ == "index" and name is not None and name.startswith("ex_"))


T = TypeVar("T")
# serialization failure, deadlock detected, exclusion violation (see run_with_retry)
RETRY_SQLSTATES = {"40001", "40P01", "23P01"}
MAX_ATTEMPTS = 4  # the first try and up to three retries


def run_with_retry(unit: Callable[[], T], attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``unit`` and commit. When PostgreSQL aborts the transaction as the victim of a
    deadlock or a serialization race (SQLSTATE 40P01/40001), nothing is wrong with the
    request: roll back and run the whole unit again, on fresh data (so the unit must load
    what it needs itself). The same for an exclusion violation (23P01): the booking
    engine's overlap check runs under the instrument lock, so the constraint only fires
    against a writer that skipped the lock, and on the next run the check sees that
    writer's row and refuses with a proper conflict answer. Any other error propagates at
    once, uncommitted.

    :raises sqlalchemy.exc.DBAPIError: after the last attempt, or for other database errors.
    """
    for attempt in range(1, attempts + 1):
        try:
            result = unit()
            _session().commit()
            return result
        except sa.exc.DBAPIError as error:
            _session().rollback()
            if getattr(error.orig, "sqlstate", None) not in RETRY_SQLSTATES or attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _session() -> Any:
    from labbook.extensions import db  # labbook.extensions imports this module

    return db.session
