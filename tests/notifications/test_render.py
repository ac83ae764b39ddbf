"""render: every kind has a title and a mail (text + HTML) in the recipient's language,
tolerant of missing parameters, escaped, linked back, with the .ics where it belongs."""

from __future__ import annotations

import pytest
from flask_babel import force_locale
from icalendar import Calendar

from labbook.bookings.notices import booking_params
from labbook.extensions import db
from labbook.feeds.ics import reservation_uid
from labbook.notifications import render
from labbook.notifications.kinds import KINDS, carries_ics
from labbook.notifications.models import Notification
from labbook.notifications.services import notify
from tests.factories import make_booking, make_instrument, make_user

EXTRA = {"offset_minutes": 1440, "offer_expires": "2030-01-07 09:30", "count": 3,
         "expires": "2030-02-01", "user": "Ada", "severity": "high",
         "description": "Beam unstable"}


def _note(kind: str, params: object, reservation_id: int | None = None) -> Notification:
    note = Notification(user_id=None, kind=kind, params=params, reservation_id=reservation_id)
    note.created_at = None  # type: ignore[assignment]
    return note


BOOKING_RELATED = sorted(kind for kind in KINDS if kind != "statements_ready")


@pytest.mark.parametrize("kind", BOOKING_RELATED)
def test_render_every_kind_with_booking_params(app, kind):
    booking = make_booking(purpose="imaging")
    user = make_user(locale="en")
    note = notify(user, kind, reservation=booking, params=booking_params(booking, **EXTRA))
    mail = render.render_mail(user, note, booking)
    assert booking.instrument.name in mail.subject
    assert "\n" not in mail.subject
    assert booking.instrument.name in mail.text and booking.instrument.name in mail.html
    links = (f"/bookings/{booking.id}", f"/instruments/{booking.instrument_id}")
    assert any(link in mail.text for link in links)
    assert mail.html.lstrip().startswith("<!doctype html>")
    assert (mail.ics is not None) == carries_ics(kind)


def test_render_statements_ready_names_the_month_and_links_the_period(app):
    user = make_user(locale="en")
    note = notify(user, "statements_ready", params={"month": "2026-10",
                                                    "path": "/billing/periods/2026-10"})
    mail = render.render_mail(user, note, None)
    assert "2026-10" in mail.subject and "2026-10" in mail.text
    assert "/billing/periods/2026-10" in mail.text
    assert mail.ics is None


ODD = {"start": "not a date", "end": "2030-13-45 99:99", "count": "many", "offset_minutes": "x",
       "minutes_before": True, "timezone": "Mars/Base", "instrument": {"nested": 1},
       "expires": "2030-01-07T10:00:00+08:00", "booking_id": "seven", "path": "//evil.example"}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("params", [{}, None, ODD, ["not", "a", "mapping"]])
def test_render_never_fails_on_missing_or_odd_params(app, kind, params):
    user = make_user()
    note = _note(kind, params)
    with force_locale("en"):
        heading = render.title(note)
    mail = render.render_mail(user, note, None)
    assert heading and mail.subject == heading
    assert mail.ics is None
    assert "None" not in mail.text


def test_title_is_in_the_viewers_language_at_display_time(app):
    booking = make_booking(start=booking_start())
    note = notify(make_user(locale="en"), "booking_confirmed", reservation=booking,
                  params=booking_params(booking))
    with force_locale("en"):
        english = render.title(note)
    with force_locale("zh_Hans"):
        chinese = render.title(note)
    # 10:00 in Shanghai, written the way each locale writes dates (CLDR, not the catalog).
    assert "Jan 7, 2030 10:00" in english
    assert "2030年1月7日" in chinese and "10:00" in chinese


def booking_start():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    return datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc)


def test_mail_is_rendered_in_the_recipients_locale(app):
    booking = make_booking(start=booking_start())
    chinese = make_user(locale="zh_Hans")
    english = make_user(locale="en")
    params = booking_params(booking)
    zh_mail = render.render_mail(chinese, notify(chinese, "reminder", params=params), None)
    en_mail = render.render_mail(english, notify(english, "reminder", params=params), None)
    assert "2030年1月7日" in zh_mail.subject and "2030年1月7日" in zh_mail.text
    assert 'lang="zh-Hans"' in zh_mail.html
    assert "Jan 7, 2030" in en_mail.subject and 'lang="en"' in en_mail.html
    assert "2030年" not in en_mail.text


