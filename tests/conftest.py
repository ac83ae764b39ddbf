"""Test fixtures (STYLE: app, client, runner, login_as).

Every database test runs twice: on SQLite and on PostgreSQL. The PostgreSQL half needs
``LABBOOK_TEST_DATABASE_URL`` (``.ci/run`` sets it when a server answers); without it, or
when the server does not answer, that half is skipped with a message saying why.

The schema is built by running the real migrations once per backend per session, into a
fresh database. Each test then runs inside a transaction that is rolled back; the session
joins it with SAVEPOINTs, so commits and IntegrityErrors in the code under test behave as
in production.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import orm as sa_orm

from config import TestConfig
from labbook import create_app
from labbook.auth.throttle import MemoryCounter
from labbook.extensions import db
from tests import factories

PG_ENV = "LABBOOK_TEST_DATABASE_URL"


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _create_pg_database(base_url: str) -> tuple[str, str]:
    """Create a throw-away database on the server named by ``base_url``."""
    url = sa.engine.make_url(base_url)
    name = f"labbook_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(base_url: str, name: str) -> None:
    admin = sa.create_engine(sa.engine.make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _pg_skip_reason() -> str | None:
    base = _pg_admin_url()
    if not base:
        return (
            f"PostgreSQL half skipped: set {PG_ENV} (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run it"
        )
    try:
        engine = sa.create_engine(base, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"PostgreSQL half skipped: no server answers at {PG_ENV} ({first})"
    return None


class FreshGlobalsClient(FlaskClient):
    """Each request starts with an empty ``g``, as in production.

    The ``app`` fixture keeps one app context pushed for the whole test (the rolled-back
    session lives in it) and Flask reuses a pushed context for requests, so without this
    Flask-Login's user, Flask-WTF's CSRF token and Flask-Babel's locale would leak from one
    request (or one client) to the next.
    """

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if has_app_context():
            g.__dict__.clear()
        return super().open(*args, **kwargs)


def make_test_app(url: str, **overrides: object) -> Flask:
    class _Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = url

    app = create_app(_Config)
    app.config.update(overrides)
    app.test_client_class = FreshGlobalsClient
    return app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(backend name, database URL) of a freshly migrated database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "labbook.sqlite3"
        url = f"sqlite:///{path}"
        _migrate(url)
        yield "sqlite", url
        return
    reason = _pg_skip_reason()
    if reason:
        pytest.skip(reason)
    base = _pg_admin_url()
    assert base is not None
    url, name = _create_pg_database(base)
    _migrate(url)
    yield "postgresql", url
    db_engine_dispose(url)
    _drop_pg_database(base, name)


_apps: dict[str, Flask] = {}


def db_engine_dispose(url: str) -> None:
    app = _apps.pop(url, None)
    if app is not None:
        with app.app_context():
            db.engine.dispose()


def _migrate(url: str) -> None:
    app = make_test_app(url)
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture
def app(backend: tuple[str, str]) -> Iterator[Flask]:
    """The application, with every test inside a rolled-back transaction."""
    _, url = backend
    application = _apps.get(url)
    if application is None:
        application = _apps[url] = make_test_app(url)
    application.extensions["labbook_login_throttle"].counter = MemoryCounter()
    with application.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        original = db.session
        factory = sa_orm.sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        db.session = sa_orm.scoped_session(factory, scopefunc=original.registry.scopefunc)
        try:
            yield application
        finally:
            db.session.remove()
            db.session = original
            transaction.rollback()
            connection.close()


@pytest.fixture
def backend_name(backend: tuple[str, str]) -> str:
    return backend[0]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Say once, clearly, why tests were skipped (instead of one line per test)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"SKIPPED {count} test(s): {reason}", yellow=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """Fetch a page and return its CSRF token, as a browser would have it."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no csrf token on {path}"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = factories.PASSWORD):  # type: ignore

    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def login_as(app: Flask, client: FlaskClient):  # type: ignore[no-untyped-def]
    """``login_as("facility_manager")`` creates a user with that role (scoped to a new
    facility or team where the role is scoped), logs the client in and returns the user."""

    def _login_as(role: str | None = "researcher", **kwargs):  # type: ignore[no-untyped-def]
        user = factories.make_user_with_role(role, **kwargs)
        db.session.commit()
        response = login(client, user.email)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return user

    return _login_as


@pytest.fixture
def api_token(app: Flask):  # type: ignore[no-untyped-def]
    """``api_token(user)`` returns headers carrying a fresh bearer token for ``user``."""
    from labbook.auth.services import create_token

    def _headers(user):  # type: ignore[no-untyped-def]
        _, secret = create_token(user, "tests")
        db.session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return _headers


@pytest.fixture
def smtp_sink(app: Flask):  # type: ignore[no-untyped-def]
    """A real SMTP server on 127.0.0.1 that the app's mail goes to; ``.received()``
    lists the messages it accepted, ``.stop()``/``.start()`` take it down and up."""
    from tests.smtp import SmtpSink

    sink = SmtpSink().start()
    app.config.update(
        LABBOOK_SMTP_HOST=sink.host, LABBOOK_SMTP_PORT=sink.port, LABBOOK_SMTP_STARTTLS=False,
        LABBOOK_SMTP_USER=None, LABBOOK_SMTP_PASSWORD=None, LABBOOK_SMTP_TIMEOUT=5,
    )
    yield sink
    sink.stop()
