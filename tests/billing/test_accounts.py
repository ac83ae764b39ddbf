"""Spending limits at booking time (labbook/billing/accounts.py) and balance()."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from labbook.billing.accounts import balance
from labbook.bookings import services
from labbook.bookings.errors import BookingRefused
from labbook.bookings.models import Reservation
from labbook.db import now_utc
from labbook.extensions import db
from tests.api.bookings_helpers import body_for, count, error_of, make_scene
from tests.factories import make_booking, make_consumable, make_item, make_rate

ZONE = ZoneInfo("Asia/Shanghai")
D = Decimal


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    """The owner's team is external academic (6 % tax), SEM time 100.00/h. Committed on
    the owner's account: a completed 2 h session in October (200.00), 3 tips x 10.00
    (30.00) and a confirmed 1 h booking ahead (estimate 100.00) = 330.00, with tax
    349.80. Limit 500.00, so 150.20 remain."""
    scene = make_scene(api_token)
    account = scene.owner.memberships[0].team.default_account
    account.team.customer_class_code = "external_academic"
    account.spending_limit = D("500.00")
    make_rate(scene.instrument, "100.00", customer_class="external_academic")
    tips = make_consumable(scene.facility)
    make_rate(consumable=tips, amount="10.00", customer_class="external_academic")
    october = datetime(2026, 10, 5, 10, tzinfo=ZONE)
    make_booking(scene.instrument, scene.owner, start=october,
                 end=october + timedelta(hours=2), state="completed")
    make_item(account, "3", consumable=tips, occurred_at=october)
    scene.ahead = make_booking(scene.instrument, scene.owner,
                               start=scene.start + timedelta(days=1),
                               end=scene.start + timedelta(days=1, hours=1))
    # the other team's booking is not the owner's account's business
    make_booking(scene.instrument, scene.stranger, start=scene.start + timedelta(days=2),
                 end=scene.start + timedelta(days=2, hours=5))
    scene.account = account
    db.session.commit()
    return scene


def test_balance_figures(scene) -> None:  # type: ignore[no-untyped-def]
    figures = balance(scene.account)
    assert (figures.limit, figures.committed, figures.committed_with_tax, figures.remaining) \
        == (D("500.00"), D("330.00"), D("349.80"), D("150.20"))
    assert figures.tax_rate == D("0.06")
    assert figures.as_dict() == {"spending_limit": "500.00", "committed": "330.00",
                                 "committed_with_tax": "349.80", "remaining": "150.20"}
    scene.account.spending_limit = None
    assert balance(scene.account).remaining is None


def test_limit_through_the_service(scene) -> None:  # type: ignore[no-untyped-def]
    before = count(Reservation)
    start = scene.start + timedelta(hours=3)
    # 2 h = 200.00: (330.00 + 200.00) x 1.06 = 561.80 > 500.00
    with pytest.raises(BookingRefused) as raised:
        services.create_booking(scene.owner, scene.instrument, start,
                                start + timedelta(hours=2), now=now_utc())
    assert raised.value.rule == "spending_limit"
    assert "150.20" in raised.value.message and "212.00" in raised.value.message
    assert count(Reservation) == before
    # 1 h = 100.00: (330.00 + 100.00) x 1.06 = 455.80 <= 500.00
    booking = services.create_booking(scene.owner, scene.instrument, start,
                                      start + timedelta(hours=1), now=now_utc())
    assert booking.id is not None
    assert balance(scene.account).committed == D("430.00")


@pytest.mark.parametrize(("limit", "allowed"), [("455.79", False), ("455.80", True)])
def test_limit_includes_tax(scene, limit: str, allowed: bool) -> None:  # type: ignore
    scene.account.spending_limit = D(limit)  # 430.00 before tax, 455.80 with it
    start = scene.start + timedelta(hours=3)
    before = count(Reservation)
    if allowed:
        services.create_booking(scene.owner, scene.instrument, start,
                                start + timedelta(hours=1), now=now_utc())
        assert count(Reservation) == before + 1
    else:
        with pytest.raises(BookingRefused):
            services.create_booking(scene.owner, scene.instrument, start,
                                    start + timedelta(hours=1), now=now_utc())
        assert count(Reservation) == before


def test_limit_through_the_api(client, scene) -> None:  # type: ignore[no-untyped-def]
    before = count(Reservation)
    response = client.post("/api/v1/bookings", headers=scene.headers(scene.owner),
                           json=body_for(scene, scene.start + timedelta(hours=3), 120))
    error = error_of(response, 422, "validation")
    assert error["rule"] == "spending_limit" and "150.20" in error["message"]
    assert count(Reservation) == before
    response = client.post("/api/v1/bookings", headers=scene.headers(scene.owner),
                           json=body_for(scene, scene.start + timedelta(hours=3), 60))
    assert response.status_code == 201, response.get_json()


def test_reschedule_excludes_itself(scene) -> None:  # type: ignore[no-untyped-def]
    # 2 h instead of 1 h: (330.00 - 100.00 + 200.00) x 1.06 = 455.80 (counting itself
    # twice would be 561.80)
    scene.account.spending_limit = D("460.00")
    ahead = scene.ahead
    services.reschedule_booking(scene.owner, ahead, ahead.start_at,
                                ahead.start_at + timedelta(hours=2), now=now_utc())
    assert ahead.end_at - ahead.start_at == timedelta(hours=2)
    # 3 h: (230.00 + 300.00) x 1.06 = 561.80 > 460.00
    with pytest.raises(BookingRefused) as raised:
        services.reschedule_booking(scene.owner, ahead, ahead.start_at,
                                    ahead.start_at + timedelta(hours=3), now=now_utc())
    assert raised.value.rule == "spending_limit"
    assert ahead.end_at - ahead.start_at == timedelta(hours=2)


@pytest.mark.parametrize("problem", ["inactive", "expired", "unauthorised"])
def test_account_rules_still_apply(scene, problem: str) -> None:  # type: ignore
    account = scene.account
    if problem == "inactive":
        account.active = False
    elif problem == "expired":
        account.valid_until = scene.start.date() - timedelta(days=1)
    else:
        account.all_members = False
    db.session.flush()
    before = count(Reservation)
    start = scene.start + timedelta(hours=3)
    with pytest.raises(BookingRefused) as raised:
        services.create_booking(scene.owner, scene.instrument, start,
                                start + timedelta(hours=1), account_id=account.id,
                                now=now_utc())
    assert raised.value.rule == "account"
    assert count(Reservation) == before