def test_mail_html_escapes_what_users_typed(app):
    instrument = make_instrument(name="<script>alert(1)</script> SEM")
    booking = make_booking(instrument, state_reason="a & b <i>")
    user = make_user(name="<b>Eve</b>")
    note = notify(user, "booking_cancelled", reservation=booking, params=booking_params(booking))
    mail = render.render_mail(user, note, booking)
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<b>Eve</b>" not in mail.html and "&lt;b&gt;Eve" in mail.html
    assert "a &amp; b &lt;i&gt;" in mail.html
    assert "<script>alert(1)</script> SEM" in mail.text  # text is text: not escaped


def test_mail_links_back_to_the_booking_with_the_base_url(app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_BASE_URL", "https://labbook.example.edu/")
    booking = make_booking()
    user = booking.user
    note = notify(user, "booking_confirmed", reservation=booking, params=booking_params(booking))
    mail = render.render_mail(user, note, booking)
    url = f"https://labbook.example.edu/bookings/{booking.id}"
    assert url in mail.text and f'href="{url}"' in mail.html
    assert "https://labbook.example.edu/notifications/preferences" in mail.text


def test_qualification_mail_links_to_the_instrument(app):
    instrument = make_instrument()
    user = make_user()
    note = notify(user, "qualification_expiring",
                  params={"instrument": instrument.name, "instrument_id": instrument.id,
                          "expires": "2030-02-01"})
    mail = render.render_mail(user, note, None)
    assert f"/instruments/{instrument.id}" in mail.text
    assert "Feb 1, 2030" in mail.subject


def test_ics_attachment_is_a_publish_of_the_booking(app):
    booking = make_booking()
    note = notify(booking.user, "booking_confirmed", reservation=booking,
                  params=booking_params(booking))
    mail = render.render_mail(booking.user, note, booking)
    cal = Calendar.from_ical(mail.ics)
    assert str(cal["METHOD"]) == "PUBLISH"
    event = cal.walk("VEVENT")[0]
    assert str(event["UID"]) == reservation_uid(booking)
    assert "ORGANIZER" in event
    assert cal.walk("VTIMEZONE"), "the zone of DTSTART is described"
    assert mail.ics_filename == f"booking-{booking.id}.ics"


def test_parameters_of_the_booking_notices_are_shown(app):
    booking = make_booking(start=booking_start())
    user = booking.user

    def text(kind, **extra):  # type: ignore[no-untyped-def]
        note = notify(user, kind, params=booking_params(booking, **extra))
        return render.render_mail(user, note, None)

    series = text("booking_confirmed", series_id=9, count=4, first_start="2030-01-07 10:00",
                  last_start="2030-01-28 10:00")
    assert "series of 4 bookings" in series.text and "Jan 28, 2030 10:00" in series.text
    assert "in 1 hour" in text("reminder", minutes_before=60).subject
    assert "in 1 day" in text("reminder", minutes_before=1440).subject
    moved = text("booking_rescheduled", old_start="2030-01-06 09:00", old_end="2030-01-06 10:00")
    assert "Sun, Jan 6, 2030 09:00" in moved.text
    outage = text("outage_affects_booking", outage_kind="calibration", outage_title="Yearly")
    assert "Calibration: Yearly" in outage.text
    assert "not be charged" not in outage.text  # the booking was not cancelled
    assert "not be charged" in text("outage_affects_booking", state="cancelled").text
    assert "Booked by" in text("approval_needed").text
    assert "Booked by" not in text("booking_confirmed").text
    assert "still undecided" in text("approval_needed", reminder=True).text


def test_qualification_notices(app):
    user = make_user()
    note = notify(user, "qualification_expired",
                  params={"instrument": "XRD", "expires": "2030-02-01 00:00",
                          "upcoming_bookings": 2, "level": "advanced"})
    mail = render.render_mail(user, note, None)
    assert "2 upcoming bookings of it stay" in mail.text and "advanced" in mail.text


def test_unknown_kind_in_old_rows_still_has_a_title(app):
    note = _note("retired_kind", {"instrument": "SEM"})
    assert render.title(note) == "retired_kind"
    db.session.rollback()


def test_outage_mail_offers_the_alternatives_in_the_facility_clock(app):
    user = make_user(locale="en")
    params = {"instrument": "SEM", "state": "cancelled", "alternatives": [
        {"start": "2030-01-08T09:00:00+08:00", "end": "2030-01-08T10:00:00+08:00"},
        {"start": "2030-01-09T14:00:00+08:00", "end": "2030-01-09T15:00:00+08:00"},
        "not a mapping",
    ]}
    note = notify(user, "outage_affects_booking", params=params)
    mail = render.render_mail(user, note, None)
    assert "You will not be charged" in mail.text
    text = " ".join(mail.text.split())  # the text part is wrapped
    assert "2030-01-08 09:00 to 2030-01-08 10:00; 2030-01-09 14:00 to 2030-01-09 15:00" in text
