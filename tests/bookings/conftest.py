"""Fixtures for the concurrency and property tests: a FRESH, really committed database per
test module (STYLE, "Two notes for labbook").

The suite-wide ``app`` fixture wraps each test in a transaction that is rolled back. That is
useless for races: concurrent writers must each hold their own connection and commit, and
must see each other's commits. ``committed`` builds its own database instead, once per
module and backend (a new SQLite file, or a throw-away PostgreSQL database), migrates it with
the real migrations and drops it afterwards. Tests that use it must not assume an empty
database: each creates its own instrument and users and looks only at those.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from flask import Flask

from config import TestConfig
from labbook import create_app
from labbook.auth.services import create_token
from labbook.extensions import db
from tests import factories
from tests.conftest import (
    FreshGlobalsClient,
    _create_pg_database,
    _drop_pg_database,
    _migrate,
    _pg_admin_url,
    _pg_skip_reason,
)

T = TypeVar("T")
# Enough connections for every racing thread to hold one at once (the default pool of
# 5 + 10 overflow would quietly queue them in Python instead of in the database).
POOL_SIZE = 48
_names = itertools.count(1)


@dataclass
class Committed:
    """A migrated database of one backend and an app bound to it."""

    backend: str
    url: str
    app: Flask

    def run(self, work: Callable[[], T]) -> T:
        """Call ``work`` in a new app context (its own session) and commit what it did."""
        with self.app.app_context():
            try:
                result = work()
                db.session.commit()
                return result
            except BaseException:
                db.session.rollback()
                raise


def make_committed_app(url: str) -> Flask:
    """The app on ``url`` with a connection pool large enough for the race tests."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("sqlite:///:memory:") and url != "sqlite://":
        options.update(pool_size=POOL_SIZE, max_overflow=0, pool_timeout=60)

    class _Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        SQLALCHEMY_ENGINE_OPTIONS = options

    app = create_app(_Config)
    app.test_client_class = FreshGlobalsClient
    return app


def committed_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Committed]:
    """A fresh, migrated database on ``backend`` with real commits (no rolled-back
    transaction around the test), dropped afterwards. Skips the PostgreSQL half like the
    rest of the suite. For module-scoped fixtures: ``yield from committed_database(...)``."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("committed") / "labbook.sqlite3"
        url, name, base = f"sqlite:///{path}", None, None
    else:
        reason = _pg_skip_reason()
        if reason:
            pytest.skip(reason)
        base = _pg_admin_url()
        assert base is not None
        url, name = _create_pg_database(base)
    app = None
    try:
        _migrate(url)
        app = make_committed_app(url)
        yield Committed(backend, url, app)
    finally:
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        if name is not None and base is not None:
            _drop_pg_database(base, name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def committed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Committed]:
    """A fresh database per module and backend, with real commits."""
    yield from committed_database(request.param, tmp_path_factory)


@dataclass(frozen=True)
class Scene:
    """Ids of a committed instrument, its facility manager and qualified bookers."""

    instrument_id: int
    manager_id: int
    booker_ids: tuple[int, ...]
    account_ids: tuple[int, ...]
    tokens: tuple[str, ...] = ()


def build_scene(
    committed: Committed,
    bookers: int,
    *,
    level: str = "advanced",
    tokens: bool = False,
    **policy: Any,
) -> Scene:
    """Commit an instrument with ``policy`` (column values), a manager of its facility and
    ``bookers`` researchers, each in their own team with a default account and a
    qualification at ``level`` (advanced: staffed hours do not get in the way). With
    ``tokens`` each booker also gets an API token (the secrets are returned)."""

    def work() -> Scene:
        n = next(_names)
        facility = factories.make_facility(name=f"Race facility {n}")
        instrument = factories.make_instrument(facility, name=f"Race instrument {n}", **policy)
        manager = factories.make_user_with_role("facility_manager", facility=facility)
        ids, accounts, secrets = [], [], []
        for _ in range(bookers):
            user = factories.make_booker(instrument, level=level)
            ids.append(user.id)
            accounts.append(user.memberships[0].team.default_account.id)
            if tokens:
                secrets.append(create_token(user, "race")[1])
        return Scene(instrument.id, manager.id, tuple(ids), tuple(accounts), tuple(secrets))

    return committed.run(work)
