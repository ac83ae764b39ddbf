"""A small billing scene for the JSON API tests: one instrument priced 100.00 an hour
(internal), a team with a lead, a researcher and a default account, and a completed
two-hour session on 2026-10-05 (a 200.00 line once the period is refreshed)."""
from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.billing.models import (
    Adjustment, BillingPeriod, ChargeLine, Consumable, CustomerClass, Rate, Statement, UsageItem,
)
from labbook.extensions import db
from tests import factories

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER = date(2026, 10, 1)


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE)


def build_scene(api_token):  # type: ignore[no-untyped-def]
    """The scene, committed; ``headers[role]`` are bearer headers of its users."""
    instrument = factories.make_instrument()
    rate = factories.make_rate(instrument, "100.00")
    researcher = factories.make_booker(instrument)
    team = researcher.memberships[0].team
    account = team.default_account
    lead = factories.make_user_with_role("team_lead", team=team)
    booking = factories.make_booking(
        instrument, researcher, start=local(10, 5, 10), end=local(10, 5, 12),
        state="completed", checked_in_at=local(10, 5, 10), checked_out_at=local(10, 5, 12))
    other_researcher = factories.make_booker(instrument)
    other_team = other_researcher.memberships[0].team
    factories.make_booking(
        instrument, other_researcher, start=local(10, 7, 9), end=local(10, 7, 10),
        state="completed", checked_in_at=local(10, 7, 9), checked_out_at=local(10, 7, 10))
    other_lead = factories.make_user_with_role("team_lead", team=other_team)
    users = {
        "researcher": researcher, "team_lead": lead, "other_lead": other_lead,
        "facility_manager": factories.make_user_with_role(
            "facility_manager", facility=instrument.facility),
        "other_manager": factories.make_user_with_role("facility_manager"),
        "finance": factories.make_user(roles=("finance",)),
        "finance2": factories.make_user(roles=("finance",)),
        "admin": factories.make_user(roles=("admin",)),
    }
    db.session.commit()
    headers = {role: api_token(user) for role, user in users.items()}
    return SimpleNamespace(instrument=instrument, rate=rate, team=team, account=account,
                           other_team=other_team, booking=booking, users=users,
                           headers=headers)


ROLES = ("researcher", "team_lead", "facility_manager", "other_manager", "finance", "admin")


def counts() -> dict[str, Any]:
    """Row counts of everything billing writes (and the audit log): equal before and after
    a refused request means nothing was written."""
    db.session.rollback()
    models = (AuditEntry, Adjustment, BillingPeriod, ChargeLine, Consumable, CustomerClass, Rate,
              Statement, UsageItem)
    return {m.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(m))
            for m in models}


def assert_422(response, *fields: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation"
    for name in fields:
        assert name in error["fields"], error
    return error
