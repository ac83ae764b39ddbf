"""The kiosk service (labbook/care/kiosk.py): personal PINs, identification with its
rate limit and audit, kiosk links, what the screen shows, check-in/out at the kiosk and the
over-run rule of check-out."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.errors import BookingRefused
from labbook.bookings.usage import OVERRUN_REASON, check_out
from labbook.care import kiosk
from labbook.care.models import KioskToken
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
# Monday 2030-01-07 10:07 in Asia/Shanghai.
NOW = datetime(2030, 1, 7, 2, 7, tzinfo=UTC)
PIN = "4725"


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def scene(app):  # type: ignore[no-untyped-def]
    instrument = factories.make_instrument()
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    user = factories.make_booker(instrument, name="Ada Lovelace")
    kiosk.set_pin(user, PIN, PIN)
    link, secret = kiosk.create_link(manager, instrument, "Bench tablet")
    return instrument, manager, user, link, secret


def test_set_pin_hashes_and_audits_without_the_pin(app) -> None:
    user = factories.make_user()
    kiosk.set_pin(user, "80417", "80417")
    assert user.kiosk_pin_hash and "80417" not in user.kiosk_pin_hash
    entry = audits("user.kiosk_pin")[-1]
    assert entry.actor_id == user.id and entry.after == {"kiosk_pin": "set"}
    assert "80417" not in json.dumps([entry.before, entry.after])
    kiosk.set_pin(user, "55120", "55120")
    assert audits("user.kiosk_pin")[-1].after == {"kiosk_pin": "changed"}


@pytest.mark.parametrize(
    "pin, confirm, field",
    [("123", "123", "pin"), ("123456789", "123456789", "pin"), ("12a4", "12a4", "pin"),
     ("7777", "7777", "pin"), ("1234", "1234", "pin"), ("98765", "98765", "pin"),
     ("4725", "4726", "confirm"), ("", "", "pin")],
)
def test_set_pin_refuses_bad_pins(app, pin: str, confirm: str, field: str) -> None:
    user = factories.make_user()
    with pytest.raises(ValidationError) as caught:
        kiosk.set_pin(user, pin, confirm)
    assert field in caught.value.fields
    assert user.kiosk_pin_hash is None


def test_identify_with_email_and_pin(scene) -> None:  # type: ignore[no-untyped-def]
    _, _, user, link, _ = scene
    assert kiosk.identify(link, "  " + user.email.upper(), PIN) is user


@pytest.mark.parametrize("who", ["wrong_pin", "unknown_email", "no_pin", "inactive"])
def test_identify_refuses_with_one_generic_message_and_audits(scene, who: str) -> None:
    _, _, user, link, _ = scene
    email, pin = user.email, PIN
    if who == "wrong_pin":
        pin = "4726"
    elif who == "unknown_email":
        email = "nobody@example.org"
    elif who == "no_pin":
        email = factories.make_user().email
    else:
        user.active = False
    with pytest.raises(kiosk.PinRefused) as caught:
        kiosk.identify(link, email, pin)
    assert caught.value.message == "Email or PIN not recognised."
    entry = audits("kiosk.pin_failed")[-1]
    assert entry.object_type == "KioskToken" and entry.object_id == str(link.id)
    assert entry.after["email"] == email and entry.actor_id is None
    assert pin not in json.dumps(entry.after)


def test_identify_locks_the_email_after_five_failures(scene) -> None:  # type: ignore
    instrument, manager, user, link, _ = scene
    for _ in range(kiosk.MAX_FAILURES_PER_EMAIL):
        with pytest.raises(kiosk.PinRefused):
            kiosk.identify(link, user.email, "0815")
    with pytest.raises(kiosk.KioskLocked) as caught:
        kiosk.identify(link, user.email, PIN)  # even the right PIN, on any kiosk
    assert caught.value.status == 429
    other, _ = kiosk.create_link(manager, instrument, "")
    with pytest.raises(kiosk.KioskLocked):
        kiosk.identify(other, user.email, PIN)
    assert audits("kiosk.locked")
    # Another user is not locked out by someone else's failures.
    neighbour = factories.make_booker(instrument)
    kiosk.set_pin(neighbour, "2580", "2580")
    assert kiosk.identify(link, neighbour.email, "2580") is neighbour


def test_identify_locks_the_link_after_many_failures(scene) -> None:  # type: ignore
    _, _, user, link, _ = scene
    for n in range(kiosk.MAX_FAILURES_PER_LINK):
        with pytest.raises(kiosk.PinRefused):
            kiosk.identify(link, f"guess{n}@example.org", "0815")
    with pytest.raises(kiosk.KioskLocked):
        kiosk.identify(link, user.email, PIN)


def test_success_clears_the_email_failures(scene) -> None:  # type: ignore[no-untyped-def]
    _, _, user, link, _ = scene
    for _ in range(kiosk.MAX_FAILURES_PER_EMAIL - 1):
        with pytest.raises(kiosk.PinRefused):
            kiosk.identify(link, user.email, "0815")
    kiosk.identify(link, user.email, PIN)
    with pytest.raises(kiosk.PinRefused):
        kiosk.identify(link, user.email, "0815")
    assert kiosk.identify(link, user.email, PIN) is user


def test_create_link_stores_only_a_hash_and_find_link(scene) -> None:  # type: ignore
    _, manager, _, link, secret = scene
    assert len(secret) >= 43 and secret not in (link.token_hash, link.name)
    assert link.hint == secret[:6]
    assert kiosk.find_link(secret) is link
    assert kiosk.find_link(secret + "x") is None
    assert kiosk.find_link("") is None
    assert secret not in json.dumps(audits("kiosk.create")[-1].after)
    kiosk.revoke_link(manager, link, NOW)
    assert kiosk.find_link(secret) is None
    assert audits("kiosk.revoke")


def test_links_only_for_managers_of_the_facility(scene) -> None:  # type: ignore
    instrument, _, user, link, _ = scene
    outsider = factories.make_user_with_role("facility_manager")
    for actor in (user, outsider):
        with pytest.raises(Forbidden):
            kiosk.create_link(actor, instrument, "")
        with pytest.raises(Forbidden):
            kiosk.revoke_link(actor, link, NOW)
    admin = factories.make_user(roles=("admin",))
    assert kiosk.create_link(admin, instrument, "Admin's")[0].instrument_id == instrument.id
    assert db.session.scalar(sa.select(sa.func.count(KioskToken.id))) >= 2


def test_screen_shows_running_session_and_next_today(scene) -> None:  # type: ignore
    instrument, _, user, _, _ = scene
    running = factories.make_booking(instrument, user, start=NOW - timedelta(minutes=67),
                                     end=NOW - timedelta(minutes=7), state="in_use")
    later = factories.make_booking(instrument, factories.make_booker(instrument, name="张伟"),
                                   start=NOW + timedelta(minutes=53),
                                   end=NOW + timedelta(minutes=113))
    factories.make_booking(instrument, start=NOW + timedelta(days=1),
                           end=NOW + timedelta(days=1, hours=1))  # tomorrow: not shown
    factories.make_booking(instrument, start=NOW + timedelta(hours=2),
                           end=NOW + timedelta(hours=3), state="cancelled")
    shown = kiosk.screen(instrument, NOW)
    assert shown.current is running  # still running after its booked end
    assert shown.upcoming == [later]
    assert kiosk.who(running) == "Ada"
    assert kiosk.who(later) == "In use"  # a one-word name is not shown at all


def test_screen_free_when_nothing_holds_now(scene) -> None:  # type: ignore
    instrument = scene[0]
    factories.make_booking(instrument, start=NOW - timedelta(hours=2),
                           end=NOW - timedelta(hours=1), state="completed")
    assert kiosk.screen(instrument, NOW).current is None


def test_kiosk_check_in_window(app, scene) -> None:  # type: ignore[no-untyped-def]
    instrument, _, user, _, _ = scene
    booking = factories.make_booking(instrument, user, start=NOW + timedelta(minutes=53),
                                     end=NOW + timedelta(minutes=113))
    with pytest.raises(BookingRefused) as caught:
        kiosk.kiosk_check_in(user, instrument, NOW)
    assert caught.value.rule == "check_in_window" and booking.state == "confirmed"
    opens = booking.start_at - timedelta(minutes=app.config["LABBOOK_CHECKIN_EARLY_MINUTES"])
    assert kiosk.kiosk_check_in(user, instrument, opens) is booking
    assert booking.state == "in_use" and booking.checked_in_at == opens


def test_kiosk_check_in_needs_an_own_booking(scene) -> None:  # type: ignore
    instrument, _, user, _, _ = scene
    factories.make_booking(instrument, start=NOW, end=NOW + timedelta(hours=1))  # someone else's
    with pytest.raises(BookingRefused) as caught:
        kiosk.kiosk_check_in(user, instrument, NOW)
    assert caught.value.rule == "no_booking"


def test_kiosk_check_out_records_the_real_end(scene) -> None:  # type: ignore
    instrument, _, user, _, _ = scene
    booking = factories.make_booking(instrument, user, start=NOW - timedelta(minutes=30),
                                     end=NOW + timedelta(minutes=30), state="in_use")
    other = factories.make_booker(instrument)
    with pytest.raises(BookingRefused):
        kiosk.kiosk_check_out(other, instrument, NOW)
    assert kiosk.kiosk_check_out(user, instrument, NOW) is booking
    assert booking.state == "completed" and booking.checked_out_at == NOW
    assert booking.state_reason is None and kiosk.check_out_notice(booking) is None


def test_check_out_after_the_next_booking_started_says_so(scene) -> None:  # type: ignore
    instrument, _, user, _, _ = scene
    booking = factories.make_booking(instrument, user, start=NOW - timedelta(hours=2),
                                     end=NOW - timedelta(hours=1), state="in_use")
    nxt = factories.make_booking(instrument, start=NOW - timedelta(minutes=30),
                                 end=NOW + timedelta(minutes=30))
    check_out(user, booking, NOW)
    assert booking.checked_out_at == NOW  # the real end, for usage and billing
    assert booking.state_reason == OVERRUN_REASON
    notice = kiosk.check_out_notice(booking)
    assert notice and "ran over into the next booking" in notice
    assert nxt.start_at.astimezone(timezone(timedelta(hours=8))).strftime("%H:%M") in notice
    entry = audits("booking.completed")[-1]
    assert entry.after["reason"] == OVERRUN_REASON


def test_check_out_past_the_end_with_nothing_next_is_plain(scene) -> None:  # type: ignore
    instrument, _, user, _, _ = scene
    booking = factories.make_booking(instrument, user, start=NOW - timedelta(hours=2),
                                     end=NOW - timedelta(hours=1), state="in_use")
    factories.make_booking(instrument, start=NOW + timedelta(minutes=30),
                           end=NOW + timedelta(minutes=90))  # not started yet
    check_out(user, booking, NOW)
    assert booking.state_reason is None and kiosk.check_out_notice(booking) is None
