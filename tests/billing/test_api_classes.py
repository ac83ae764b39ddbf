"""Billing API: customer classes, a team's billing details, consumables and account
balances -- happy paths, bad input (422, nothing written) and the role matrix."""
from __future__ import annotations

from decimal import Decimal

import pytest

from labbook.billing.models import Consumable, CustomerClass
from labbook.extensions import db
from labbook.teams.models import Team
from tests.billing.api_scene import ROLES, assert_422, build_scene, counts


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return build_scene(api_token)


NEW_CLASS = {"code": "government", "name": "Government", "name_zh": "政府", "tax_rate": "0.065"}


@pytest.mark.parametrize("role", ROLES)
def test_api_classes_list_for_every_caller(client, scene, role):
    response = client.get("/api/v1/customer-classes", headers=scene.headers[role])
    assert response.status_code == 200
    items = {c["code"]: c for c in response.get_json()["items"]}
    assert items["internal"]["tax_rate"] == "0.00"
    assert items["industry"] == {"code": "industry", "name": "Industry", "name_zh": "企业",
                                 "tax_rate": "0.06"}


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 403), ("finance", 201),
    ("admin", 201),
])
def test_api_classes_create_roles(client, scene, role, status):
    before = counts()
    response = client.post("/api/v1/customer-classes", json=NEW_CLASS,
                           headers=scene.headers[role])
    assert response.status_code == status, response.get_json()
    if status == 201:
        assert response.get_json() == NEW_CLASS
        assert db.session.get(CustomerClass, "government").tax_rate == Decimal("0.065")
    else:
        assert response.get_json()["error"]["code"] == "forbidden"
        assert counts() == before


@pytest.mark.parametrize("bad,field", [
    ({"tax_rate": "-0.01"}, "tax_rate"), ({"tax_rate": "1e3"}, "tax_rate"),
    ({"tax_rate": "abc"}, "tax_rate"), ({"tax_rate": "0.123456"}, "tax_rate"),
    ({"tax_rate": "1.00"}, "tax_rate"), ({"tax_rate": 0.06}, "tax_rate"),
    ({"code": "Bad Code"}, "code"), ({"code": "internal"}, "code"), ({"name": ""}, "name"),
    ({"extra": 1}, "extra"),
])
def test_api_classes_create_bad_input_writes_nothing(client, scene, bad, field):
    before = counts()
    response = client.post("/api/v1/customer-classes", json={**NEW_CLASS, **bad},
                           headers=scene.headers["finance"])
    assert_422(response, field)
    assert counts() == before


def test_api_classes_patch_changes_tax_rate(client, scene):
    response = client.patch("/api/v1/customer-classes/startup", json={"tax_rate": "0.03"},
                            headers=scene.headers["finance"])
    assert response.status_code == 200
    assert response.get_json()["tax_rate"] == "0.03"
    db.session.expire_all()
    assert db.session.get(CustomerClass, "startup").tax_rate == Decimal("0.03")


@pytest.mark.parametrize("role,path,body,status", [
    ("facility_manager", "startup", {"tax_rate": "0.03"}, 403),
    ("team_lead", "startup", {"name": "X"}, 403),
    ("finance", "nope", {"name": "X"}, 404),
    ("finance", "startup", {"code": "other"}, 422),
    ("finance", "startup", {"tax_rate": "-1"}, 422),
])
def test_api_classes_patch_refusals_write_nothing(client, scene, role, path, body, status):
    before = counts()
    response = client.patch(f"/api/v1/customer-classes/{path}", json=body,
                            headers=scene.headers[role])
    assert response.status_code == status
    assert counts() == before
    assert db.session.get(CustomerClass, "startup").tax_rate == Decimal("0.06")


def test_api_team_patch_billing_details(client, scene):
    body = {"customer_class": "industry", "invoice_title": "Lab GmbH", "tax_id": "DE-1"}
    response = client.patch(f"/api/v1/teams/{scene.team.id}", json=body,
                            headers=scene.headers["finance"])
    assert response.status_code == 200, response.get_json()
    team = response.get_json()
    assert (team["id"], team["customer_class"], team["invoice_title"], team["tax_id"]) == (
        scene.team.id, "industry", "Lab GmbH", "DE-1")
    assert {a["code"] for a in team["accounts"]} == {scene.account.code}
    db.session.expire_all()
    assert db.session.get(Team, scene.team.id).customer_class_code == "industry"


