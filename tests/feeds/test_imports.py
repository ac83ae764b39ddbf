"""Closure import from iCalendar (labbook/feeds/imports.py, its pages and its command): every
event becomes a closure on every instrument of the facility, all-day events on the
facility's wall clock, timed ones at the right instant; importing again updates by UID;
anything wrong stops the whole import with a message naming the problem and writes
nothing. URLs are fetched from a real HTTP server on loopback."""
from __future__ import annotations

import io
import re
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings import outages, services
from labbook.bookings.models import Booking, Outage, Reservation
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.feeds import import_fetch, imports
from labbook.notifications.models import Notification
from tests import factories
from tests.conftest import csrf_token, login

UTC = timezone.utc
NOW = datetime(2030, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ics(*events: str, method: str | None = None) -> bytes:
    """A calendar with ``events`` (VEVENT bodies, one property per line), CRLF-terminated."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//closures//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    for body in events:
        lines += ["BEGIN:VEVENT", *[line.strip() for line in body.strip().splitlines()],
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


NATIONAL_DAY = """
UID:national-day-2030@holidays.example
DTSTAMP:20300101T000000Z
SUMMARY:国庆节
DTSTART;VALUE=DATE:20301001
DTEND;VALUE=DATE:20301008
"""
BERLIN_VISIT = """
UID:berlin-service@vendor.example
DTSTAMP:20300101T000000Z
SUMMARY:Vendor service (Berlin time)
DTSTART;TZID=Europe/Berlin:20300715T090000
DTEND;TZID=Europe/Berlin:20300715T113000
"""


@pytest.fixture
def lab(app):
    """A facility in Asia/Shanghai with two instruments and its manager (committed)."""
    facility = factories.make_facility(code="NANO", timezone="Asia/Shanghai")
    sem = factories.make_instrument(facility, name="SEM")
    xrd = factories.make_instrument(facility, name="XRD")
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    db.session.commit()
    return facility, [sem, xrd], manager


def _closures(facility, *where):
    db.session.expire_all()
    return db.session.scalars(
        sa.select(Outage).join(Outage.instrument)
        .where(Outage.external_uid.is_not(None), *where)
        .order_by(Outage.instrument_id, Outage.start_at)
    ).all()


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _import(facility, manager, data, **kw):
    return imports.import_closures(manager, facility, data, now=kw.pop("now", NOW), **kw)


def _snapshot():
    return (_count(Reservation), _count(AuditEntry), _count(Notification))


# -- the service ------------------------------------------------------------------------------


def test_all_day_holiday_closes_every_instrument_from_local_midnight(lab):
    facility, instruments, manager = lab
    result = _import(facility, manager, ics(NATIONAL_DAY))
    assert result.counts["created"] == 2 and len(result.events) == 1
    rows = _closures(facility)
    assert sorted(r.instrument_id for r in rows) == sorted(i.id for i in instruments)
    for row in rows:  # Shanghai is UTC+8: local midnight is 16:00 UTC the day before
        assert row.start_at == datetime(2030, 9, 30, 16, tzinfo=UTC)
        assert row.end_at == row.block_end == datetime(2030, 10, 7, 16, tzinfo=UTC)
        assert (row.outage_kind, row.state, row.title) == ("closure", "scheduled", "国庆节")
        assert row.external_uid == "national-day-2030@holidays.example"
    assert _count(AuditEntry, AuditEntry.action == "closures.import") == 1


def test_timed_event_with_tzid_lands_at_the_right_instant(lab):
    facility, _instruments, manager = lab
    floating = """
    UID:floating@x
    SUMMARY:Power work
    DTSTART:20300716T080000
    DURATION:PT2H
    """
    _import(facility, manager, ics(BERLIN_VISIT, floating))
    berlin = _closures(facility, Outage.external_uid == "berlin-service@vendor.example")
    assert {(r.start_at, r.end_at) for r in berlin} == {  # CEST is UTC+2
        (datetime(2030, 7, 15, 7, tzinfo=UTC), datetime(2030, 7, 15, 9, 30, tzinfo=UTC))}
    local = _closures(facility, Outage.external_uid == "floating@x")
    assert {(r.start_at, r.end_at) for r in local} == {  # floating: the facility's clock
        (datetime(2030, 7, 16, 0, tzinfo=UTC), datetime(2030, 7, 16, 2, tzinfo=UTC))}


def test_reimporting_the_same_file_changes_nothing(lab):
    facility, _instruments, manager = lab
    data = ics(NATIONAL_DAY, BERLIN_VISIT)
    _import(facility, manager, data)
    before = _snapshot()
    ids = [r.id for r in _closures(facility)]
    result = _import(facility, manager, data)
    assert dict(result.counts) == {"unchanged": 4}
    assert _snapshot() == before and [r.id for r in _closures(facility)] == ids


def test_moved_event_updates_the_same_rows(lab):
    facility, _instruments, manager = lab
    _import(facility, manager, ics(NATIONAL_DAY))
    first = {r.id: r.sequence for r in _closures(facility)}
    moved = NATIONAL_DAY.replace("20301001", "20301002").replace("20301008", "20301009")
    result = _import(facility, manager, ics(moved.replace("国庆节", "国庆节（调休）")))
    assert result.counts["updated"] == 2 and result.counts["created"] == 0
    rows = _closures(facility)
    assert {r.id for r in rows} == set(first)
    for row in rows:
        assert row.start_at == datetime(2030, 10, 1, 16, tzinfo=UTC)
        assert row.title == "国庆节（调休）" and row.sequence == first[row.id] + 1
    assert _count(AuditEntry, AuditEntry.action == "outage.update") == 2


def test_cancelled_event_cancels_its_closures(lab):
    facility, instruments, manager = lab
    _import(facility, manager, ics(NATIONAL_DAY, BERLIN_VISIT))
    result = _import(facility, manager, ics(NATIONAL_DAY + "STATUS:CANCELLED", BERLIN_VISIT))
    assert result.counts["cancelled"] == 2 and result.counts["unchanged"] == 2
    states = {r.external_uid: r.state for r in _closures(facility)}
    assert states == {"national-day-2030@holidays.example": "cancelled",
                      "berlin-service@vendor.example": "scheduled"}
    user = factories.make_booker(instruments[0])  # the day is free again
    day = datetime(2030, 10, 2, 2, tzinfo=UTC)
    assert services.create_booking(user, instruments[0], day, day + HOUR,
                                   now=day - timedelta(days=7)).state == "confirmed"


def test_bookings_inside_a_closure_are_cancelled_and_owners_told(lab):
    facility, instruments, manager = lab
    inside = factories.make_booking(instruments[1], start=datetime(2030, 10, 3, 2, tzinfo=UTC))
    after = factories.make_booking(instruments[1], start=datetime(2030, 10, 8, 2, tzinfo=UTC))
    result = _import(facility, manager, ics(NATIONAL_DAY))
    assert [(a.booking_id, a.instrument) for a in result.affected] == [(inside.id, "XRD")]
    assert "国庆节" in result.affected[0].event
    assert inside.state == "cancelled" and inside.state_reason == "instrument unavailable"
    assert after.state == "confirmed"
    note = db.session.scalar(sa.select(Notification).where(
        Notification.user_id == inside.user_id))
    assert note.kind == "outage_affects_booking" and note.params["outage_title"] == "国庆节"


def test_dry_run_previews_exactly_and_writes_nothing(lab):
    facility, instruments, manager = lab
    booking = factories.make_booking(instruments[0], start=datetime(2030, 10, 3, 2, tzinfo=UTC))
    db.session.commit()
    before = _snapshot()
    preview = _import(facility, manager, ics(NATIONAL_DAY, BERLIN_VISIT), dry_run=True)
    assert preview.dry_run and preview.counts["created"] == 4
    assert [a.booking_id for a in preview.affected] == [booking.id]
    assert _snapshot() == before and db.session.get(Booking, booking.id).state == "confirmed"
    real = _import(facility, manager, ics(NATIONAL_DAY, BERLIN_VISIT))
    assert real.counts == preview.counts and real.affected == preview.affected


def test_repeating_event_expands_with_exceptions_and_follows_changes(lab):
    facility, _instruments, manager = lab
    weekly = """
    UID:weekly-shutdown@x
    SUMMARY:Weekly shutdown
    DTSTART;TZID=Asia/Shanghai:20300701T180000
    DTEND;TZID=Asia/Shanghai:20300701T200000
    RRULE:FREQ=WEEKLY;COUNT=4
    EXDATE;TZID=Asia/Shanghai:20300708T180000
    """
    result = _import(facility, manager, ics(weekly))
    assert result.counts["created"] == 6  # 3 occurrences x 2 instruments
    keys = sorted({r.external_uid for r in _closures(facility)})
    assert keys == ["weekly-shutdown@x#20300701T100000Z", "weekly-shutdown@x#20300715T100000Z",
                    "weekly-shutdown@x#20300722T100000Z"]
    fewer = weekly.replace("COUNT=4", "COUNT=2")
    result = _import(facility, manager, ics(fewer))
    assert result.counts["unchanged"] == 2 and result.counts["cancelled"] == 4
    live = {r.external_uid for r in _closures(facility, Outage.state == "scheduled")}
    assert live == {"weekly-shutdown@x#20300701T100000Z"}


def test_yearly_rule_with_a_moved_occurrence_stops_at_the_horizon(lab):
    facility, _instruments, manager = lab
    new_year = """
    UID:new-year@x
    SUMMARY:元旦
    DTSTART;VALUE=DATE:20300101
    RRULE:FREQ=YEARLY;UNTIL=20331231
    """
    moved = """
    UID:new-year@x
    SUMMARY:元旦（补）
    RECURRENCE-ID;VALUE=DATE:20310101
    DTSTART;VALUE=DATE:20310102
    """
    result = _import(facility, manager, ics(new_year, moved))
    assert result.past == 1  # 2030-01-01 is before NOW; 2032 and 2033 are past the horizon
    assert [(e.key, e.summary) for e in result.events] == [("new-year@x#20310101", "元旦（补）")]
    assert any("import the calendar again later" in note for note in result.notes)
    rows = _closures(facility)
    assert {(r.start_at, r.end_at) for r in rows} == {
        (datetime(2031, 1, 1, 16, tzinfo=UTC), datetime(2031, 1, 2, 16, tzinfo=UTC))}


def test_method_cancel_and_events_without_uid(lab):
    facility, _instruments, manager = lab
    anonymous = "SUMMARY:Shutdown\nDTSTART;VALUE=DATE:20301110\nDURATION:P2D"
    first = _import(facility, manager, ics(anonymous, NATIONAL_DAY))
    assert first.counts["created"] == 4
    rows = _closures(facility, Outage.title == "Shutdown")
    assert {r.end_at - r.start_at for r in rows} == {timedelta(days=2)}
    assert _import(facility, manager, ics(anonymous)).counts["unchanged"] == 2
    cancel = _import(facility, manager, ics(NATIONAL_DAY, method="CANCEL"))
    assert cancel.counts["cancelled"] == 2
    assert {r.state for r in _closures(facility, Outage.title == "国庆节")} == {"cancelled"}


def test_closure_cancelled_by_a_manager_stays_cancelled(lab):
    facility, instruments, manager = lab
    _import(facility, manager, ics(NATIONAL_DAY))
    kept_open = _closures(facility, Outage.instrument_id == instruments[0].id)[0]
    outages.cancel_outage(manager, kept_open, now=NOW)
    result = _import(facility, manager, ics(NATIONAL_DAY))
    assert dict(result.counts) == {"unchanged": 2}
    assert db.session.get(Outage, kept_open.id).state == "cancelled"


def test_past_events_are_skipped(lab):
    facility, _instruments, manager = lab
    past = NATIONAL_DAY.replace("2030", "2029").replace("national-day-2029", "nd-2029")
    result = _import(facility, manager, ics(past, NATIONAL_DAY))
    assert result.past == 1 and len(result.events) == 1 and result.counts["created"] == 2


def test_event_covered_by_an_outage_is_skipped_there(lab):
    facility, instruments, manager = lab
    outages.schedule_outage(manager, instruments[0], datetime(2030, 9, 1, tzinfo=UTC), None,
                            "repair", "Column replacement", now=NOW)
    result = _import(facility, manager, ics(NATIONAL_DAY))
    assert result.counts["created"] == 1 and result.counts["skipped"] == 1
    assert any("SEM" in note for note in result.notes)


def test_event_that_cannot_be_placed_stops_everything(lab):
    facility, instruments, manager = lab
    outages.schedule_outage(manager, instruments[1], datetime(2030, 10, 7, 12, tzinfo=UTC),
                            datetime(2030, 10, 7, 20, tzinfo=UTC), "preventive", "PM", now=NOW)
    db.session.commit()
    before = _snapshot()
    with pytest.raises(ValidationError) as info:
        _import(facility, manager, ics(BERLIN_VISIT, NATIONAL_DAY))
    message = info.value.message
    assert "国庆节" in message and "2030-10-01" in message and "XRD" in message
    assert _snapshot() == before


@pytest.mark.parametrize("data, words", [
    (b"hello, world", "not an iCalendar file"),
    (b"<!doctype html><html><body>Holidays</body></html>", "not an iCalendar file"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n", "malformed"),
    (b"BEGIN:VCALENDAR\r\n\xff\xfe\r\nEND:VCALENDAR\r\n", "UTF-8"),
    (ics("UID:a\nSUMMARY:Lost"), "“Lost” has no start"),
    (ics("UID:a\nSUMMARY:Nowhere\nDTSTART;TZID=Mars/Olympus:20301001T090000\n"
         "DURATION:PT1H"), "unknown time zone: Mars/Olympus"),
    (ics("UID:a\nSUMMARY:Backwards\nDTSTART:20301001T090000Z\nDTEND:20301001T080000Z"),
     "“Backwards” (2030-10-01) ends before it starts"),
    (ics("UID:a\nSUMMARY:Odd\nDTSTART:20301001T090000Z\nDURATION:PT1H\nRRULE:FREQ=SOMETIMES"),
     "“Odd” has an unreadable RRULE"),
    (ics("UID:a\nSUMMARY:Twice\nDTSTART;VALUE=DATE:20301001",
         "UID:a\nSUMMARY:Twice\nDTSTART;VALUE=DATE:20301002"), "Two events share the UID"),
])
def test_bad_files_are_refused_with_a_clear_message(lab, data, words):
    facility, _instruments, manager = lab
    before = _snapshot()
    with pytest.raises(ValidationError) as info:
        _import(facility, manager, data)
    assert words in info.value.message and info.value.fields["calendar"]
    assert _snapshot() == before


def test_too_big_and_too_many_are_refused(app, lab):
    facility, _instruments, manager = lab
    app.config["LABBOOK_IMPORT_MAX_BYTES"] = 200
    try:
        with pytest.raises(ValidationError, match="too big"):
            _import(facility, manager, ics(NATIONAL_DAY, BERLIN_VISIT))
    finally:
        app.config["LABBOOK_IMPORT_MAX_BYTES"] = 2 * 1024 * 1024
    daily = "UID:d\nSUMMARY:Every night\nDTSTART:20300601T200000Z\nDURATION:PT1H\nRRULE:FREQ=HOURLY"
    with pytest.raises(ValidationError, match="more than 2000 events"):
        _import(facility, manager, ics(daily))
    assert _count(Outage) == 0


def test_only_the_facilitys_managers_may_import(lab):
    facility, _instruments, _manager = lab
    for role in ("researcher", "team_lead", "finance", "facility_manager"):
        with pytest.raises(Forbidden):
            _import(facility, factories.make_user_with_role(role), ics(NATIONAL_DAY))
    admin = factories.make_user_with_role("admin")
    assert _import(facility, admin, ics(NATIONAL_DAY)).counts["created"] == 2


# -- fetching by URL from a real HTTP server on loopback -------------------------------------


class Site:
    """A tiny HTTP server: ``routes`` maps a path to (status, content type, body, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                status, kind, body, headers = routes.get(
                    self.path, (404, "text/plain", b"not found", {}))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def site():
    server = Site()
    server.routes["/holidays.ics"] = (200, "text/calendar; charset=utf-8", ics(NATIONAL_DAY), {})
    yield server
    server.stop()


def test_fetch_url_reads_a_calendar_from_a_web_server(app, lab, site):
    facility, _instruments, manager = lab
    data = import_fetch.fetch_url(site.url("/holidays.ics"))
    assert b"national-day-2030" in data
    webcal = site.url("/holidays.ics").replace("http://", "webcal://")
    assert import_fetch.check_url(webcal).startswith("https://")
    assert _import(facility, manager, data).counts["created"] == 2


def _refused(url: str) -> str:
    with pytest.raises(ValidationError) as info:
        import_fetch.fetch_url(url)
    return info.value.message


def test_fetch_url_refuses_other_schemes(app):
    for url in ("ftp://example.org/x.ics", "file:///etc/passwd", "javascript:alert(1)",
                "data:text/calendar,BEGIN:VCALENDAR"):
        assert "Only http://, https:// and webcal://" in _refused(url)
    assert "no host" in _refused("http:///x.ics")


def test_fetch_url_explains_server_and_content_problems(app, site):
    site.routes["/page"] = (200, "text/html; charset=utf-8", b"<html>Holidays</html>", {})
    site.routes["/plain"] = (200, "text/plain", b"Holidays: Oct 1", {})
    site.routes["/away"] = (302, "text/plain", b"", {"Location": "file:///etc/passwd"})
    assert "127.0.0.1 answered 404" in _refused(site.url("/missing.ics"))
    assert "text/html document, not a calendar" in _refused(site.url("/page"))
    assert "did not return an iCalendar file" in _refused(site.url("/plain"))
    assert "redirects to something other than http" in _refused(site.url("/away"))


def test_fetch_url_refuses_too_big_answers(app, site):
    app.config["LABBOOK_IMPORT_MAX_BYTES"] = 100
    try:
        assert "too big" in _refused(site.url("/holidays.ics"))
    finally:
        app.config["LABBOOK_IMPORT_MAX_BYTES"] = 2 * 1024 * 1024


def test_fetch_url_reports_unreachable_and_silent_hosts(app):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert "Could not reach 127.0.0.1" in _refused(f"http://127.0.0.1:{port}/x.ics")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        app.config["LABBOOK_IMPORT_TIMEOUT"] = 0.3
        try:
            message = _refused(f"http://127.0.0.1:{silent.getsockname()[1]}/x.ics")
        finally:
            app.config["LABBOOK_IMPORT_TIMEOUT"] = 10
    assert "did not answer within" in message or "Could not reach" in message


def test_error_messages_do_not_repeat_secret_urls(app, site):
    message = _refused(site.url("/private-token-s3cr3t/basic.ics"))
    assert "s3cr3t" not in message
    assert imports.safe_source("https://user:pw@cal.example/a/private-s3cr3t/basic.ics?k=1") \
        == "https://cal.example/…/basic.ics"


# -- the pages --------------------------------------------------------------------------------


def _page(facility) -> str:
    return f"/facilities/{facility.id}/closures/import"


PAYLOAD_RE = re.compile(r'name="payload" type="hidden" value="([^"]+)"')


def _upload(client, facility, data: bytes, name: str = "holidays.ics"):
    token = csrf_token(client, _page(facility))
    return client.post(_page(facility), data={"csrf_token": token, "url": "",
                                              "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_page_preview_then_confirm(client, lab):
    facility, instruments, manager = lab
    booking = factories.make_booking(instruments[0], start=datetime(2030, 10, 3, 2, tzinfo=UTC))
    db.session.commit()
    login(client, manager.email)
    assert client.get(_page(facility)).status_code == 200
    before = _snapshot()
    preview = _upload(client, facility, ics(NATIONAL_DAY))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "国庆节" in html
    assert f'id="affected-{booking.id}"' in html and 'id="count-created">2<' in html
    assert _snapshot() == before  # the preview wrote nothing
    payload = PAYLOAD_RE.search(html).group(1)
    token = csrf_token(client, _page(facility))
    done = client.post(_page(facility), data={"csrf_token": token, "payload": payload,
                                              "source": "holidays.ics"})
    assert done.status_code == 200 and 'id="import-done"' in done.get_data(as_text=True)
    assert len(_closures(facility, Outage.state == "scheduled")) == 2
    assert db.session.get(Booking, booking.id).state == "cancelled"


def test_page_imports_from_an_address(client, lab, site):
    facility, _instruments, manager = lab
    login(client, manager.email)
    token = csrf_token(client, _page(facility))
    preview = client.post(_page(facility), data={"csrf_token": token,
                                                 "url": site.url("/holidays.ics")})
    assert preview.status_code == 200 and "国庆节" in preview.get_data(as_text=True)
    assert _closures(facility) == []


def test_page_shows_refusals_and_writes_nothing(client, lab):
    facility, _instruments, manager = lab
    login(client, manager.email)
    response = _upload(client, facility, b"<html>not a calendar</html>")
    assert response.status_code == 422
    assert "not an iCalendar file" in response.get_data(as_text=True)
    token = csrf_token(client, _page(facility))
    neither = client.post(_page(facility), data={"csrf_token": token, "url": ""})
    assert neither.status_code == 422 and "one of the two" in neither.get_data(as_text=True)
    damaged = client.post(_page(facility), data={"csrf_token": token, "payload": "%%%"})
    assert damaged.status_code == 422 and _closures(facility) == []
    no_csrf = client.post(_page(facility), data={"url": "http://127.0.0.1/x.ics"})
    assert no_csrf.status_code == 400


def test_page_is_for_the_facilitys_managers(client, lab, login_as):
    facility, _instruments, _manager = lab
    login_as("facility_manager")  # of another facility
    assert client.get(_page(facility)).status_code == 403
    token = csrf_token(client, "/login")
    assert client.post(_page(facility), data={"csrf_token": token}).status_code == 403
    assert client.get("/facilities/999999/closures/import").status_code == 404


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance"])
def test_page_refuses_other_roles(client, lab, login_as, role):
    facility, _instruments, _manager = lab
    login_as(role)
    assert client.get(_page(facility)).status_code == 403


def test_page_needs_a_login(client, lab):
    facility, _instruments, _manager = lab
    response = client.get(_page(facility))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- the command ------------------------------------------------------------------------------


def test_command_imports_a_file_and_reimports_without_change(runner, lab, tmp_path: Path):
    facility, _instruments, _manager = lab
    path = tmp_path / "holidays.ics"
    path.write_bytes(ics(NATIONAL_DAY, BERLIN_VISIT))
    result = runner.invoke(args=["closures", "import", "NANO", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Would import 2 events" in result.stdout and "created 4" in result.stdout
    assert _closures(facility) == []
    result = runner.invoke(args=["closures", "import", "NANO", str(path)])
    assert result.exit_code == 0, result.output
    assert "created 4" in result.stdout and len(_closures(facility)) == 4
    again = runner.invoke(args=["closures", "import", "NANO", str(path)])
    assert "created 0, updated 0, cancelled 0, unchanged 4" in again.stdout


def test_command_fetches_urls_and_reports_errors(runner, lab, site, tmp_path: Path):
    facility, _instruments, _manager = lab
    result = runner.invoke(args=["closures", "import", "NANO", site.url("/holidays.ics")])
    assert result.exit_code == 0, result.output
    assert len(_closures(facility)) == 2
    missing = runner.invoke(args=["closures", "import", "NOPE", site.url("/holidays.ics")])
    assert missing.exit_code == 1 and "Unknown facility code: NOPE" in missing.stderr
    gone = runner.invoke(args=["closures", "import", "NANO", site.url("/gone.ics")])
    assert gone.exit_code == 1 and "answered 404" in gone.stderr
    bad = tmp_path / "bad.ics"
    bad.write_bytes(b"nonsense")
    result = runner.invoke(args=["closures", "import", "NANO", str(bad)])
    assert result.exit_code == 1 and "not an iCalendar file" in result.stderr
