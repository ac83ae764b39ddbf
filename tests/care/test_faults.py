"""Fault reports: the service (labbook/care/faults.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.errors import NotAllowed
from labbook.bookings.models import Outage
from labbook.care import faults
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests import factories

NOW = datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 in Shanghai
H = timedelta(hours=1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


def scene(**facility_kw):  # type: ignore[no-untyped-def]
    """A facility with a manager, an instrument, a researcher and an outsider."""
    facility = factories.make_facility(**facility_kw)
    manager = factories.make_user_with_role("facility_manager", facility=facility,
                                            name="Mona Manager")
    instrument = factories.make_instrument(facility)
    reporter = factories.make_user_with_role("researcher", name="Rita Reporter")
    other = factories.make_user_with_role("researcher")
    other_manager = factories.make_user_with_role("facility_manager")
    admin = factories.make_user(roles=("admin",))
    return SimpleNamespace(facility=facility, manager=manager, instrument=instrument,
                           reporter=reporter, other=other, other_manager=other_manager,
                           admin=admin)


def kinds_for(user) -> list[str]:  # type: ignore[no-untyped-def]
    return list(db.session.scalars(
        sa.select(Notification.kind).where(Notification.user_id == user.id)
        .order_by(Notification.id)))


@pytest.fixture
def s(app):  # type: ignore[no-untyped-def]
    return scene()


def test_report_down_opens_outage_and_displaces_bookings(s) -> None:  # type: ignore
    booking = factories.make_booking(s.instrument, start=NOW + H, end=NOW + 2 * H)
    fault = faults.report_fault(s.reporter, s.instrument, "down", "  Vacuum pump dead ",
                                now=NOW)
    outage = db.session.get(Outage, fault.outage_id)
    assert (outage.start_at, outage.end_at, outage.outage_kind) == (NOW, None, "repair")
    assert outage.created_by_id is None  # the system acted, not the reporter
    assert fault.description == "Vacuum pump dead"
    assert booking.state == "cancelled" and booking.state_reason == "instrument unavailable"
    assert s.instrument.status == "down"
    assert kinds_for(s.manager) == ["fault_reported"]
    assert kinds_for(booking.user) == ["outage_affects_booking"]
    assert kinds_for(s.reporter) == []


def test_resolving_ends_outage_restores_status_and_tells_followers(s) -> None:  # type: ignore
    booking = factories.make_booking(s.instrument, start=NOW + H, end=NOW + 2 * H)
    fault = faults.report_fault(s.reporter, s.instrument, "down", "No beam", now=NOW)
    faults.triage_fault(s.manager, fault, "investigating", "Looking at it", now=NOW + H)
    assert fault.outage.end_at is None and s.instrument.status == "down"
    faults.triage_fault(s.manager, fault, "resolved", "Filament replaced", now=NOW + 3 * H)
    assert fault.outage.end_at == NOW + 3 * H and fault.outage.state == "scheduled"
    assert fault.resolved_at == NOW + 3 * H and fault.resolved_by_id == s.manager.id
    assert s.instrument.status == "available"
    assert kinds_for(s.reporter) == ["fault_updated", "fault_updated"]
    assert kinds_for(booking.user) == ["outage_affects_booking", "fault_updated",
                                       "fault_updated"]
    assert kinds_for(s.manager) == ["fault_reported"]  # not told of their own triage
    assert [(n.status, n.note) for n in fault.notes] == [
        ("investigating", "Looking at it"), ("resolved", "Filament replaced")]
    changes = db.session.scalars(sa.select(AuditEntry.after).where(
        AuditEntry.action == "instrument.status",
        AuditEntry.object_id == str(s.instrument.id)).order_by(AuditEntry.id)).all()
    assert changes == [{"status": "down"}, {"status": "available"}]


def test_note_only_triage_tells_nobody(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "cosmetic", "Scratched panel", now=NOW)
    entry = faults.triage_fault(s.manager, fault, None, "Cosmetic only", now=NOW + H)
    assert entry.status is None and fault.status == "open"
    assert kinds_for(s.reporter) == []


def test_reopening_a_resolved_fault_clears_resolution(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Drifts", now=NOW)
    faults.triage_fault(s.manager, fault, "resolved", "", now=NOW + H)
    assert s.instrument.status == "available"
    faults.triage_fault(s.manager, fault, "investigating", "Drifts again", now=NOW + 2 * H)
    assert fault.resolved_at is None and fault.resolved_by_id is None
    assert s.instrument.status == "limited"


def test_down_report_during_running_session_starts_outage_after_it(s) -> None:  # type: ignore
    running = factories.make_booking(s.instrument, start=NOW - H, end=NOW + H, state="in_use")
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Stage stuck", now=NOW)
    assert fault.outage.start_at == NOW + H and running.state == "in_use"
    assert s.instrument.status == "down"  # the open down fault says so already


def test_down_report_stops_before_a_scheduled_outage(s) -> None:  # type: ignore
    from labbook.bookings.outages import schedule_outage

    later = schedule_outage(s.manager, s.instrument, NOW + 5 * H, NOW + 6 * H, "preventive",
                            "PM", now=NOW).outage
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Leak", now=NOW)
    assert (fault.outage.start_at, fault.outage.end_at) == (NOW, later.start_at)


def test_down_report_under_open_outage_opens_none(s) -> None:  # type: ignore
    from labbook.bookings.outages import schedule_outage

    schedule_outage(s.manager, s.instrument, NOW - H, None, "repair", "Broken", now=NOW)
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Still broken", now=NOW)
    assert fault.outage_id is None and s.instrument.status == "down"


def test_resolving_a_not_yet_started_outage_cancels_it(s) -> None:  # type: ignore
    factories.make_booking(s.instrument, start=NOW - H, end=NOW + H, state="in_use")
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Stage stuck", now=NOW)
    faults.triage_fault(s.manager, fault, "resolved", "False alarm", now=NOW + timedelta(
        minutes=10))
    assert fault.outage.state == "cancelled"


def test_degraded_report_limits_without_outage(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Noisy detector", now=NOW)
    assert fault.outage_id is None and s.instrument.status == "limited"


@pytest.mark.parametrize("photo, kind", [(PNG, "image/png"), (JPEG, "image/jpeg"),
                                         (WEBP, "image/webp")])
def test_report_keeps_photo_with_sniffed_type(s, photo, kind) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "cosmetic", "Dent", photo=photo,
                                now=NOW)
    assert (fault.photo, fault.photo_type) == (photo, kind)


@pytest.mark.parametrize("photo", [
    GIF,  # wrong type
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",  # a script carrier
    b"RIFF\x00\x00\x00\x00AVI LIST",  # RIFF but not WebP
    b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024),  # too big (5 MB + 3 bytes)
])
def test_report_refuses_bad_photos(s, photo) -> None:  # type: ignore
    with pytest.raises(ValidationError) as info:
        faults.report_fault(s.reporter, s.instrument, "cosmetic", "Dent", photo=photo, now=NOW)
    assert set(info.value.fields) == {"photo"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(faults.FaultReport)) == 0


def test_report_refuses_bad_severity_and_empty_description(s) -> None:  # type: ignore
    with pytest.raises(ValidationError) as info:
        faults.report_fault(s.reporter, s.instrument, "broken", "   ", now=NOW)
    assert set(info.value.fields) == {"severity", "description"}


def test_triage_needs_a_manager_of_the_facility(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Noisy", now=NOW)
    for who in (s.reporter, s.other_manager):
        with pytest.raises(NotAllowed):
            faults.triage_fault(who, fault, "resolved", "", now=NOW)
    faults.triage_fault(s.admin, fault, "resolved", "", now=NOW)
    assert fault.status == "resolved"


def test_triage_refuses_unknown_status_and_empty_step(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Noisy", now=NOW)
    with pytest.raises(ValidationError) as info:
        faults.triage_fault(s.manager, fault, "fixed", "", now=NOW)
    assert set(info.value.fields) == {"status"}
    with pytest.raises(ValidationError) as info:
        faults.triage_fault(s.manager, fault, "open", "  ", now=NOW)
    assert set(info.value.fields) == {"note"}


def test_who_may_see_a_fault(s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "cosmetic", "Dent", now=NOW)
    seen = {u.id: faults.can_see(u, fault) for u in (
        s.reporter, s.manager, s.admin, s.other, s.other_manager)}
    assert seen == {s.reporter.id: True, s.manager.id: True, s.admin.id: True,
                    s.other.id: False, s.other_manager.id: False}
    visible = {u.id: db.session.scalars(faults.visible_faults(u)).all() for u in (
        s.reporter, s.manager, s.admin, s.other, s.other_manager)}
    assert [len(visible[u.id]) for u in (s.reporter, s.manager, s.admin, s.other,
                                         s.other_manager)] == [1, 1, 1, 0, 0]
