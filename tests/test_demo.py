"""The demo data loaded by ``flask seed-demo``: what a visitor of ``make run`` sees must be
complete and realistic (every field served, every customer class present, one login per
role with the right scope)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook import demo, demo_bookings, demo_catalog
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
    assert {f.name for f in fields} == {name for _, name, _ in demo_catalog.FIELDS}
    assert all(f.name_zh for f in fields)
    assert _count(Platform) == 4
    facilities = db.session.scalars(sa.select(Facility)).all()
    assert len(facilities) >= 6
    assert {f.platform.code for f in facilities} == {code for code, _, _ in demo_catalog.PLATFORMS}
    assert all(f.timezone == "Asia/Shanghai" and f.name_zh and f.location for f in facilities)
    assert any(h.weekday == 5 for f in facilities for h in f.opening_hours)


def test_seed_demo_creates_instruments_in_every_field(seeded):
    assert _count(Instrument) >= 40
    per_field = dict(db.session.execute(
        sa.select(ResearchField.name, sa.func.count(instrument_fields.c.instrument_id))
        .join(instrument_fields, instrument_fields.c.field_id == ResearchField.id)
        .group_by(ResearchField.name)
    ).all())
    assert set(per_field) == {name for _, name, _ in demo_catalog.FIELDS}
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
    # The billing demo adds settled sessions in past months; next week's are these.
    bookings = db.session.scalars(sa.select(Booking).where(Booking.start_at > now_utc())).all()
    assert {b.state for b in bookings} == {"confirmed", "pending"}  # the TEM needs approval
    assert len(bookings) == len(demo_bookings.BOOKINGS)
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Booking))
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == before


def test_seed_demo_notifies_in_app_but_queues_no_mail_to_fictitious_addresses(seeded):
    from labbook.notifications.models import Notification, OutboxMessage

    assert _count(Notification) > 0
    assert _count(OutboxMessage) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.mail_pending == sa.true())) == 0


def test_seed_demo_backs_down_and_limited_instruments_with_fault_reports(seeded):
    from labbook.care.models import FaultReport

    faults = db.session.scalars(sa.select(FaultReport)).all()
    assert sorted(f.severity for f in faults) == ["degraded", "down"]
    statuses = {f.severity: f.instrument.status for f in faults}
    assert statuses == {"down": "down", "degraded": "limited"}
    assert all(f.outage_id for f in faults if f.severity == "down")


# -- billing ---------------------------------------------------------------------------------


def _months_ago(n: int):  # type: ignore[no-untyped-def]
    from labbook.billing.periods import current_month, previous_month

    month = current_month()
    for _ in range(n):
        month = previous_month(month)
    return month


def test_seed_demo_gives_every_instrument_a_billing_policy_and_a_rate_per_class(seeded):
    from labbook.billing.models import BillingPolicy, CustomerClass, Rate

    instruments = db.session.scalars(sa.select(Instrument)).all()
    policies = {p.instrument_id: p for p in db.session.scalars(sa.select(BillingPolicy))}
    assert set(policies) == {i.id for i in instruments}
    assert {p.basis for p in policies.values()} == {"booked", "actual", "max"}
    assert {15, 30, 60} <= {p.increment_minutes for p in policies.values()}
    assert any(p.minimum_minutes > 0 for p in policies.values())
    capped = [p for p in policies.values() if p.cap_max_minutes]
    assert [(f"{p.cap_from:%H:%M}", f"{p.cap_to:%H:%M}", p.cap_max_minutes) for p in capped] == [
        ("18:00", "08:00", 480)]
    assert len({p.late_cancel_fraction for p in policies.values()}) > 1
    classes = set(db.session.scalars(sa.select(CustomerClass.code)))
    published = db.session.execute(sa.select(
        Rate.instrument_id, Rate.customer_class_code).where(
        Rate.charge_type == "instrument_hour", Rate.published_at.is_not(None))).all()
    assert set(published) == {(i.id, c) for i in instruments for c in classes}
    types = set(db.session.scalars(sa.select(Rate.charge_type)))
    assert {"instrument_hour", "assisted_hour", "session", "unit"} <= types


def test_seed_demo_prices_internal_cheapest_and_industry_dearest(seeded):
    from labbook.billing.models import Rate

    rows = db.session.scalars(sa.select(Rate).where(
        Rate.charge_type == "instrument_hour", Rate.published_at.is_not(None))).all()
    first = min(r.effective_from for r in rows)
    card: dict[int, dict[str, object]] = {}
    for rate in rows:
        if rate.effective_from == first:
            card.setdefault(rate.instrument_id, {})[rate.customer_class_code] = rate.amount
    assert card and all(
        prices["internal"] < prices["external_academic"] < prices["industry"]
        for prices in card.values())


def test_seed_demo_changes_a_rate_this_month_and_drafts_one_for_next(seeded):
    from labbook.billing.models import Rate
    from labbook.billing.periods import current_month, next_month

    this_month = db.session.scalars(sa.select(Rate).where(
        Rate.effective_from == current_month())).all()
    assert this_month and all(r.published_at is not None for r in this_month)
    drafts = db.session.scalars(sa.select(Rate).where(Rate.published_at.is_(None))).all()
    assert drafts
    assert {r.effective_from for r in drafts} == {next_month(current_month())}


def test_seed_demo_gives_external_teams_invoice_details(seeded):
    teams = db.session.scalars(sa.select(Team).where(
        Team.customer_class_code != "internal")).all()
    assert len(teams) >= 4
    assert all(t.invoice_title and t.tax_id for t in teams)
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in t.invoice_title) for t in teams)


def test_seed_demo_sells_consumables(seeded):
    from labbook.billing.models import Consumable, Rate, UsageItem

    consumables = db.session.scalars(sa.select(Consumable)).all()
    assert 3 <= len(consumables) <= 4
    priced = set(db.session.scalars(sa.select(Rate.consumable_id).where(
        Rate.charge_type == "unit")))
    assert priced == {c.id for c in consumables}
    assert _count(UsageItem) >= 3


def test_seed_demo_closes_the_month_before_last_with_numbered_statements(seeded):
    from labbook.billing.models import ChargeLine, Statement
    from labbook.billing.periods import find_period

    period = find_period(_months_ago(2))
    assert period is not None and period.is_closed
    statements = db.session.scalars(sa.select(Statement).where(
        Statement.period_id == period.id).order_by(Statement.number)).all()
    assert [s.number for s in statements] == list(range(1, len(statements) + 1))
    assert len(statements) >= 3
    assert all(s.total == s.subtotal + s.tax for s in statements)
    assert any(s.tax > 0 for s in statements)
    lines = db.session.scalars(sa.select(ChargeLine).where(
        ChargeLine.period_id == period.id)).all()
    assert lines and all(line.statement_id is not None for line in lines)
    assert not any(line.missing_rate for line in lines)


def test_seed_demo_refreshes_last_month_and_leaves_a_credit_pending(seeded):
    from labbook.billing.models import Adjustment, ChargeLine
    from labbook.billing.periods import find_period
    from labbook.billing.statements import refresh_period, statements_for

    month = _months_ago(1)
    period = find_period(month)
    assert period is not None and not period.is_closed and period.refreshed_at
    kinds = set(db.session.scalars(sa.select(ChargeLine.kind).where(
        ChargeLine.period_id == period.id)))
    assert {"time", "session", "unit", "no_show", "late_cancel"} <= kinds
    assert refresh_period(month).changed == 0
    assert len(statements_for(period)) >= 4
    pending = db.session.scalars(sa.select(Adjustment)).all()
    assert [a.state for a in pending] == ["pending"]
    assert pending[0].amount < 0 and pending[0].line.period_id == period.id


def test_seed_demo_twice_adds_no_billing_rows(seeded, runner):
    from labbook.billing.models import (
        Adjustment, BillingPolicy, ChargeLine, Consumable, Rate, Statement, UsageItem,
    )

    models = (Rate, BillingPolicy, Consumable, UsageItem, ChargeLine, Statement, Adjustment)
    before = [_count(model) for model in models]
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "nothing to add" in result.output
    assert [_count(model) for model in models] == before
