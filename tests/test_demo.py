"""The demo data loaded by ``flask seed-demo``: what a visitor of ``make run`` sees must be
complete and realistic (every field served, every customer class present, one login per
role with the right scope)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook import demo
from labbook.auth.models import User
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import (
    Facility,
    Instrument,
    Platform,
    ResearchField,
    instrument_fields,
)
from labbook.teams.models import Account, Team
from tests.conftest import login


@pytest.fixture
def seeded(runner):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    return result


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_seed_demo_creates_fields_platforms_and_facilities(seeded):
    fields = db.session.scalars(sa.select(ResearchField)).all()
    assert {f.name for f in fields} == {name for _, name, _ in demo.FIELDS}
    assert all(f.name_zh for f in fields)
    assert _count(Platform) == 4
    facilities = db.session.scalars(sa.select(Facility)).all()
    assert len(facilities) >= 6
    assert {f.platform.code for f in facilities} == {code for code, _, _ in demo.PLATFORMS}
    assert all(f.timezone == "Asia/Shanghai" and f.name_zh and f.location for f in facilities)
    assert any(h.weekday == 5 for f in facilities for h in f.opening_hours)


def test_seed_demo_creates_instruments_in_every_field(seeded):
    assert _count(Instrument) >= 40
    per_field = dict(db.session.execute(
        sa.select(ResearchField.name, sa.func.count(instrument_fields.c.instrument_id))
        .join(instrument_fields, instrument_fields.c.field_id == ResearchField.id)
        .group_by(ResearchField.name)
    ).all())
    assert set(per_field) == {name for _, name, _ in demo.FIELDS}
    assert min(per_field.values()) >= 5


def test_seed_demo_instruments_have_varied_policies(seeded):
    instruments = db.session.scalars(sa.select(Instrument)).all()
    assert any(i.requires_approval for i in instruments)
    assert any(not i.requires_approval for i in instruments)
    assert any(i.buffer_minutes > 0 for i in instruments)
    assert any(i.slot_minutes > 15 for i in instruments)
    assert any(i.user_weekly_quota_minutes for i in instruments)
    assert {"limited", "down"} <= {i.status for i in instruments}
    assert all(i.make and i.model and i.location for i in instruments)


def test_seed_demo_creates_teams_of_every_class_with_accounts(seeded):
    teams = db.session.scalars(sa.select(Team)).all()
    assert {t.customer_class_code for t in teams} == {
        "internal", "external_academic", "startup", "industry"}
    assert all(t.default_account is not None for t in teams)
    assert _count(Account) >= 2 * len(teams)


def test_seed_demo_users_can_log_in(seeded, app):
    for spec in demo.DEMO_USERS:
        client = app.test_client()
        response = login(client, spec.email, demo.DEMO_PASSWORD)
        assert response.status_code == 302, spec.email
        assert client.get("/").status_code == 200


def test_seed_demo_gives_each_user_their_role_and_scope(seeded):
    users = {u.email: u for u in db.session.scalars(sa.select(User))}
    for spec in demo.DEMO_USERS:
        assert users[spec.email].roles == set(spec.roles)
    home = db.session.scalar(sa.select(Team).where(Team.name == demo.HOME_TEAM))
    assert users["lead@example.org"].leads_team(home)
    assert not users["researcher@example.org"].leads_team(home)
    assert users["researcher@example.org"].can_see_team(home)
    assert home.customer_class_code == "internal"
    managed = users["manager@example.org"].managed_facilities
    assert sorted(f.code for f in managed) == sorted(demo.MANAGED_FACILITIES)


def test_seed_demo_prints_the_logins(seeded):
    assert demo.DEMO_PASSWORD in seeded.stdout
    for spec in demo.DEMO_USERS:
        assert spec.email in seeded.stdout


def test_seed_demo_gives_the_researcher_qualifications_and_next_week_bookings(runner):
    from labbook.bookings.models import Booking, Qualification

    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    researcher = db.session.scalar(sa.select(User).where(User.email == "researcher@example.org"))
    quals = db.session.scalars(sa.select(Qualification).where(
        Qualification.user_id == researcher.id)).all()
    assert len(quals) == 3
    bookings = db.session.scalars(sa.select(Booking)).all()
    assert {b.state for b in bookings} == {"confirmed", "pending"}  # the TEM needs approval
    assert all(b.start_at > now_utc() for b in bookings)
    before = len(bookings)
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == before


def test_seed_demo_notifies_in_app_but_queues_no_mail_to_fictitious_addresses(seeded):
    from labbook.notifications.models import Notification, OutboxMessage

    assert _count(Notification) > 0
    assert _count(OutboxMessage) == 0


def test_seed_demo_backs_down_and_limited_instruments_with_fault_reports(seeded):
    from labbook.care.models import FaultReport

    faults = db.session.scalars(sa.select(FaultReport)).all()
    assert sorted(f.severity for f in faults) == ["degraded", "down"]
    statuses = {f.severity: f.instrument.status for f in faults}
    assert statuses == {"down": "down", "degraded": "limited"}
    assert all(f.outage_id for f in faults if f.severity == "down")
