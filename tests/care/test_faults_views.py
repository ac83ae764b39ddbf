"""Fault pages: reporting with a photo, visibility, triage, lists, service log, the
instrument page's care panel."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from labbook.care import faults
from labbook.care.models import FaultReport
from labbook.extensions import db
from tests.care.test_faults import GIF, NOW, PNG, scene
from tests.conftest import csrf_token, login


@pytest.fixture
def s(app):  # type: ignore[no-untyped-def]
    scn = scene()
    db.session.commit()
    return scn


def client_for(app, user):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert login(client, user.email).status_code == 302
    return client


def _report(client, instrument_id, **data):  # type: ignore[no-untyped-def]
    path = f"/instruments/{instrument_id}/faults/new"
    form = {"csrf_token": csrf_token(client, path), "severity": "degraded",
            "description": "Detector noisy", **data}
    return client.post(path, data=form, content_type="multipart/form-data")


def test_report_with_photo_and_serve_it_only_to_viewers(app, s) -> None:  # type: ignore
    client = client_for(app, s.reporter)
    response = _report(client, s.instrument.id, photo=(io.BytesIO(PNG), "shot.jpg"))
    assert response.status_code == 302
    fault = db.session.scalars(sa.select(FaultReport)).one()
    assert response.headers["Location"].endswith(f"/faults/{fault.id}")
    assert fault.photo_type == "image/png" and fault.reporter_id == s.reporter.id
    for user in (s.reporter, s.manager, s.admin):
        photo = client_for(app, user).get(f"/faults/{fault.id}/photo")
        assert photo.status_code == 200 and photo.data == PNG
        assert photo.headers["Content-Type"] == "image/png"
        assert photo.headers["X-Content-Type-Options"] == "nosniff"
    for user in (s.other, s.other_manager):
        outsider = client_for(app, user)
        assert outsider.get(f"/faults/{fault.id}/photo").status_code == 404
        assert outsider.get(f"/faults/{fault.id}").status_code == 404


def test_report_refuses_fake_photo_and_keeps_nothing(app, s) -> None:  # type: ignore
    client = client_for(app, s.reporter)
    response = _report(client, s.instrument.id, photo=(io.BytesIO(GIF), "fake.png"))
    assert response.status_code == 422
    assert "JPEG, PNG or WebP" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FaultReport)) == 0


def test_report_needs_description_and_csrf(app, s) -> None:  # type: ignore
    client = client_for(app, s.reporter)
    assert _report(client, s.instrument.id, description="").status_code == 422
    bare = client.post(f"/instruments/{s.instrument.id}/faults/new",
                       data={"severity": "down", "description": "x"})
    assert bare.status_code in (400, 422)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FaultReport)) == 0


def test_down_report_through_the_page_takes_instrument_down(app, s) -> None:  # type: ignore
    client = client_for(app, s.reporter)
    assert _report(client, s.instrument.id, severity="down").status_code == 302
    db.session.refresh(s.instrument)
    assert s.instrument.status == "down"
    page = client.get(f"/instruments/{s.instrument.id}").get_data(as_text=True)
    assert 'id="care-status" data-status="down"' in page and 'status-down' in page
    assert 'id="report-problem"' in page and "Detector noisy" in page


def test_triage_page_for_managers_only(app, s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Drift", now=NOW)
    db.session.commit()
    path = f"/faults/{fault.id}"
    reporter = client_for(app, s.reporter)
    assert 'id="triage-submit"' not in reporter.get(path).get_data(as_text=True)
    token = csrf_token(reporter, f"/instruments/{s.instrument.id}/faults/new")
    refused = reporter.post(f"{path}/triage", data={"csrf_token": token, "status": "resolved"})
    assert refused.status_code == 403
    manager = client_for(app, s.manager)
    token = csrf_token(manager, path)
    done = manager.post(f"{path}/triage", data={"csrf_token": token, "status": "resolved",
                                                "note": "Recalibrated"})
    assert done.status_code == 302
    db.session.refresh(fault)
    assert fault.status == "resolved" and fault.notes[0].note == "Recalibrated"
    assert "Recalibrated" in manager.get(path).get_data(as_text=True)
    empty = manager.post(f"{path}/triage", data={"csrf_token": token, "status": "resolved"})
    assert empty.status_code == 422


def test_facility_fault_list_open_first_for_managers(app, s) -> None:  # type: ignore
    done = faults.report_fault(s.reporter, s.instrument, "cosmetic", "Old dent", now=NOW)
    faults.triage_fault(s.manager, done, "resolved", "", now=NOW)
    faults.report_fault(s.reporter, s.instrument, "degraded", "New drift", now=NOW)
    db.session.commit()
    path = f"/facilities/{s.facility.id}/faults"
    html = client_for(app, s.manager).get(path).get_data(as_text=True)
    assert html.index("New drift") < html.index("Old dent")
    assert client_for(app, s.other).get(path).status_code == 403
    assert client_for(app, s.other_manager).get(path).status_code == 403


def test_instrument_fault_history_shows_own_reports_to_researchers(app, s) -> None:  # type: ignore
    faults.report_fault(s.reporter, s.instrument, "cosmetic", "Mine", now=NOW)
    faults.report_fault(s.other, s.instrument, "cosmetic", "Theirs", now=NOW)
    db.session.commit()
    path = f"/instruments/{s.instrument.id}/faults"
    mine = client_for(app, s.reporter).get(path).get_data(as_text=True)
    assert "Mine" in mine and "Theirs" not in mine
    both = client_for(app, s.manager).get(path).get_data(as_text=True)
    assert "Mine" in both and "Theirs" in both


def test_service_log_page_names_people_for_managers_only(app, s) -> None:  # type: ignore
    faults.report_fault(s.reporter, s.instrument, "down", "Pump dead", now=NOW)
    db.session.commit()
    path = f"/instruments/{s.instrument.id}/service-log"
    public = client_for(app, s.other).get(path)
    assert public.status_code == 200 and "Pump dead" in public.get_data(as_text=True)
    assert s.reporter.name not in public.get_data(as_text=True)
    assert s.reporter.name in client_for(app, s.manager).get(path).get_data(as_text=True)


def test_fault_pages_need_login(app, s) -> None:  # type: ignore
    client = app.test_client()
    for path in (f"/instruments/{s.instrument.id}/faults/new",
                 f"/instruments/{s.instrument.id}/service-log",
                 f"/facilities/{s.facility.id}/faults"):
        assert client.get(path).status_code in (302, 401)
