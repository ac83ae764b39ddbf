"""Usage API: GET /api/v1/usage (managers, finance, admins) and PATCH /api/v1/usage/{id}
(managers); authorization, bad input, closed periods; both databases."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from tests import factories
from tests.care.test_usage_support import NOW, at, close_period, usage_scene


@pytest.fixture
def s(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("labbook.care.api_usage.now_utc", lambda: NOW)
    return usage_scene()


def _user(s, role: str):  # type: ignore[no-untyped-def]
    if role == "manager":
        return s.manager
    if role == "owner":
        return s.booker
    if role == "other_manager":
        return factories.make_user_with_role("facility_manager")
    return factories.make_user_with_role(role)


# -- GET /usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role, status", [
    ("manager", 200), ("finance", 200), ("admin", 200),
    ("other_manager", 403), ("researcher", 403), ("owner", 403), ("team_lead", 403),
])
def test_list_usage_access(client, api_token, s, role, status):
    headers = api_token(_user(s, role))
    response = client.get(f"/api/v1/usage?facility={s.facility.id}&month=2026-03",
                          headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.get_json()["error"]["code"] == "forbidden"


def test_list_usage_needs_a_token(client, s):
    assert client.get(f"/api/v1/usage?facility={s.facility.id}").status_code == 401


def test_list_usage_rows_in_the_facilitys_zone(client, api_token, s):
    response = client.get(f"/api/v1/usage?facility={s.facility.id}&month=2026-03",
                          headers=api_token(s.manager))
    body = response.get_json()
    assert body["facility_id"] == s.facility.id and body["month"] == "2026-03"
    assert [r["booking_id"] for r in body["items"]] == [
        s.first_local.id, s.done.id, s.no_show.id, s.walk_in.id, s.running.id]
    done = body["items"][1]
    assert done["booked_start"] == "2026-03-02T10:00:00+08:00"
    assert done["actual_start"] == "2026-03-02T10:05:00+08:00"
    assert (done["booked_minutes"], done["actual_minutes"], done["difference_minutes"]) == (
        60, 75, 15)
    assert done["overrun"] and not done["open"] and not done["no_show"]
    running = body["items"][4]
    assert running["open"] and running["actual_end"] is None and running["actual_minutes"] is None
    assert body["items"][2]["no_show"] and body["items"][3]["needs_review"]
    assert body["items"][3]["walk_in"]


def test_list_usage_defaults_to_the_current_month(client, api_token, s):
    body = client.get(f"/api/v1/usage?facility={s.facility.id}",
                      headers=api_token(s.manager)).get_json()
    assert body["month"] == "2026-03" and len(body["items"]) == 5


@pytest.mark.parametrize("query, field", [
    ("month=2026-03", "facility"),
    ("facility=abc&month=2026-03", "facility"),
    ("facility={id}&month=2026-13", "month"),
    ("facility={id}&month=March", "month"),
    ("facility={id}&colour=red", "colour"),
])
def test_list_usage_bad_parameters_are_422(client, api_token, s, query, field):
    response = client.get("/api/v1/usage?" + query.format(id=s.facility.id),
                          headers=api_token(s.manager))
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_list_usage_unknown_facility_is_404(client, api_token, s):
    response = client.get("/api/v1/usage?facility=999999", headers=api_token(s.manager))
    assert response.status_code == 404


# -- PATCH /usage/{id} ----------------------------------------------------------------------------


def _patch(client, headers, booking_id, **body):  # type: ignore[no-untyped-def]
    payload = {"checked_in_at": "2026-03-02T10:00:00+08:00",
               "checked_out_at": "2026-03-02T11:00:00+08:00", "reason": "Forgot", **body}
    return client.patch(f"/api/v1/usage/{booking_id}", json=payload, headers=headers)


def test_patch_usage_corrects_and_audits(client, api_token, s):
    response = _patch(client, api_token(s.manager), s.done.id)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["actual_end"] == "2026-03-02T11:00:00+08:00" and body["actual_minutes"] == 60
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3) and s.done.sequence == 3
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "usage.correct"))
    assert entry.actor_id == s.manager.id and entry.after["reason"] == "Forgot"


@pytest.mark.parametrize("role, status", [
    ("finance", 403), ("owner", 403), ("other_manager", 404), ("researcher", 404),
])
def test_patch_usage_forbidden(client, api_token, s, role, status):
    response = _patch(client, api_token(_user(s, role)), s.done.id)
    assert response.status_code == status
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3, 20)


@pytest.mark.parametrize("body, field", [
    ({"reason": ""}, "reason"),
    ({"checked_in_at": "2026-03-02T10:00:00"}, "checked_in_at"),
    ({"checked_out_at": "2026-03-02T09:00:00+08:00"}, "checked_out_at"),
    ({"checked_out_at": "2099-01-01T00:00:00+08:00"}, "checked_out_at"),
    ({"checked_out_at": None}, "checked_out_at"),
    ({"sequence": 3}, "sequence"),
])
def test_patch_usage_bad_input_is_422(client, api_token, s, body, field):
    response = _patch(client, api_token(s.manager), s.done.id, **body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3, 20)


def test_patch_usage_missing_reason_is_422(client, api_token, s):
    response = client.patch(f"/api/v1/usage/{s.done.id}", headers=api_token(s.manager),
                            json={"checked_in_at": "2026-03-02T10:00:00+08:00",
                                  "checked_out_at": "2026-03-02T11:00:00+08:00"})
    assert response.status_code == 422
    assert "reason" in response.get_json()["error"]["fields"]


def test_patch_usage_in_a_closed_period_is_409_period_closed(client, api_token, s):
    close_period(at(1, 0).date())
    before = (s.done.checked_in_at, s.done.checked_out_at)
    response = _patch(client, api_token(s.manager), s.done.id)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["code"], error["reason"], error["period"]) == (
        "conflict", "period_closed", f"{at(1, 0):%Y-%m}")
    db.session.expire_all()
    assert (s.done.checked_in_at, s.done.checked_out_at) == before


def test_patch_usage_unknown_booking_is_404(client, api_token, s):
    assert _patch(client, api_token(s.manager), 999999).status_code == 404


def test_patch_usage_running_session_start_only(client, api_token, s):
    response = _patch(client, api_token(s.manager), s.running.id,
                      checked_in_at="2026-03-20T17:55:00+08:00", checked_out_at=None)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["actual_start"] == "2026-03-20T17:55:00+08:00"
