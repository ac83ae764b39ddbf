"""Billing API: periods, statements (scoped per role), the checklist and the close, and
the close lock seen through the API."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.billing.models import BillingPeriod, ChargeLine, Statement
from labbook.billing.closing import close_period
from labbook.billing.periods import get_period
from labbook.extensions import db
from tests import factories
from tests.billing.api_scene import OCTOBER, build_scene, counts, local


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return build_scene(api_token)


def _statements(client, headers, month="2026-10", **query):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/billing/periods/{month}/statements", headers=headers,
                      query_string=query)


def test_api_statements_finance_sees_every_team_as_drafts(client, scene):
    response = _statements(client, scene.headers["finance"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["month"] == "2026-10" and body["state"] == "draft"
    by_team = {s["team"]["id"]: s for s in body["items"]}
    assert set(by_team) == {scene.team.id, scene.other_team.id}
    mine = by_team[scene.team.id]
    assert (mine["number"], mine["state"], mine["customer_class"], mine["tax_rate"]) == (
        None, "draft", "internal", "0.00")
    assert (mine["subtotal"], mine["tax"], mine["total"]) == ("200.00", "0.00", "200.00")
    assert mine["accounts"] == {scene.account.code: "200.00"}
    [line] = mine["lines"]
    assert line["kind"] == "time" and line["charge_type"] == "instrument_hour"
    assert (line["quantity"], line["unit_amount"], line["amount"]) == ("2.00", "100.00",
                                                                       "200.00")
    assert line["account"] == scene.account.code and line["missing_rate"] is False
    assert line["occurred_at"] == "2026-10-05T10:00:00+08:00"
    assert isinstance(line["explanation"], dict) and line["explanation"]


def test_api_statements_refresh_is_idempotent(client, scene):
    first = _statements(client, scene.headers["finance"]).get_json()
    lines = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine))
    again = _statements(client, scene.headers["finance"]).get_json()
    assert again["items"] == first["items"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine)) == lines == 2


def test_api_statements_lead_sees_only_led_teams(client, scene):
    body = _statements(client, scene.headers["team_lead"]).get_json()
    assert [s["team"]["id"] for s in body["items"]] == [scene.team.id]
    own = _statements(client, scene.headers["team_lead"], team=scene.team.id)
    assert own.status_code == 200 and len(own.get_json()["items"]) == 1
    other = _statements(client, scene.headers["team_lead"], team=scene.other_team.id)
    assert other.status_code == 403


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("facility_manager", 403), ("team_lead", 200), ("finance", 200),
    ("admin", 200),
])
def test_api_statements_roles(client, scene, role, status):
    assert _statements(client, scene.headers[role]).status_code == status


def test_api_statements_bad_month_is_404(client, scene):
    assert _statements(client, scene.headers["finance"], month="2026-13").status_code == 404


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 403), ("finance", 200),
])
def test_api_periods_list_roles(client, scene, role, status):
    assert client.get("/api/v1/billing/periods",
                      headers=scene.headers[role]).status_code == status


def test_api_periods_list_leaves_out_empty_rows_made_by_lock_checks(client, scene):
    _statements(client, scene.headers["finance"])  # October's lines exist now
    for month in (OCTOBER.replace(month=3), OCTOBER.replace(month=4)):
        get_period(month)  # as a lock check for a rate's first month makes it
    close_period(None, OCTOBER.replace(month=4), force=True)
    db.session.commit()
    months = [p["month"] for p in client.get(
        "/api/v1/billing/periods", headers=scene.headers["finance"]).get_json()["items"]]
    assert "2026-10" in months and "2026-04" in months  # with lines; closed
    assert "2026-03" not in months  # empty and open: not worth a row
    assert months == sorted(months, reverse=True)


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 403), ("finance", 200),
    ("admin", 200),
])
def test_api_checklist_roles(client, scene, role, status):
    response = client.get("/api/v1/billing/periods/2026-10/checklist",
                          headers=scene.headers[role])
    assert response.status_code == status
    if status == 200:
        body = response.get_json()
        assert body["blocking"] is False and body["warnings"] is False
        assert body["unsettled"] == [] and body["state"] == "draft"


@pytest.mark.parametrize("role", ["researcher", "team_lead", "facility_manager"])
def test_api_close_refused_for_non_finance(client, scene, role):
    before = counts()
    response = client.post("/api/v1/billing/periods/2026-10/close", headers=scene.headers[role])
    assert response.status_code == 403
    assert counts() == before


def test_api_close_blocked_by_checklist(client, scene):
    factories.make_booking(scene.instrument, scene.users["researcher"],
                           start=local(10, 20, 10), end=local(10, 20, 11), state="confirmed")
    db.session.commit()
    before = counts()
    response = client.post("/api/v1/billing/periods/2026-10/close", json={"force": True},
                           headers=scene.headers["finance"])
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["reason"] == "checklist" and error["forceable"] is False
    assert len(error["checklist"]["unsettled"]) == 1
    assert counts() == before


def test_api_close_not_ended_and_bad_body(client, scene):
    headers = scene.headers["finance"]
    response = client.post("/api/v1/billing/periods/2026-11/close", headers=headers)
    assert response.status_code == 409 and response.get_json()["error"]["reason"] == "not_ended"
    response = client.post("/api/v1/billing/periods/2026-10/close", json={"force": "yes"},
                           headers=headers)
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Statement)) == 0


def test_api_close_lock_end_to_end(client, scene):
    finance = scene.headers["finance"]
    response = client.post("/api/v1/billing/periods/2026-10/close", headers=finance)
    assert response.status_code == 200, response.get_json()
    period = response.get_json()
    assert period["month"] == "2026-10" and period["state"] == "closed"
    assert period["total"] == "300.00" and period["closed_at"]
    closed = _statements(client, finance).get_json()
    assert all(s["state"] == "closed" and s["number"].startswith("LB-") for s in closed["items"])

    twice = client.post("/api/v1/billing/periods/2026-10/close", headers=finance)
    assert twice.status_code == 409
    assert twice.get_json()["error"]["reason"] == "already_closed"

    before = counts()
    rate = client.post("/api/v1/rates", headers=finance, json={
        "instrument_id": scene.instrument.id, "customer_class": "internal",
        "charge_type": "instrument_hour", "amount": "150.00", "effective_from": "2026-10-15"})
    assert rate.status_code == 409
    assert rate.get_json()["error"]["reason"] == "period_closed"
    assert counts() == before

    line_id = next(s for s in closed["items"] if s["team"]["id"] == scene.team.id)["lines"][0]
    asked = client.post("/api/v1/billing/adjustments", headers=scene.headers["team_lead"],
                        json={"line_id": line_id["id"], "amount": "-50.00",
                              "reason": "instrument fault"})
    assert asked.status_code == 201, asked.get_json()
    approved = client.post(f"/api/v1/billing/adjustments/{asked.get_json()['id']}/approve",
                           headers=finance)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["period"] == "2026-11"
    assert approved.get_json()["line_period"] == "2026-10"

    after = _statements(client, finance).get_json()
    assert after["items"] == closed["items"]
    november = _statements(client, finance, month="2026-11").get_json()
    [credit] = [line for s in november["items"] for line in s["lines"]
                if line["kind"] == "adjustment"]
    assert credit["amount"] == "-50.00"
    listed = client.get("/api/v1/billing/periods", headers=finance).get_json()["items"]
    assert {p["month"]: p["state"] for p in listed} == {"2026-11": "draft",
                                                        "2026-10": "closed"}
    assert db.session.scalar(sa.select(BillingPeriod.closed_at).where(
        BillingPeriod.month == OCTOBER)) is not None
