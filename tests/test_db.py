"""Schema and database-layer guarantees: migrations equal the models on both databases,
times are UTC-aware, the audit log is append-only, constraints hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from labbook import audit
from labbook.audit import AuditEntry
from labbook.db import UTCDateTime, include_object, now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories
from tests.conftest import _create_pg_database, _drop_pg_database, _pg_admin_url, make_test_app


def test_migrations_produce_exactly_the_models_schema(backend):
    app = make_test_app(backend[1])
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_migrations_downgrade_and_upgrade_again(backend, tmp_path):
    name = None
    if backend[0] == "sqlite":
        url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    else:
        url, name = _create_pg_database(_pg_admin_url())
    app = make_test_app(url)
    try:
        with app.app_context():
            upgrade()
            downgrade(revision="base")
            assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade()
            assert "instruments" in sa.inspect(db.engine).get_table_names()
            db.engine.dispose()
    finally:
        if name:
            _drop_pg_database(_pg_admin_url(), name)


def test_customer_classes_seeded_by_migration(app):
    from labbook.billing.models import CustomerClass

    rates = {c.code: str(c.tax_rate) for c in db.session.scalars(sa.select(CustomerClass))}
    assert rates == {
        "internal": "0.0000",
        "external_academic": "0.0600",
        "startup": "0.0600",
        "industry": "0.0600",
    }


def test_utc_datetime_round_trips_as_aware_utc(app):
    user = factories.make_user()
    shanghai = timezone(timedelta(hours=8))
    user.last_login_at = datetime(2026, 3, 1, 9, 30, tzinfo=shanghai)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(type(user), user.id).last_login_at
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2026, 3, 1, 1, 30, tzinfo=timezone.utc)


def test_utc_datetime_refuses_naive_values():
    with pytest.raises(ValueError):
        UTCDateTime().process_bind_param(
            datetime(2026, 1, 1), sa.create_engine("sqlite://").dialect
        )


def test_now_utc_is_aware():
    assert now_utc().utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
    ],
)
def test_audit_log_is_append_only_in_the_database(app, statement):
    audit.record(None, "test.event", factories.make_user(), after={"x": 1})
    db.session.commit()
    with pytest.raises(sa.exc.DBAPIError):
        with db.session.begin_nested():
            db.session.execute(sa.text(statement))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) >= 1
    assert (
        db.session.scalar(sa.select(AuditEntry.action).where(AuditEntry.action == "forged")) is None
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"min_minutes": 20, "slot_minutes": 15},
        {"max_minutes": 10, "min_minutes": 15},
        {"status": "broken"},
        {"buffer_minutes": -5},
        {"user_weekly_quota_minutes": 0},
    ],
)
def test_instrument_policy_constraints_hold_in_the_database(app, changes):
    instrument = factories.make_instrument()
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        with db.session.begin_nested():
            db.session.execute(
                sa.update(Instrument).where(Instrument.id == instrument.id).values(**changes)
            )


def test_email_must_be_lowercase_in_the_database(app):
    with pytest.raises(sa.exc.IntegrityError):
        with db.session.begin_nested():
            factories.make_user(email="Upper@Example.org")


def test_one_default_account_per_team(app):
    team = factories.make_team()
    factories.make_account(team=team, is_default=True)
    with pytest.raises(sa.exc.IntegrityError):
        with db.session.begin_nested():
            factories.make_account(team=team, is_default=True)
