"""Serving a feed URL cheaply: the token lookup, and a cache of validators for the 304 path.

Knowing that a feed has not changed means reading every row it shows (its ETag is an
aggregate over them), a few milliseconds for thousands of events, against well under one
for the rest of a request. Calendar apps mostly ask "has it changed?", so the validators
are kept per feed, together with a *change marker* read in the same query as the token:
the newest audit-log id and the newest reservation id, both primary-key lookups. Every
change a feed can show goes through the services, which audit it (bookings, outages and
closures, instruments, facilities, users and their roles, teams), so an unchanged marker
means unchanged validators. Kept validators answer a conditional request only while the
marker, the day, the owner's locale and roles are the same and for at most
``VALIDATORS_TTL``: that bounds how long a change made outside the services (or an audit
row committed out of id order) could go unseen — less than the ``max-age`` clients already
cache the feed for. A 200 always carries validators computed from the data.

The cache is per process and only saves work: an empty or evicted cache means computing
again, never a wrong answer beyond the bound above.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from labbook.audit import AuditEntry
from labbook.auth.models import ROLE_VALUES, User, UserRole, hash_token
from labbook.bookings.models import Reservation
from labbook.extensions import db
from labbook.feeds import content
from labbook.feeds.models import CalendarFeed
from labbook.feeds.services import TOKEN_RE, still_allowed
from labbook.teams.models import Membership

VALIDATORS_TTL = timedelta(minutes=5)
CACHE_SIZE = 10_000
EXTENSION = "labbook_feed_validators"


ROLE_BITS = {role: 1 << n for n, role in enumerate(ROLE_VALUES)}


@dataclass(frozen=True)
class Lookup:
    """A servable feed, as plain values read with the token, and the change marker. The
    ORM feed (with its owner) is loaded only when the validators must be computed."""

    feed_id: int
    token_hash: str
    scope: str
    target_id: int
    locale: str
    roles: frozenset[str]
    marker: tuple[Any, ...]

    @property
    def stamp(self) -> tuple[Any, ...]:
        return (*self.marker, self.locale, tuple(sorted(self.roles)))

    @cached_property
    def feed(self) -> CalendarFeed:
        feed = db.session.get(CalendarFeed, self.feed_id, options=(
            joinedload(CalendarFeed.owner).joinedload(User.role_rows),))
        assert feed is not None
        return feed


F = CalendarFeed
_ROLES = sa.select(sa.func.coalesce(sa.func.sum(sa.case(
    *((UserRole.role == role, bit) for role, bit in ROLE_BITS.items()), else_=0)), 0)
).where(UserRole.user_id == F.owner_id).scalar_subquery()
_MEMBER = sa.exists().where(Membership.user_id == F.owner_id, Membership.team_id == F.target_id)
_LOOKUP = (
    sa.select(F.id, F.scope, F.target_id, F.owner_id, F.revoked_at, User.active, User.locale,
              _ROLES, _MEMBER,
              sa.select(sa.func.max(AuditEntry.id)).scalar_subquery(),
              sa.select(sa.func.max(Reservation.id)).scalar_subquery())
    .join(User, User.id == F.owner_id)
    .where(F.token_hash == sa.bindparam("token_hash"))
)


class _LookupConnections(threading.local):
    """One DBAPI connection per thread and engine, kept out of the pool and in autocommit
    mode, for the token lookup of every feed request: one round trip per lookup, with no
    pool check-out (and its pre-ping), no BEGIN and no rollback on return."""

    def __init__(self) -> None:
        self.by_engine: dict[int, Any] = {}

    def get(self, engine: sa.engine.Engine) -> Any:
        conn = self.by_engine.get(id(engine))
        if conn is None:
            fairy = engine.raw_connection()
            fairy.detach()  # ours now: the pool neither resets nor reuses it
            conn = fairy.dbapi_connection
            if engine.dialect.name == "postgresql":
                conn.autocommit = True
            self.by_engine[id(engine)] = conn
        return conn

    def drop(self, engine: sa.engine.Engine) -> None:
        conn = self.by_engine.pop(id(engine), None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass


_connections = _LookupConnections()


def _execute_on(engine: sa.engine.Engine, sql: str, arguments: Any) -> tuple | None:
    """On the thread's lookup connection; a connection that broke (server restart, idle
    timeout) is replaced once."""
    for attempt in (1, 2):
        try:
            cursor = _connections.get(engine).cursor()
            try:
                cursor.execute(sql, arguments)
                return cursor.fetchone()
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error:  # a real SQL error fails again below
            _connections.drop(engine)
            if attempt == 2:
                raise
    return None


def _read_one(stmt: sa.Select, params: dict[str, Any]) -> tuple | None:
    """Run a one-row read straight on a DBAPI connection, without a transaction of its
    own: the lookup of every feed request, so it skips what a read of one row by a unique
    key does not need (the session, the pool's pre-ping and reset, ``BEGIN IMMEDIATE`` on
    SQLite). Where the session is bound to one connection (the test suite's rolled-back
    transaction), on that connection."""
    # The session's own bind when it has one (the tests' connection), else the engine:
    # asking the session itself would create one for nothing.
    bind = db.session.session_factory.kw.get("bind") or db.engine
    compiled = _compiled(stmt, bind.dialect)
    values = compiled.construct_params(params)
    arguments: Any = ([values[name] for name in compiled.positiontup or ()]
                      if bind.dialect.positional else values)
    sql = compiled.string
    if isinstance(bind, sa.engine.Engine):
        return _execute_on(bind, sql, arguments)
    cursor = bind.connection.dbapi_connection.cursor()
    cursor.execute(sql, arguments)
    return cursor.fetchone()


@lru_cache(maxsize=8)
def _compiled(stmt: sa.Select, dialect: Any) -> Any:
    """The statement compiled for ``dialect`` (once per process and dialect)."""
    return stmt.compile(dialect=dialect)


def lookup(token: str) -> Lookup | None:
    """The feed a secret URL names, if it may still be served: known, not revoked, its
    owner active and still allowed to subscribe (judged at every fetch). One query reads
    it with its owner's locale, roles and team membership, and the change marker."""
    if not TOKEN_RE.fullmatch(token):
        return None
    token_hash = hash_token(token)
    row = _read_one(_LOOKUP, {"token_hash": token_hash})
    if row is None:
        return None
    feed_id, scope, target_id, owner_id, revoked_at, active, locale, mask, member = row[:9]
    roles = frozenset(role for role, bit in ROLE_BITS.items() if mask & bit)
    if revoked_at is not None or not active:
        return None
    if not still_allowed(scope, target_id, owner_id, roles, bool(member)):
        return None
    return Lookup(feed_id, token_hash, scope, target_id, locale, roles, (row[9], row[10]))


class ValidatorCache:
    """Validators per feed (keyed by token hash), least recently used dropped first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[tuple, datetime, content.Validators]] = (
            OrderedDict())
        self._lock = threading.Lock()

    def get(self, key: str, stamp: tuple, now: datetime) -> content.Validators | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            kept_stamp, kept_at, validators = entry
            if (kept_stamp != stamp or not kept_at <= now < kept_at + VALIDATORS_TTL
                    or validators.window.day != content.feed_window(now).day):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return validators

    def put(self, key: str, stamp: tuple, now: datetime,
            validators: content.Validators) -> None:
        with self._lock:
            self._entries[key] = (stamp, now, validators)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def _cache() -> ValidatorCache:
    cache = current_app.extensions.get(EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(EXTENSION, ValidatorCache())
    return cache


def kept_validators(found: Lookup, now: datetime) -> content.Validators | None:
    """Validators computed earlier whose inputs provably (up to the TTL) did not change."""
    return _cache().get(found.token_hash, found.stamp, now)


def fresh_validators(found: Lookup, now: datetime) -> content.Validators:
    """Validators computed from the data now (one aggregate query), kept for next time."""
    validators = content.validators(found.feed, now)
    _cache().put(found.token_hash, found.stamp, now, validators)
    return validators
