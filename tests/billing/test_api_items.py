"""Usage items through the JSON API: managers record consumables and samples, the next
refresh prices them, finance and managers list them, bad input and closed periods change
nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.billing.closing import close_period
from labbook.billing.models import ChargeLine, UsageItem
from labbook.billing.statements import refresh_period
from labbook.extensions import db
from tests import factories
from tests.billing.api_scene import OCTOBER, assert_422, build_scene, counts, local

URL = "/api/v1/usage-items"


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    scene = build_scene(api_token)
    scene.argon = factories.make_consumable(scene.instrument.facility, code="GAS-AR",
                                            name="Argon", unit="L")
    factories.make_rate(None, "12.50", consumable=scene.argon)
    factories.make_rate(scene.instrument, "40.00", charge_type="sample")
    db.session.commit()
    return scene


def _body(scene, **changes):  # type: ignore[no-untyped-def]
    body = {"consumable_id": scene.argon.id, "account_id": scene.account.id, "quantity": "2.5",
            "occurred_at": local(10, 6, 9).isoformat(), "note": "cylinder swap"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def _post(client, scene, role="facility_manager", **changes):  # type: ignore[no-untyped-def]
    return client.post(URL, json=_body(scene, **changes), headers=scene.headers[role])


def test_a_manager_records_a_consumable_and_the_refresh_prices_it(client, scene):
    response = _post(client, scene)
    assert response.status_code == 201, response.get_json()
    item = response.get_json()
    assert (item["charge_type"], item["consumable_id"], item["instrument_id"]) == (
        "unit", scene.argon.id, None)
    assert (item["quantity"], item["account_id"], item["team_id"]) == (
        "2.50", scene.account.id, scene.team.id)
    assert item["occurred_at"] == "2026-10-06T09:00:00+08:00"
    assert item["facility_id"] == scene.instrument.facility_id
    assert db.session.scalar(sa.select(AuditEntry).where(
        AuditEntry.action == "usage_item.create")).object_id == str(item["id"])
    refresh_period(OCTOBER)
    line = db.session.scalar(sa.select(ChargeLine).where(ChargeLine.usage_item_id == item["id"]))
    assert str(line.amount) == "31.25"  # 2.5 L x 12.50


def test_samples_are_recorded_on_an_instrument(client, scene):
    response = _post(client, scene, consumable_id=None, instrument_id=scene.instrument.id,
                     quantity="3")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["charge_type"] == "sample"
    assert response.get_json()["quantity"] == "3.00"


@pytest.mark.parametrize(("changes", "field"), [
    ({"instrument_id": 1}, "instrument_id"),  # both a consumable and an instrument
    ({"consumable_id": None}, "instrument_id"),  # neither
    ({"consumable_id": 2147483647}, "consumable_id"),
    ({"account_id": 2147483647}, "account_id"),
    ({"quantity": "0"}, "quantity"),
    ({"quantity": "-1"}, "quantity"),
    ({"quantity": "1e3"}, "quantity"),
    ({"quantity": "1.2345"}, "quantity"),
    ({"quantity": 2}, "quantity"),
    ({"occurred_at": "2026-10-06T09:00:00"}, "occurred_at"),
    ({"user_id": 2147483647}, "user_id"),
    ({"reservation_id": 2147483647}, "reservation_id"),
    ({"note": "x" * 301}, "note"),
    ({"colour": "red"}, "colour"),
])
def test_bad_input_is_422_and_writes_nothing(client, scene, changes, field):
    before = counts()
    assert_422(_post(client, scene, **changes), field)
    assert counts() == before


def test_a_booking_of_another_facility_is_refused(client, scene):
    elsewhere = factories.make_booking(factories.make_instrument())
    db.session.commit()
    before = counts()
    assert_422(_post(client, scene, reservation_id=elsewhere.id), "reservation_id")
    assert counts() == before
    own = _post(client, scene, reservation_id=scene.booking.id,
                user_id=scene.users["researcher"].id)
    assert own.status_code == 201 and own.get_json()["reservation_id"] == scene.booking.id


@pytest.mark.parametrize("role", ["other_manager", "finance", "researcher", "team_lead"])
def test_only_the_facilitys_managers_record(client, scene, role):
    before = counts()
    response = _post(client, scene, role=role)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert counts() == before


def test_a_closed_period_refuses_recording_and_removing(client, scene):
    kept = _post(client, scene).get_json()
    close_period(None, OCTOBER, force=True)
    db.session.commit()
    before = counts()
    refused = _post(client, scene)
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert (error["reason"], error["period"]) == ("period_closed", "2026-10")
    gone = client.delete(f"{URL}/{kept['id']}", headers=scene.headers["facility_manager"])
    assert gone.status_code == 409 and gone.get_json()["error"]["reason"] == "period_closed"
    assert counts() == before


def test_list_for_finance_and_managers_with_filters(client, scene):
    first = _post(client, scene).get_json()
    later = _post(client, scene, occurred_at=local(11, 2, 9).isoformat()).get_json()
    elsewhere = factories.make_consumable(factories.make_facility(), code="N2")
    factories.make_item(scene.account, "1", consumable=elsewhere, occurred_at=local(10, 8, 9))
    db.session.commit()

    def ids(role, **query):  # type: ignore[no-untyped-def]
        response = client.get(URL, query_string=query, headers=scene.headers[role])
        assert response.status_code == 200, response.get_json()
        return [i["id"] for i in response.get_json()["items"]]

    assert len(ids("finance")) == 3
    assert ids("facility_manager") == [later["id"], first["id"]]  # newest first, own facility
    assert ids("other_manager") == []
    assert ids("finance", facility_id=scene.instrument.facility_id) == [later["id"], first["id"]]
    window = {"from": local(11, 1, 0).isoformat(), "to": local(12, 1, 0).isoformat()}
    assert ids("facility_manager", **window) == [later["id"]]
    bad = client.get(URL, query_string={"from": window["to"], "to": window["from"]},
                     headers=scene.headers["finance"])
    assert_422(bad, "to")
    assert client.get(URL, headers=scene.headers["researcher"]).status_code == 403


def test_one_item_and_its_removal(client, scene):
    item = _post(client, scene).get_json()
    url = f"{URL}/{item['id']}"
    assert client.get(url, headers=scene.headers["finance"]).get_json() == item
    assert client.get(url, headers=scene.headers["other_manager"]).status_code == 404
    assert client.delete(url, headers=scene.headers["finance"]).status_code == 403
    refresh_period(OCTOBER)
    db.session.commit()
    assert db.session.scalar(sa.select(ChargeLine.id).where(
        ChargeLine.usage_item_id == item["id"])) is not None
    response = client.delete(url, headers=scene.headers["facility_manager"])
    assert response.status_code == 204 and response.get_data() == b""
    db.session.expire_all()
    assert db.session.get(UsageItem, item["id"]) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
        ChargeLine.usage_item_id == item["id"])) == 0
    assert db.session.scalar(sa.select(AuditEntry).where(
        AuditEntry.action == "usage_item.delete")).object_id == str(item["id"])
    assert client.delete(url, headers=scene.headers["facility_manager"]).status_code == 404


def test_the_window_is_half_open(client, scene):
    at_nine = local(10, 6, 9)
    item = _post(client, scene, occurred_at=at_nine.isoformat()).get_json()
    query = {"from": at_nine.isoformat(), "to": (at_nine + timedelta(hours=1)).isoformat()}
    found = client.get(URL, query_string=query, headers=scene.headers["finance"]).get_json()
    assert [i["id"] for i in found["items"]] == [item["id"]]
    query = {"from": (at_nine - timedelta(hours=1)).isoformat(), "to": at_nine.isoformat()}
    found = client.get(URL, query_string=query, headers=scene.headers["finance"]).get_json()
    assert found["items"] == []
