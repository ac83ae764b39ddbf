"""The iCalendar bytes themselves: line endings, folding, escaping, and VTIMEZONE definitions
that ical.js (reading the definition) and icalendar (reading the zone database) resolve to
the same instants."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from labbook.db import now_utc
from labbook.extensions import db
from labbook.feeds import ics
from labbook.feeds.vtimezone import transitions
from tests import factories
from tests.feeds.parsers import events_by_uid, read_both, read_ical_js, utc

CHINESE = "使用扫描电子显微镜观察纳米颗粒的形貌与尺寸分布，并记录不同放大倍数下的图像数据以便后续分析"
TRICKY = "a, b; c \\ d\nsecond line, with; all\\ of them"
ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Sydney",
         "Asia/Jerusalem", "Africa/Casablanca", "America/Santiago")


def physical_lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines), "bare CR or LF"
    return lines


def test_ics_lines_fold_at_75_octets_between_characters(client, scene, feed_url):
    booking = scene.bookings["mine"]
    booking.purpose = CHINESE
    db.session.commit()
    data = client.get(feed_url(scene.owner, "user")).data
    lines = physical_lines(data)
    assert max(len(line) for line in lines) <= 75
    folded = [line for line in lines if line.startswith(b" ")]
    assert len(folded) >= 4  # the Chinese summary and description had to fold
    for line in lines:
        line.decode("utf-8")  # a fold that split a character would not decode
    event = read_both(data)["events"][0]
    assert event["summary"] == f"SEM-01: {CHINESE}"
    assert event["description"].splitlines()[1] == CHINESE


def test_ics_escapes_commas_semicolons_backslashes_and_newlines(client, scene, feed_url):
    scene.bookings["mine"].purpose = TRICKY
    db.session.commit()
    data = client.get(feed_url(scene.owner, "user")).data
    unfolded = data.replace(b"\r\n ", b"")
    assert rb"SUMMARY:SEM-01: a\, b\; c \\ d\nsecond line\, with\; all\\ of them" in unfolded
    event = read_both(data)["events"][0]
    assert event["summary"] == f"SEM-01: {TRICKY}"
    assert event["description"].split("\n", 1)[1].startswith(TRICKY)


def test_ics_booking_file_has_one_event_and_no_method(app, scene):
    booking = scene.bookings["mine"]
    data = ics.booking_ics(booking, now=now_utc())
    physical_lines(data)
    reading = read_both(data)
    assert reading["calendar"]["method"] is None
    assert b"METHOD" not in data and b"ORGANIZER" not in data and b"ATTENDEE" not in data
    (event,) = reading["events"]
    assert event["uid"] == ics.reservation_uid(booking)
    assert event["summary"] == "SEM-01: Imaging grains"
    assert event["start"]["utc"] == utc(booking.start_at)
    assert event["dtstamp"]["utc"] == utc(booking.updated_at.replace(microsecond=0))
    assert reading["timezones"] == ["Asia/Shanghai"]


def _samples(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Noon every 9 days, and 3 hours either side of every transition (clear of the hour
    that is skipped or repeated)."""
    moments = [first + timedelta(days=9 * n) for n in range((last - first).days // 9)]
    for change in transitions(zone, first.year, last.year):
        onset = (change.onset - change.offset_from).replace(tzinfo=timezone.utc)
        moments += [onset - timedelta(hours=3), onset + timedelta(hours=3)]
    return [m.astimezone(zone) for m in moments if first <= m < last]


@pytest.mark.parametrize("tzid", ZONES)
def test_ics_vtimezone_resolves_like_the_zone_database(tzid):
    zone = ZoneInfo(tzid)
    first = datetime.now(timezone.utc).replace(month=1, day=1, hour=12, minute=0, second=0,
                                               microsecond=0)
    moments = _samples(zone, first, first.replace(year=first.year + 2))
    cal = ics.new_calendar("zones")
    for n, moment in enumerate(moments):
        event = Event()
        event.add("uid", f"sample-{n}")
        event.add("dtstamp", first)
        event.add("dtstart", moment)
        event.add("dtend", moment + timedelta(minutes=30))
        cal.add_component(event)
    data = ics.to_bytes(cal)
    parsed = Calendar.from_ical(data)
    (vtimezone,) = parsed.walk("VTIMEZONE")
    assert all(len(str(rdate).split(",")) <= 1 for sub in vtimezone.subcomponents
               for rdate in ([sub["RDATE"]] if "RDATE" in sub else []))
    js = {e["uid"]: e for e in read_ical_js(data)["events"]}
    assert len(js) == len(moments)
    for n, moment in enumerate(moments):
        start = js[f"sample-{n}"]["start"]
        assert start["tzid"] == tzid
        assert start["utc"] == utc(moment), (moment, start)


def test_ics_vtimezone_uses_yearly_rules_where_the_zone_has_them():
    cal = ics.new_calendar("berlin")
    event = Event()
    event.add("uid", "x")
    event.add("dtstamp", now_utc())
    event.add("dtstart", datetime(2030, 7, 1, 10, tzinfo=ZoneInfo("Europe/Berlin")))
    cal.add_component(event)
    (vtimezone,) = Calendar.from_ical(ics.to_bytes(cal)).walk("VTIMEZONE")
    rules = {sub.name: sub["RRULE"].to_ical().decode() for sub in vtimezone.subcomponents}
    assert rules == {"DAYLIGHT": "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
                     "STANDARD": "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"}
    daylight = next(s for s in vtimezone.subcomponents if s.name == "DAYLIGHT")
    assert daylight.decoded("DTSTART").time().hour == 2  # local time before the change


def test_ics_feed_header_durations_are_durations(client, scene, feed_url):
    data = client.get(feed_url(scene.owner, "user")).data
    assert b"\r\nX-PUBLISHED-TTL:PT1H\r\n" in data
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in data
    assert events_by_uid(read_both(data))


def test_ics_event_times_resolve_in_a_facility_zone_with_dst(client, scene, feed_url):
    """Same check through a real feed: a Berlin booking on the next day clocks go forward."""
    facility = factories.make_facility(name="Berlin Lab", timezone="Europe/Berlin")
    instrument = factories.make_instrument(facility, name="TEM-B")
    berlin = ZoneInfo("Europe/Berlin")
    soon = now_utc() + timedelta(days=2)
    change = next(t for t in transitions(berlin, soon.year, soon.year + 1)
                  if t.dst and t.onset > soon.replace(tzinfo=None))
    start = datetime.combine(change.onset.date(), datetime.min.time(), berlin).replace(hour=9)
    booking = factories.make_booking(instrument, scene.owner,
                                     start=start.astimezone(timezone.utc))
    db.session.commit()
    event = events_by_uid(read_both(client.get(feed_url(scene.owner, "user")).data))[
        ics.reservation_uid(booking)]
    assert event["start"]["local"].endswith("T09:00:00")
    assert event["start"]["utc"] == utc(start)
    assert start.utcoffset() == timedelta(hours=2)
