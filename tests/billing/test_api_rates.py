"""Billing API: rate cards (add, draft, publish, delete drafts, list, preview) and the
billing policy fields of PATCH /api/v1/instruments/{id}."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from labbook.billing.models import BillingPolicy, Rate
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests.billing.api_scene import assert_422, build_scene, counts


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return build_scene(api_token)


def _rate(scene, **overrides):  # type: ignore[no-untyped-def]
    return {"instrument_id": scene.instrument.id, "customer_class": "internal",
            "charge_type": "instrument_hour", "amount": "150.00",
            "effective_from": "2026-12-01", "note": "2027 card", **overrides}


def test_api_rates_create_published(client, scene):
    response = client.post("/api/v1/rates", json=_rate(scene), headers=scene.headers["finance"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["amount"] == "150.00" and body["published"] is True
    assert body["effective_from"] == "2026-12-01" and body["customer_class"] == "internal"
    rate = db.session.get(Rate, body["id"])
    assert rate.amount == Decimal("150.00") and rate.published_at is not None


def test_api_rates_create_draft_then_publish(client, scene):
    headers = scene.headers["finance"]
    body = client.post("/api/v1/rates", json=_rate(scene, publish=False, amount="99.125"),
                       headers=headers).get_json()
    assert body["published"] is False and body["amount"] == "99.125"
    listed = client.get("/api/v1/rates", headers=headers,
                        query_string={"instrument_id": scene.instrument.id}).get_json()
    assert body["id"] not in [r["id"] for r in listed["items"]]
    listed = client.get("/api/v1/rates", headers=headers, query_string={
        "instrument_id": scene.instrument.id, "include_drafts": "true"}).get_json()
    assert body["id"] in [r["id"] for r in listed["items"]]
    published = client.post(f"/api/v1/rates/{body['id']}/publish", headers=headers)
    assert published.status_code == 200 and published.get_json()["published"] is True
    again = client.post(f"/api/v1/rates/{body['id']}/publish", headers=headers)
    assert again.status_code == 409


@pytest.mark.parametrize("bad,field", [
    ({"amount": "-1.00"}, "amount"), ({"amount": "1e3"}, "amount"),
    ({"amount": "abc"}, "amount"), ({"amount": "1.23456"}, "amount"),
    ({"amount": 120}, "amount"), ({"customer_class": "nope"}, "customer_class"),
    ({"charge_type": "per_minute"}, "charge_type"), ({"charge_type": "unit"}, "charge_type"),
    ({"effective_from": "2026-13-01"}, "effective_from"),
    ({"instrument_id": 999999}, "instrument_id"), ({"publish": "yes"}, "publish"),
])
def test_api_rates_create_bad_input_writes_nothing(client, scene, bad, field):
    before = counts()
    response = client.post("/api/v1/rates", json=_rate(scene, **bad),
                           headers=scene.headers["finance"])
    assert_422(response, field)
    assert counts() == before


def test_api_rates_create_without_effective_from_is_422(client, scene):
    body = _rate(scene)
    del body["effective_from"]
    before = counts()
    assert_422(client.post("/api/v1/rates", json=body, headers=scene.headers["finance"]),
               "effective_from")
    assert counts() == before


def test_api_rates_same_key_same_day_is_422(client, scene):
    headers = scene.headers["finance"]
    assert client.post("/api/v1/rates", json=_rate(scene), headers=headers).status_code == 201
    before = counts()
    assert_422(client.post("/api/v1/rates", json=_rate(scene), headers=headers),
               "effective_from")
    assert counts() == before


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 403), ("admin", 201),
])
def test_api_rates_create_roles(client, scene, role, status):
    before = counts()
    response = client.post("/api/v1/rates", json=_rate(scene), headers=scene.headers[role])
    assert response.status_code == status
    if status == 403:
        assert counts() == before


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 200),
    ("other_manager", 200), ("finance", 200), ("admin", 200),
])
def test_api_rates_list_roles(client, scene, role, status):
    response = client.get("/api/v1/rates", headers=scene.headers[role])
    assert response.status_code == status
    if status == 200:
        assert [r["id"] for r in response.get_json()["items"]] == [scene.rate.id]


def test_api_rates_delete_draft_only(client, scene):
    headers = scene.headers["finance"]
    draft = client.post("/api/v1/rates", json=_rate(scene, publish=False),
                        headers=headers).get_json()
    assert client.delete(f"/api/v1/rates/{draft['id']}",
                         headers=scene.headers["facility_manager"]).status_code == 403
    response = client.delete(f"/api/v1/rates/{draft['id']}", headers=headers)
    assert response.status_code == 204 and response.data == b""
    assert db.session.get(Rate, draft["id"]) is None
    before = counts()
    refused = client.delete(f"/api/v1/rates/{scene.rate.id}", headers=headers)
    assert refused.status_code == 409
    assert counts() == before
    assert client.delete("/api/v1/rates/999999", headers=headers).status_code == 404


def test_api_rates_preview_per_team(client, scene):
    headers = scene.headers["finance"]
    draft = _rate(scene, publish=False, amount="150.00", effective_from="2026-12-01")
    assert client.post("/api/v1/rates", json=draft, headers=headers).status_code == 201
    before = counts()
    response = client.get("/api/v1/billing/periods/2026-10/preview", headers=headers,
                          query_string={"day": "2026-12-01"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert counts() == before  # writes nothing
    mine = next(d for d in body["items"] if d["team"]["id"] == scene.team.id)
    assert mine == {"team": {"id": scene.team.id, "name": scene.team.name},
                    "current": "200.00", "preview": "300.00", "delta": "100.00",
                    "lines_changed": 1}
    assert body["total_delta"] == "150.00" and body["day"] == "2026-12-01"


@pytest.mark.parametrize("role,query,status", [
    ("facility_manager", {}, 403), ("team_lead", {}, 403), ("finance", {"day": "x"}, 422),
    ("finance", {"day": "2026-09-30"}, 422), ("admin", {}, 200),
])
def test_api_rates_preview_refusals(client, scene, role, query, status):
    response = client.get("/api/v1/billing/periods/2026-10/preview",
                          headers=scene.headers[role], query_string=query)
    assert response.status_code == status


def test_api_rates_preview_bad_month_is_404(client, scene):
    assert client.get("/api/v1/billing/periods/2026-1/preview",
                      headers=scene.headers["finance"]).status_code == 404


# -- billing policy on the instrument -------------------------------------------------------

POLICY = {"billing_basis": "actual", "billing_increment_minutes": 30,
          "minimum_charge_minutes": 60, "late_cancel_fraction": "0.25",
          "no_show_fraction": "0.8",
          "session_cap": {"from": "22:00", "to": "07:00", "max_minutes": 240}}


def test_api_instrument_policy_defaults_in_output(client, scene):
    body = client.get(f"/api/v1/instruments/{scene.instrument.id}",
                      headers=scene.headers["researcher"]).get_json()
    assert {k: body[k] for k in POLICY} == {
        "billing_basis": "booked", "billing_increment_minutes": 15,
        "minimum_charge_minutes": 0, "late_cancel_fraction": "0.5", "no_show_fraction": "1",
        "session_cap": None}


def test_api_instrument_policy_patch_and_list(client, scene):
    response = client.patch(f"/api/v1/instruments/{scene.instrument.id}",
                            json={**POLICY, "location": "Room 5"},
                            headers=scene.headers["facility_manager"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body[k] for k in POLICY} == POLICY and body["location"] == "Room 5"
    policy = db.session.get(BillingPolicy, scene.instrument.id)
    assert (policy.basis, policy.cap_max_minutes) == ("actual", 240)
    listed = client.get("/api/v1/instruments", headers=scene.headers["researcher"],
                        query_string={"facility": scene.instrument.facility_id}).get_json()
    [item] = listed["items"]
    assert item["session_cap"] == POLICY["session_cap"]
    cleared = client.patch(f"/api/v1/instruments/{scene.instrument.id}",
                           json={"session_cap": None}, headers=scene.headers["admin"])
    assert cleared.get_json()["session_cap"] is None
    assert cleared.get_json()["billing_basis"] == "actual"


@pytest.mark.parametrize("bad", [
    {"billing_basis": "hourly", "slot_minutes": -5},
    {"late_cancel_fraction": "1.5", "name": ""},
    {"no_show_fraction": "abc", "session_cap": {"from": "25:00", "to": "07:00",
                                                "max_minutes": 10}},
    {"billing_increment_minutes": 0, "minimum_charge_minutes": "60"},
])
def test_api_instrument_policy_and_fields_errors_in_one_422(client, scene, bad):
    before = counts()
    policy_before = db.session.scalar(sa.select(sa.func.count()).select_from(BillingPolicy))
    name = scene.instrument.name
    response = client.patch(f"/api/v1/instruments/{scene.instrument.id}",
                            json={**bad, "location": "Changed"},
                            headers=scene.headers["facility_manager"])
    assert_422(response, *bad)
    assert counts() == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BillingPolicy)) == \
        policy_before
    instrument = db.session.get(Instrument, scene.instrument.id)
    assert (instrument.name, instrument.location) == (name, scene.instrument.location)


@pytest.mark.parametrize("role,status", [
    ("finance", 403), ("other_manager", 403), ("team_lead", 403), ("facility_manager", 200),
])
def test_api_instrument_policy_patch_roles(client, scene, role, status):
    response = client.patch(f"/api/v1/instruments/{scene.instrument.id}",
                            json={"billing_basis": "max"}, headers=scene.headers[role])
    assert response.status_code == status
    stored = db.session.get(BillingPolicy, scene.instrument.id)
    assert (stored is not None and stored.basis == "max") == (status == 200)


def test_api_rates_effective_date_is_a_date(client, scene):
    body = client.post("/api/v1/rates", json=_rate(scene, effective_from="2027-01-01"),
                       headers=scene.headers["finance"]).get_json()
    assert db.session.get(Rate, body["id"]).effective_from == date(2027, 1, 1)
