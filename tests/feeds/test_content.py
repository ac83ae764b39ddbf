"""Every feed kind, read by two independent parsers (icalendar and ical.js): which events a
feed carries, their times with zone and UTC instant, statuses, sequences and privacy."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from labbook.db import now_utc
from labbook.extensions import db
from tests import factories
from tests.feeds.conftest import add_outage, at, weekday_ahead
from tests.feeds.parsers import events_by_uid, read_both, utc

HOST = "127.0.0.1"


def uid(reservation) -> str:  # type: ignore[no-untyped-def]
    return f"reservation-{reservation.id}@{HOST}"


def fetch(client, path):  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return read_both(response.data), response.data


def test_content_user_feed_has_my_bookings_with_details(client, scene, feed_url):
    reading, _ = fetch(client, feed_url(scene.owner, "user"))
    events = events_by_uid(reading)
    mine = scene.bookings["mine"]
    assert set(events) == {uid(mine)}
    event = events[uid(mine)]
    assert event["summary"] == "SEM-01: Imaging grains"
    assert event["description"].splitlines() == [
        "Booked by Olga Owner", "Imaging grains", f"http://{HOST}:5000/bookings/{mine.id}"]
    assert event["location"] == "Nano Fab, Room 101"
    assert event["status"] == "CONFIRMED" and event["sequence"] == 0
    assert event["start"] == {"tzid": "Asia/Shanghai", "is_date": False,
                              "local": scene.day.replace(hour=10).replace(tzinfo=None)
                              .isoformat(), "utc": utc(mine.start_at)}
    assert event["end"]["utc"] == utc(mine.end_at)
    assert reading["calendar"]["name"] == "labbook — My bookings"
    assert reading["calendar"]["x_wr_calname"] == "labbook — My bookings"
    assert reading["calendar"]["refresh_interval_seconds"] == 3600
    assert reading["calendar"]["x_published_ttl_seconds"] == 3600
    assert reading["calendar"]["method"] is None
    assert reading["timezones"] == ["Asia/Shanghai"]


def test_content_team_feed_shows_the_bookings_charged_to_the_team(client, scene, feed_url):
    lead = factories.make_user_with_role("team_lead", team=scene.team, name="Lena Lead")
    mate = factories.make_user_with_role("researcher", team=scene.team, name="Max Mate")
    db.session.commit()
    reading, _ = fetch(client, feed_url(lead, "team", scene.team.id))
    events = events_by_uid(reading)
    assert set(events) == {uid(scene.bookings["mine"])}  # not the other team's booking
    assert events[uid(scene.bookings["mine"])]["summary"] == "SEM-01: Imaging grains"
    assert reading["calendar"]["name"] == "labbook — Lin Lab"
    # A plain member sees that the team's instrument time is taken, not who took it.
    reading, data = fetch(client, feed_url(mate, "team", scene.team.id))
    assert [e["summary"] for e in reading["events"]] == ["SEM-01: Busy"]
    assert b"Olga" not in data and b"Imaging" not in data


def test_content_instrument_feed_of_a_researcher_hides_who_booked(client, scene, feed_url):
    reading, data = fetch(client, feed_url(scene.owner, "instrument", scene.instrument.id))
    events = events_by_uid(reading)
    theirs = events[uid(scene.bookings["theirs"])]
    assert theirs["summary"] == "SEM-01: Busy"
    assert theirs["description"] == f"http://{HOST}:5000/instruments/{scene.instrument.id}"
    assert theirs["url"] == theirs["description"]  # not a link to a booking page they cannot open
    assert events[uid(scene.bookings["mine"])]["summary"] == "SEM-01: Imaging grains"
    for secret in (b"Otto", b"Other", b"Secret project", scene.other.email.encode(),
                   b"Wu Lab", b"Mia Manager"):
        assert secret not in data


def test_content_instrument_feed_of_a_manager_or_admin_shows_everyone(client, scene, feed_url):
    admin = factories.make_user(roles=("admin",))
    other_manager = factories.make_user_with_role("facility_manager")  # of another facility
    db.session.commit()
    for owner in (scene.manager, admin):
        reading, _ = fetch(client, feed_url(owner, "instrument", scene.instrument.id))
        theirs = events_by_uid(reading)[uid(scene.bookings["theirs"])]
        assert theirs["summary"] == "SEM-01: Secret project X"
        assert theirs["description"].startswith("Booked by Otto Other\n")
    reading, _ = fetch(client, feed_url(other_manager, "instrument", scene.instrument.id))
    assert {e["summary"] for e in reading["events"]} == {"SEM-01: Busy"}


def test_content_rights_are_judged_at_fetch_time(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    assert "Busy" in fetch(client, path)[0]["events"][1]["summary"]
    scene.owner.role_rows[0].role = "facility_manager"
    scene.facility.managers.append(scene.owner)
    db.session.commit()
    summaries = [e["summary"] for e in fetch(client, path)[0]["events"]]
    assert summaries == ["SEM-01: Imaging grains", "SEM-01: Secret project X"]


def test_content_instrument_feed_carries_outages_open_ended_too(client, scene, feed_url):
    planned = scene.outage(at(scene.day, 15), at(scene.day, 17), "Calibration",
                           outage_kind="calibration")
    broken = factories.make_instrument(scene.facility, name="SEM-02")
    yesterday = now_utc() - timedelta(days=1)
    unplanned = add_outage(broken, yesterday, None, "Vacuum leak", outage_kind="repair")
    db.session.commit()
    reading, _ = fetch(client, feed_url(scene.other, "instrument", scene.instrument.id))
    events = events_by_uid(reading)
    assert uid(unplanned) not in events
    reading, _ = fetch(client, feed_url(scene.other, "facility", scene.facility.id))
    events = events_by_uid(reading)
    assert events[uid(planned)]["summary"] == "SEM-01: Calibration"
    assert events[uid(planned)]["status"] == "CONFIRMED"
    assert events[uid(planned)]["end"]["utc"] == utc(planned.end_at)
    open_ended = events[uid(unplanned)]
    assert open_ended["summary"] == "SEM-02: Vacuum leak"
    today = datetime.combine(now_utc().date(), time(0), timezone.utc)
    assert open_ended["start"]["utc"] == utc(unplanned.start_at.replace(microsecond=0))
    assert open_ended["end"]["utc"] == utc(today + timedelta(days=1))
    # The user feed has no outages: it is about the user's bookings.
    user_reading, _ = fetch(client, feed_url(scene.other, "user"))
    assert set(events_by_uid(user_reading)) == {uid(scene.bookings["theirs"])}


def test_content_facility_feed_shows_an_imported_closure_once(client, scene, feed_url):
    second = factories.make_instrument(scene.facility, name="XRD-02")
    holiday = weekday_ahead(10)
    start, end = holiday.astimezone(timezone.utc), (holiday + timedelta(days=1)).astimezone(
        timezone.utc)
    for instrument in (scene.instrument, second):
        add_outage(instrument, start, end, "National Day", outage_kind="closure",
                   external_uid="holiday-1@gov.example")
    booking = factories.make_booking(second, scene.owner, start=at(scene.day, 9),
                                     purpose="Powder")
    db.session.commit()
    reading, _ = fetch(client, feed_url(scene.owner, "facility", scene.facility.id))
    closures = [e for e in reading["events"] if e["uid"].startswith("closure-")]
    assert len(closures) == 1
    assert closures[0]["summary"] == "Nano Fab: National Day"
    assert closures[0]["start"] == {"tzid": None, "is_date": True,
                                    "local": holiday.date().isoformat(), "utc": None}
    assert closures[0]["end"]["local"] == (holiday.date() + timedelta(days=1)).isoformat()
    uids = set(events_by_uid(reading))
    assert {uid(scene.bookings["mine"]), uid(scene.bookings["theirs"]), uid(booking)} < uids
    assert reading["calendar"]["name"] == "labbook — Nano Fab"
    # The instrument feed shows the closure as that instrument's own (all-day) event.
    inst = fetch(client, feed_url(scene.owner, "instrument", second.id))[0]
    assert [e["summary"] for e in inst["events"] if e["start"]["is_date"]] == [
        "XRD-02: National Day"]


def test_content_statuses_and_the_cancelled_window(client, scene, feed_url):
    now = now_utc()
    pending = scene.book("pending", scene.owner, at(scene.day, 8), state="pending")
    running = scene.book("running", scene.owner, at(scene.day, 11), state="in_use")
    done = scene.book("done", scene.owner, now - timedelta(days=3), state="completed")
    # Not holding the slot, so they may share the time of the others.
    recent = {state: scene.book(state, scene.owner, at(scene.day, 15), state=state,
                                state_changed_at=now - timedelta(days=29))
              for state in ("cancelled", "rejected", "expired", "no_show")}
    old = scene.book("old", scene.owner, at(scene.day, 15), state="cancelled",
                     state_changed_at=now - timedelta(days=32))
    db.session.commit()
    events = events_by_uid(fetch(client, feed_url(scene.owner, "user"))[0])
    assert events[uid(pending)]["status"] == "TENTATIVE"
    assert events[uid(running)]["status"] == "CONFIRMED"
    assert events[uid(done)]["status"] == "CONFIRMED"
    assert {events[uid(b)]["status"] for b in recent.values()} == {"CANCELLED"}
    assert uid(old) not in events


def test_content_window_bounds(client, scene, feed_url, app):
    now = now_utc()
    too_old = scene.book("too_old", scene.owner, now - timedelta(days=62))
    oldest = scene.book("oldest", scene.owner, now - timedelta(days=59))
    latest = scene.book("latest", scene.owner, now + timedelta(days=364))
    too_far = scene.book("too_far", scene.owner, now + timedelta(days=367))
    db.session.commit()
    events = events_by_uid(fetch(client, feed_url(scene.owner, "user"))[0])
    assert uid(oldest) in events and uid(latest) in events
    assert uid(too_old) not in events and uid(too_far) not in events
    app.config.update(LABBOOK_FEED_PAST_DAYS=7, LABBOOK_FEED_FUTURE_DAYS=30)
    try:
        events = events_by_uid(fetch(client, feed_url(scene.owner, "user"))[0])
    finally:
        app.config.update(LABBOOK_FEED_PAST_DAYS=60, LABBOOK_FEED_FUTURE_DAYS=365)
    assert set(events) == {uid(scene.bookings["mine"])}


def test_content_vtimezone_for_every_zone_including_dst(client, scene, feed_url):
    berlin = ZoneInfo("Europe/Berlin")
    facility = factories.make_facility(name="Berlin Lab", timezone="Europe/Berlin")
    instrument = factories.make_instrument(facility, name="TEM-B")
    factories.make_qualification(scene.owner, instrument)
    year = now_utc().year
    summer, winter = (datetime(y, m, 15, 10, 0, tzinfo=berlin)
                      for y, m in ((year + 1, 7), (year + 1, 1)))
    if winter - now_utc() > timedelta(days=360):
        winter = winter.replace(year=year)
    if summer - now_utc() > timedelta(days=360):
        summer = summer.replace(year=year)
    b_summer = factories.make_booking(instrument, scene.owner, start=summer)
    b_winter = factories.make_booking(instrument, scene.owner, start=winter)
    db.session.commit()
    reading, _ = fetch(client, feed_url(scene.owner, "user"))
    assert sorted(reading["timezones"]) == ["Asia/Shanghai", "Europe/Berlin"]
    events = events_by_uid(reading)
    for booking, offset in ((b_summer, 2), (b_winter, 1)):
        start = events[uid(booking)]["start"]
        assert start["tzid"] == "Europe/Berlin" and start["local"].endswith("T10:00:00")
        assert start["utc"] == utc(booking.start_at)
        assert booking.start_at.hour == 10 - offset
    assert events[uid(scene.bookings["mine"])]["start"]["tzid"] == "Asia/Shanghai"


def test_content_in_the_owners_language(client, scene, feed_url):
    scene.facility.name_zh = "纳米加工平台"
    scene.owner.locale = "zh_Hans"
    db.session.commit()
    reading, data = fetch(client, feed_url(scene.owner, "instrument", scene.instrument.id))
    events = events_by_uid(reading)
    assert events[uid(scene.bookings["theirs"])]["summary"] == "SEM-01: 已占用"
    assert events[uid(scene.bookings["mine"])]["location"] == "纳米加工平台, Room 101"
    assert "纳米加工平台".encode() not in data.split(b"BEGIN:VEVENT")[0]  # name is the instrument's