@pytest.mark.parametrize("body,field", [
    ({"customer_class": "unknown"}, "customer_class"),
    ({"customer_class": "industry", "tax_id": "x" * 65}, "tax_id"),
    ({"name": "Renamed"}, "name"),
])
def test_api_team_patch_bad_input_writes_nothing(client, scene, body, field):
    before = counts()
    response = client.patch(f"/api/v1/teams/{scene.team.id}", json=body,
                            headers=scene.headers["finance"])
    error = assert_422(response, field)
    assert "customer_class_code" not in error["fields"]
    assert counts() == before
    assert db.session.get(Team, scene.team.id).customer_class_code == "internal"


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("facility_manager", 403), ("admin", 200),
])
def test_api_team_patch_roles(client, scene, role, status):
    response = client.patch(f"/api/v1/teams/{scene.team.id}", json={"tax_id": "T-9"},
                            headers=scene.headers[role])
    assert response.status_code == status


def test_api_team_patch_unknown_team_is_404(client, scene):
    response = client.patch("/api/v1/teams/999999", json={"tax_id": "T"},
                            headers=scene.headers["finance"])
    assert response.status_code == 404


def _consumable(scene, **overrides):  # type: ignore[no-untyped-def]
    return {"code": "HE-GAS", "name": "Helium", "unit": "L",
            "facility_id": scene.instrument.facility_id, **overrides}


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("team_lead", 403), ("other_manager", 403),
    ("facility_manager", 201), ("finance", 201), ("admin", 201),
])
def test_api_consumables_create_roles(client, scene, role, status):
    before = counts()
    response = client.post("/api/v1/consumables", json=_consumable(scene),
                           headers=scene.headers[role])
    assert response.status_code == status, response.get_json()
    if status == 201:
        body = response.get_json()
        assert body["code"] == "HE-GAS" and body["unit"] == "L" and body["active"] is True
        assert db.session.get(Consumable, body["id"]).facility_id == scene.instrument.facility_id
    else:
        assert counts() == before


@pytest.mark.parametrize("bad,field", [
    ({"code": "bad code!"}, "code"), ({"facility_id": 999999}, "facility_id"),
    ({"name": ""}, "name"), ({"unit": "x" * 21}, "unit"),
])
def test_api_consumables_bad_input_writes_nothing(client, scene, bad, field):
    before = counts()
    response = client.post("/api/v1/consumables", json=_consumable(scene, **bad),
                           headers=scene.headers["finance"])
    assert_422(response, field)
    assert counts() == before


def test_api_consumables_list_filters_by_facility(client, scene):
    client.post("/api/v1/consumables", json=_consumable(scene),
                headers=scene.headers["finance"])
    response = client.get("/api/v1/consumables", headers=scene.headers["researcher"],
                          query_string={"facility_id": scene.instrument.facility_id})
    assert [c["code"] for c in response.get_json()["items"]] == ["HE-GAS"]
    response = client.get("/api/v1/consumables", headers=scene.headers["researcher"],
                          query_string={"facility_id": 999999})
    assert response.get_json()["items"] == []


@pytest.mark.parametrize("role,status", [
    ("researcher", 403), ("other_lead", 403), ("facility_manager", 403),
    ("team_lead", 200), ("finance", 200), ("admin", 200),
])
def test_api_account_balance_roles(client, scene, role, status):
    response = client.get(f"/api/v1/accounts/{scene.account.id}/balance",
                          headers=scene.headers[role])
    assert response.status_code == status


def test_api_account_balance_values(client, scene):
    scene.account.spending_limit = Decimal("1000.00")
    db.session.commit()
    body = client.get(f"/api/v1/accounts/{scene.account.id}/balance",
                      headers=scene.headers["team_lead"]).get_json()
    assert body == {"account_id": scene.account.id, "code": scene.account.code,
                    "spending_limit": "1000.00", "committed": "200.00",
                    "committed_with_tax": "200.00", "remaining": "800.00"}


def test_api_account_balance_unknown_is_404(client, scene):
    assert client.get("/api/v1/accounts/999999/balance",
                      headers=scene.headers["finance"]).status_code == 404
