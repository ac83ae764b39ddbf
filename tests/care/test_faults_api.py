"""Fault reports, service log and downtime in the JSON API."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from labbook.care import faults
from labbook.care.models import FaultReport
from labbook.extensions import db
from tests.care.test_faults import NOW, scene


@pytest.fixture
def s(app, api_token):  # type: ignore[no-untyped-def]
    scn = scene()
    db.session.commit()
    scn.h = {name: api_token(getattr(scn, name)) for name in (
        "reporter", "manager", "admin", "other", "other_manager")}
    return scn


def test_post_fault_down_opens_outage(client, s) -> None:  # type: ignore
    response = client.post("/api/v1/faults", headers=s.h["reporter"], json={
        "instrument_id": s.instrument.id, "severity": "down", "description": "Dead"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "open" and body["outage_id"] is not None
    assert body["reporter_id"] == s.reporter.id and body["has_photo"] is False
    assert response.headers["Location"].endswith(f"/api/v1/faults/{body['id']}")
    db.session.refresh(s.instrument)
    assert s.instrument.status == "down"


@pytest.mark.parametrize("payload, fields", [
    ({"severity": "bad", "description": "x"}, {"severity", "instrument_id"}),
    ({"instrument_id": 1, "severity": "down"}, {"description"}),
    ({"instrument_id": 1, "severity": "down", "description": "  "}, {"description"}),
    ({"instrument_id": "1", "severity": "down", "description": "x", "photo": "AAAA"},
     {"instrument_id", "photo"}),
])
def test_post_fault_bad_input(client, s, payload, fields) -> None:  # type: ignore
    response = client.post("/api/v1/faults", headers=s.h["reporter"], json=payload)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == fields
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FaultReport)) == 0


def test_post_fault_unknown_instrument_and_no_token(client, s) -> None:  # type: ignore
    body = {"instrument_id": 2**31 - 1, "severity": "cosmetic", "description": "x"}
    assert client.post("/api/v1/faults", headers=s.h["reporter"], json=body).status_code == 404
    assert client.post("/api/v1/faults", json=body).status_code == 401


def test_list_and_get_show_only_visible_faults(client, s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "degraded", "Drift", now=NOW)
    faults.report_fault(s.other, s.instrument, "cosmetic", "Dent", now=NOW)
    db.session.commit()
    totals = {name: client.get("/api/v1/faults", headers=s.h[name]).json["total"]
              for name in s.h}
    assert totals == {"reporter": 1, "manager": 2, "admin": 2, "other": 1, "other_manager": 0}
    filtered = client.get(f"/api/v1/faults?facility={s.facility.id}&status=unresolved"
                          f"&instrument={s.instrument.id}", headers=s.h["manager"])
    assert filtered.json["total"] == 2
    assert client.get("/api/v1/faults?status=resolved", headers=s.h["manager"]).json[
        "total"] == 0
    assert client.get("/api/v1/faults?status=nope", headers=s.h["manager"]).status_code == 422
    path = f"/api/v1/faults/{fault.id}"
    assert {n: client.get(path, headers=s.h[n]).status_code for n in s.h} == {
        "reporter": 200, "manager": 200, "admin": 200, "other": 404, "other_manager": 404}


def test_patch_fault_triage(client, s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Dead", now=NOW)
    db.session.commit()
    path = f"/api/v1/faults/{fault.id}"
    body = {"status": "resolved", "note": "Fixed"}
    assert client.patch(path, headers=s.h["reporter"], json=body).status_code == 403
    assert client.patch(path, headers=s.h["other_manager"], json=body).status_code == 404
    assert client.patch(path, headers=s.h["manager"], json={"status": "gone"}).status_code == 422
    assert client.patch(path, headers=s.h["manager"], json={}).status_code == 422
    response = client.patch(path, headers=s.h["manager"], json=body)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "resolved" and response.json["resolved_at"]
    assert response.json["notes"][-1]["note"] == "Fixed"
    db.session.refresh(s.instrument)
    assert s.instrument.status == "available"


def test_service_log_api_hides_names_and_paginates(client, s) -> None:  # type: ignore
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Dead", now=NOW)
    faults.triage_fault(s.manager, fault, "resolved", "Fixed", now=NOW)
    db.session.commit()
    path = f"/api/v1/instruments/{s.instrument.id}/service-log"
    public = client.get(path, headers=s.h["other"]).json
    assert public["total"] >= 4 and {i["person"] for i in public["items"]} == {None}
    managed = client.get(f"{path}?per_page=2&page=1", headers=s.h["manager"]).json
    assert len(managed["items"]) == 2 and managed["total"] == public["total"]
    assert s.reporter.name in {i["person"] for i in client.get(
        path, headers=s.h["manager"]).json["items"]}
    assert client.get(f"{path}?page=0", headers=s.h["manager"]).status_code == 422
    assert client.get("/api/v1/instruments/2147483647/service-log",
                      headers=s.h["other"]).status_code == 404


def test_downtime_api(client, s) -> None:  # type: ignore
    past = datetime(2025, 3, 3, 2, 0, tzinfo=timezone.utc)  # the API counts up to real now
    fault = faults.report_fault(s.reporter, s.instrument, "down", "Dead", now=past)
    faults.triage_fault(s.manager, fault, "resolved", "Fixed", now=past.replace(hour=5))
    db.session.commit()
    path = f"/api/v1/instruments/{s.instrument.id}/downtime"
    body = client.get(f"{path}?month=2025-03", headers=s.h["other"]).json
    assert body["unplanned_hours"] == "3.00" and body["planned_hours"] == "0.00"
    assert body["mean_time_to_repair_hours"] == "3.00" and body["month"] == "2025-03"
    assert client.get(path, headers=s.h["other"]).status_code == 200
    for bad in ("2030-13", "2030-1", "jan", "2030-01-01"):
        assert client.get(f"{path}?month={bad}", headers=s.h["other"]).status_code == 422
