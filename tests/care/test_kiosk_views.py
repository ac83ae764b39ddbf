"""Kiosk pages over HTTP: the PIN page, kiosk links (managers only), the public kiosk
screen (404 for unknown or revoked links), its actions with email + PIN (CSRF, generic
refusal, rate limit, audit) and the web walk-in page."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.models import Booking
from labbook.care import kiosk
from labbook.care.models import KioskToken
from labbook.db import now_utc
from labbook.extensions import db
from tests import factories
from tests.conftest import csrf_token

PIN = "4725"


@pytest.fixture
def instrument(app):  # type: ignore[no-untyped-def]
    """An instrument in a facility without opening hours (always staffed), so walk-ins
    work whatever the time of day the tests run."""
    facility = factories.make_facility()
    facility.opening_hours = []
    db.session.flush()
    return factories.make_instrument(facility, name="Zeiss Sigma", min_minutes=30)


@pytest.fixture
def user(instrument):  # type: ignore[no-untyped-def]
    user = factories.make_booker(instrument, name="Ada Lovelace")
    kiosk.set_pin(user, PIN, PIN)
    db.session.commit()
    return user


@pytest.fixture
def secret(instrument):  # type: ignore[no-untyped-def]
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    _, secret = kiosk.create_link(manager, instrument, "Tablet")
    db.session.commit()
    return secret


def act(client, secret: str, action: str, email: str, pin: str, **extra):  # type: ignore
    path = f"/kiosk/{secret}/{action}"
    data = {"csrf_token": csrf_token(client, path), "email": email, "pin": pin, **extra}
    return client.post(path, data=data)


# -- PIN page -------------------------------------------------------------------------------


def test_pin_page_sets_the_pin(client, login_as) -> None:  # type: ignore[no-untyped-def]
    me = login_as("researcher")
    assert client.get("/profile/kiosk-pin").status_code == 200
    token = csrf_token(client, "/profile/kiosk-pin")
    response = client.post("/profile/kiosk-pin",
                           data={"csrf_token": token, "pin": "80417", "confirm": "80417"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/profile")
    assert me.kiosk_pin_hash


def test_pin_page_refuses_a_bad_pin(client, login_as) -> None:  # type: ignore[no-untyped-def]
    me = login_as("researcher")
    token = csrf_token(client, "/profile/kiosk-pin")
    response = client.post("/profile/kiosk-pin",
                           data={"csrf_token": token, "pin": "80417", "confirm": "80418"})
    assert response.status_code == 422 and "The two PINs differ." in response.text
    assert me.kiosk_pin_hash is None


def test_pin_page_needs_csrf_and_login(client, login_as) -> None:  # type: ignore
    assert client.get("/profile/kiosk-pin").status_code == 302  # to the login page
    me = login_as("researcher")
    response = client.post("/profile/kiosk-pin", data={"pin": "80417", "confirm": "80417"})
    assert response.status_code == 400 and me.kiosk_pin_hash is None


# -- kiosk links ----------------------------------------------------------------------------


def test_manager_creates_a_link_shown_once(client, login_as, instrument) -> None:  # type: ignore
    login_as("facility_manager", facility=instrument.facility)
    path = f"/instruments/{instrument.id}/kiosk-links"
    response = client.post(path, data={"csrf_token": csrf_token(client, path), "name": "Bench"})
    assert response.status_code == 201
    url = re.search(r'id="kiosk-url">([^<]+)<', response.text).group(1)
    secret = url.rsplit("/kiosk/", 1)[1]
    link = kiosk.find_link(secret)
    assert link is not None and link.name == "Bench" and link.token_hash != secret
    listing = client.get(path).text
    assert "Bench" in listing and secret not in listing
    assert client.get(f"/kiosk/{secret}").status_code == 200


@pytest.mark.parametrize("role", ["researcher", "facility_manager", "finance", "team_lead"])
def test_links_forbidden_to_others(client, login_as, instrument, role) -> None:  # type: ignore
    login_as(role)  # a facility manager of another facility
    assert client.get(f"/instruments/{instrument.id}/kiosk-links").status_code == 403


def test_revoked_and_unknown_links_are_404(  # type: ignore[no-untyped-def]
    client, login_as, instrument, secret
) -> None:
    assert client.get(f"/kiosk/{secret}").status_code == 200
    assert client.get(f"/kiosk/{secret[:-1]}").status_code == 404
    assert client.get("/kiosk/nope").status_code == 404
    assert client.get(f"/kiosk/{secret}/walk-in").status_code == 200
    assert client.get(f"/kiosk/{secret}/explode").status_code == 404
    login_as("facility_manager", facility=instrument.facility)
    link = kiosk.find_link(secret)
    path = f"/instruments/{instrument.id}/kiosk-links"
    token = csrf_token(client, path)
    response = client.post(f"{path}/{link.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get(f"/kiosk/{secret}").status_code == 404
    assert client.get(f"/kiosk/{secret}/check-in").status_code == 404


# -- the kiosk ------------------------------------------------------------------------------


def test_kiosk_screen_is_public_and_shows_now(  # type: ignore[no-untyped-def]
    client, instrument, user, secret
) -> None:
    response = client.get(f"/kiosk/{secret}")
    assert response.status_code == 200 and "Zeiss Sigma" in response.text
    assert 'id="kiosk-state">Free<' in response.text and response.headers["Refresh"] == "60"
    assert "kiosk-walk-in" in response.text
    factories.make_booking(instrument, user, start=now_utc() - timedelta(minutes=20),
                           end=now_utc() + timedelta(minutes=40), state="in_use")
    db.session.commit()
    page = client.get(f"/kiosk/{secret}").text
    assert 'id="kiosk-state">In use<' in page and "Ada" in page and "Lovelace" not in page
    assert "kiosk-walk-in" not in page


def test_kiosk_walk_in_then_check_out(client, instrument, user, secret) -> None:  # type: ignore
    response = act(client, secret, "walk-in", user.email, PIN, minutes="60")
    assert response.status_code == 200 and "Walk-in started" in response.text
    assert response.headers["Refresh"].endswith(f"url=/kiosk/{secret}")
    booking = db.session.scalar(sa.select(Booking).where(Booking.user_id == user.id))
    assert booking.walk_in and booking.state == "in_use"
    assert (booking.end_at - booking.start_at) >= timedelta(minutes=60)
    response = act(client, secret, "check-out", user.email, PIN)
    assert response.status_code == 200 and "Checked out" in response.text
    db.session.refresh(booking)
    assert booking.state == "completed" and booking.checked_out_at is not None
    # Nobody was logged in on the kiosk.
    assert client.get("/profile/kiosk-pin").status_code == 302


def test_kiosk_check_in_window(client, instrument, user, secret) -> None:  # type: ignore
    booking = factories.make_booking(instrument, user, start=now_utc() + timedelta(hours=2),
                                     end=now_utc() + timedelta(hours=3))
    db.session.commit()
    response = act(client, secret, "check-in", user.email, PIN)
    assert response.status_code == 422 and "Check-in opens" in response.text
    booking.start_at = now_utc() + timedelta(minutes=5)
    db.session.commit()
    response = act(client, secret, "check-in", user.email, PIN)
    assert response.status_code == 200 and "Checked in" in response.text
    db.session.refresh(booking)
    assert booking.state == "in_use"


def test_kiosk_wrong_pin_refused_audited_and_rate_limited(  # type: ignore[no-untyped-def]
    client, user, secret
) -> None:
    for _ in range(kiosk.MAX_FAILURES_PER_EMAIL):
        response = act(client, secret, "walk-in", user.email, "0815")
        assert response.status_code == 422
        assert "Email or PIN not recognised." in response.text
    failed = db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "kiosk.pin_failed")).all()
    assert len(failed) == kiosk.MAX_FAILURES_PER_EMAIL
    response = act(client, secret, "walk-in", user.email, PIN)
    assert response.status_code == 429
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))
                             .where(Booking.user_id == user.id)) == 0


def test_kiosk_unknown_email_gets_the_same_answer(client, secret) -> None:  # type: ignore
    response = act(client, secret, "check-in", "nobody@example.org", PIN)
    assert response.status_code == 422 and "Email or PIN not recognised." in response.text


def test_kiosk_action_needs_csrf(client, user, secret) -> None:  # type: ignore
    response = client.post(f"/kiosk/{secret}/walk-in",
                           data={"email": user.email, "pin": PIN, "minutes": "60"})
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))
                             .where(Booking.user_id == user.id)) == 0


def test_kiosk_token_is_not_in_the_database(secret) -> None:  # type: ignore
    assert db.session.scalar(sa.select(KioskToken).where(KioskToken.token_hash == secret)) is None


# -- web walk-in ----------------------------------------------------------------------------


def test_web_walk_in_starts_a_session(client, instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    db.session.commit()
    from tests.conftest import login

    assert login(client, user.email).status_code == 302
    path = f"/instruments/{instrument.id}/walk-in"
    assert client.get(path).status_code == 200
    account = user.memberships[0].team.default_account
    response = client.post(path, data={"csrf_token": csrf_token(client, path), "minutes": "30",
                                       "account_id": str(account.id), "purpose": "Quick look"})
    assert response.status_code == 302 and "/bookings/" in response.headers["Location"]
    booking = db.session.scalar(sa.select(Booking).where(Booking.user_id == user.id))
    assert booking.walk_in and booking.state == "in_use" and booking.purpose == "Quick look"


def test_web_walk_in_refused_when_unqualified(client, login_as, instrument) -> None:  # type: ignore
    me = login_as("researcher")
    factories.make_account(team=me.memberships[0].team, is_default=True)
    db.session.commit()
    path = f"/instruments/{instrument.id}/walk-in"
    account = me.memberships[0].team.default_account
    response = client.post(path, data={"csrf_token": csrf_token(client, path), "minutes": "30",
                                       "account_id": str(account.id)})
    assert response.status_code == 403 and "not qualified" in response.text
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))
                             .where(Booking.user_id == me.id)) == 0
