"""Billing API: adjustments -- request, list (scoped per role), approve and reject."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.billing.models import Adjustment, ChargeLine
from labbook.billing.statements import refresh_period
from labbook.extensions import db
from tests.billing.api_scene import OCTOBER, assert_422, build_scene, counts


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    scene = build_scene(api_token)
    refresh_period(OCTOBER)
    db.session.commit()
    lines = {line.team_id: line for line in db.session.scalars(sa.select(ChargeLine))}
    scene.line, scene.other_line = lines[scene.team.id], lines[scene.other_team.id]
    return scene


def _ask(client, scene, role="team_lead", **body):  # type: ignore[no-untyped-def]
    values = {"line_id": scene.line.id, "amount": "-20.00", "reason": "ran late", **body}
    return client.post("/api/v1/billing/adjustments", json=values,
                       headers=scene.headers[role])


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("other_lead", 403), ("other_manager", 403),
    ("team_lead", 201), ("facility_manager", 201), ("finance", 201), ("admin", 201),
])
def test_api_adjustment_request_roles(client, scene, role, status):
    before = counts()
    response = _ask(client, scene, role)
    assert response.status_code == status, response.get_json()
    if status == 201:
        body = response.get_json()
        assert (body["state"], body["amount"], body["period"]) == ("pending", "-20.00", None)
        assert body["line_period"] == "2026-10" and body["team_id"] == scene.team.id
    else:
        assert counts() == before


@pytest.mark.parametrize("bad,field", [
    ({"amount": "abc"}, "amount"), ({"amount": "1e3"}, "amount"),
    ({"amount": "1.234"}, "amount"), ({"amount": "0.00"}, "amount"),
    ({"amount": -5}, "amount"), ({"amount": "-200.01"}, "amount"),
    ({"reason": ""}, "reason"), ({"line_id": 999999}, "line_id"),
])
def test_api_adjustment_request_bad_input_writes_nothing(client, scene, bad, field):
    before = counts()
    assert_422(_ask(client, scene, "finance", **bad), field)
    assert counts() == before


def test_api_adjustment_approve_lands_in_open_period(client, scene):
    asked = _ask(client, scene).get_json()
    response = client.post(f"/api/v1/billing/adjustments/{asked['id']}/approve",
                           json={"note": "agreed"}, headers=scene.headers["facility_manager"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["state"], body["period"], body["decision_note"]) == ("approved", "2026-10",
                                                                      "agreed")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
        ChargeLine.kind == "adjustment")) == 1
    again = client.post(f"/api/v1/billing/adjustments/{asked['id']}/approve",
                        headers=scene.headers["finance"])
    assert again.status_code == 409


@pytest.mark.parametrize("role,status", [
    ("team_lead", 403),        # the requester (and a lead may not decide anyway)
    ("other_lead", 404), ("researcher", 404), ("other_manager", 404),
])
def test_api_adjustment_approve_refusals(client, scene, role, status):
    asked = _ask(client, scene).get_json()
    before = counts()
    response = client.post(f"/api/v1/billing/adjustments/{asked['id']}/approve",
                           headers=scene.headers[role])
    assert response.status_code == status
    assert counts() == before
    assert db.session.get(Adjustment, asked["id"]).state == "pending"


def test_api_adjustment_requester_cannot_approve_own(client, scene):
    asked = _ask(client, scene, "finance").get_json()
    response = client.post(f"/api/v1/billing/adjustments/{asked['id']}/approve",
                           headers=scene.headers["finance"])
    assert response.status_code == 403
    assert client.post(f"/api/v1/billing/adjustments/{asked['id']}/approve",
                       headers=scene.headers["finance2"]).status_code == 200


def test_api_adjustment_reject_needs_note(client, scene):
    asked = _ask(client, scene).get_json()
    path = f"/api/v1/billing/adjustments/{asked['id']}/reject"
    before = counts()
    assert_422(client.post(path, json={}, headers=scene.headers["finance"]), "note")
    assert_422(client.post(path, json={"note": "  "}, headers=scene.headers["finance"]), "note")
    assert counts() == before
    response = client.post(path, json={"note": "not our fault"},
                           headers=scene.headers["finance"])
    assert response.status_code == 200
    body = response.get_json()
    assert (body["state"], body["decision_note"], body["period"]) == (
        "rejected", "not our fault", None)


def test_api_adjustment_unknown_is_404(client, scene):
    assert client.post("/api/v1/billing/adjustments/999999/approve",
                       headers=scene.headers["finance"]).status_code == 404


def test_api_adjustments_list_scoped(client, scene):
    mine = _ask(client, scene).get_json()
    other = _ask(client, scene, "finance", line_id=scene.other_line.id).get_json()

    def ids(role, **query):  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/billing/adjustments", headers=scene.headers[role],
                              query_string=query)
        assert response.status_code == 200, response.get_json()
        return [a["id"] for a in response.get_json()["items"]]

    assert ids("finance") == [other["id"], mine["id"]]
    assert ids("facility_manager") == [other["id"], mine["id"]]
    assert ids("team_lead") == [mine["id"]]
    assert ids("other_lead") == [other["id"]]
    assert ids("other_manager") == []
    assert ids("finance", state="approved") == []
    client.post(f"/api/v1/billing/adjustments/{mine['id']}/reject", json={"note": "no"},
                headers=scene.headers["finance"])
    assert ids("finance", state="rejected") == [mine["id"]]


@pytest.mark.parametrize("role,query,status", [
    ("researcher", {}, 403), ("finance", {"state": "open"}, 422), ("admin", {}, 200),
])
def test_api_adjustments_list_refusals(client, scene, role, query, status):
    response = client.get("/api/v1/billing/adjustments", headers=scene.headers[role],
                          query_string=query)
    assert response.status_code == status
