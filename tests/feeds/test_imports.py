"""Closure import from iCalendar (labbook/feeds/imports.py, its pages and its command): every
event becomes a closure on every instrument of the facility, all-day events on the
facility's wall clock; importing again updates by UID; cancelled events and bookings inside
a closure are cancelled, owners told; a dry run previews exactly; anything that cannot be
placed stops the whole import with a message naming the problem and writes nothing.
Reading the file is tested in test_import_parse.py, fetching by URL in test_import_fetch.py."""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings import outages, services
from labbook.bookings.models import Booking, Outage
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests import factories
from tests.conftest import csrf_token, login
from tests.feeds.import_support import (
    BERLIN_VISIT,
    NATIONAL_DAY,
    NOW,
    UTC,
    _closures,
    _count,
    _import,
    _snapshot,
    ics,
)

HOUR = timedelta(hours=1)


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


def test_closure_cancelled_by_a_manager_stays_cancelled(lab):
    facility, instruments, manager = lab
    _import(facility, manager, ics(NATIONAL_DAY))
    kept_open = _closures(facility, Outage.instrument_id == instruments[0].id)[0]
    outages.cancel_outage(manager, kept_open, now=NOW)
    result = _import(facility, manager, ics(NATIONAL_DAY))
    assert dict(result.counts) == {"unchanged": 2}
    assert db.session.get(Outage, kept_open.id).state == "cancelled"


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


def test_only_the_facilitys_managers_may_import(lab):
    facility, _instruments, _manager = lab
    for role in ("researcher", "team_lead", "finance", "facility_manager"):
        with pytest.raises(Forbidden):
            _import(facility, factories.make_user_with_role(role), ics(NATIONAL_DAY))
    admin = factories.make_user_with_role("admin")
    assert _import(facility, admin, ics(NATIONAL_DAY)).counts["created"] == 2


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
