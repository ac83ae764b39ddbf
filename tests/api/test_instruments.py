"""The catalog API: listing with filters and pages, one instrument, creating and changing
instruments (rows and audit entries), facilities and research fields."""
from __future__ import annotations

from datetime import datetime, time

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from labbook.instruments.models import Instrument, OpeningHours
from tests import factories
from tests.api.conftest import count_statements, snapshot_db, valid_instrument

SPEC_FIELDS = {
    "id", "name", "facility_id", "category", "asset_code", "field_ids", "status",
    "requires_approval", "requires_qualification", "slot_minutes", "min_minutes",
    "max_minutes", "lead_minutes", "horizon_days", "buffer_minutes", "late_cancel_notice_hours",
}
EXTRA_FIELDS = {
    "make", "model", "location", "description", "no_show_grace_minutes",
    "user_weekly_quota_minutes", "team_weekly_quota_minutes", "updated_at",
    # the billing policy (SPEC section 6)
    "billing_basis", "billing_increment_minutes", "minimum_charge_minutes",
    "late_cancel_fraction", "no_show_fraction", "session_cap",
}


def _names(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_json()
    return [item["name"] for item in response.get_json()["items"]]


def test_list_instruments_items_carry_exactly_the_documented_fields(client, catalog, headers_for):
    response = client.get("/api/v1/instruments", headers=headers_for("researcher"))
    body = response.get_json()
    assert response.status_code == 200
    assert body["page"] == 1 and body["per_page"] == 50 and body["total"] == 1
    item = body["items"][0]
    assert set(item) == SPEC_FIELDS | EXTRA_FIELDS
    assert item["id"] == catalog.instrument.id
    assert item["facility_id"] == catalog.facility.id
    assert item["field_ids"] == [catalog.fields[0].id]
    assert item["slot_minutes"] == 15 and item["requires_qualification"] is True
    assert item["user_weekly_quota_minutes"] is None
    assert datetime.fromisoformat(item["updated_at"]).utcoffset() is not None


@pytest.fixture
def varied(catalog):  # type: ignore[no-untyped-def]
    """Instruments that differ in one filterable attribute each."""
    other_platform_facility = factories.make_facility()
    factories.make_instrument(catalog.facility, name="Bravo XRD", category="XRD",
                              fields=[catalog.fields[1]])
    factories.make_instrument(catalog.other, name="Charlie confocal", category="Confocal",
                              fields=[catalog.fields[1]], status="down",
                              description="spinning disk")
    factories.make_instrument(other_platform_facility, name="Delta NMR", category="NMR",
                              fields=[catalog.fields[0]], make="Bruker")
    db.session.commit()
    return other_platform_facility


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (lambda c, f: {}, ["Alpha SEM", "Bravo XRD", "Charlie confocal", "Delta NMR"]),
        (lambda c, f: {"q": "SPINNING"}, ["Charlie confocal"]),
        (lambda c, f: {"q": "bruker"}, ["Delta NMR"]),
        (lambda c, f: {"field": c.fields[1].id}, ["Bravo XRD", "Charlie confocal"]),
        (lambda c, f: {"platform": c.platform.id}, ["Alpha SEM", "Bravo XRD", "Charlie confocal"]),
        (lambda c, f: {"facility": f.id}, ["Delta NMR"]),
        (lambda c, f: {"category": "XRD"}, ["Bravo XRD"]),
        (lambda c, f: {"status": "down"}, ["Charlie confocal"]),
        (lambda c, f: {"field": c.fields[0].id, "facility": c.facility.id}, ["Alpha SEM"]),
        (lambda c, f: {"field": "", "status": ""},
         ["Alpha SEM", "Bravo XRD", "Charlie confocal", "Delta NMR"]),
        (lambda c, f: {"facility": 2147483647}, []),
    ],
    ids=["none", "q-description", "q-make", "field", "platform", "facility", "category",
         "status", "combined", "empty-values-ignored", "unknown-id-matches-nothing"],
)
def test_list_instruments_filters(client, catalog, varied, headers_for, query, expected):
    response = client.get("/api/v1/instruments", query_string=query(catalog, varied),
                          headers=headers_for("researcher"))
    assert _names(response) == expected
    assert response.get_json()["total"] == len(expected)


def test_list_instruments_paginates_in_name_order(client, catalog, headers_for):
    for name in ("Echo", "Bravo", "Delta", "Charlie"):
        factories.make_instrument(catalog.facility, name=name)
    db.session.commit()
    headers = headers_for("researcher")
    pages = [client.get("/api/v1/instruments", query_string={"per_page": 2, "page": n},
                        headers=headers) for n in (1, 2, 3, 4)]
    assert [_names(p) for p in pages] == [
        ["Alpha SEM", "Bravo"], ["Charlie", "Delta"], ["Echo"], []]
    assert {p.get_json()["total"] for p in pages} == {5}
    assert pages[1].get_json()["page"] == 2 and pages[1].get_json()["per_page"] == 2


def test_list_instruments_query_count_does_not_grow_with_results(client, catalog, headers_for):
    headers = headers_for("researcher")
    with count_statements() as few:
        assert client.get("/api/v1/instruments", headers=headers).status_code == 200
    for _ in range(6):
        factories.make_instrument(catalog.facility, fields=catalog.fields)
    db.session.commit()
    with count_statements() as many:
        response = client.get("/api/v1/instruments", headers=headers)
    assert response.get_json()["total"] == 7
    assert len(many) == len(few)


def test_get_instrument_returns_it(client, catalog, headers_for):
    response = client.get(f"/api/v1/instruments/{catalog.instrument.id}",
                          headers=headers_for("finance"))
    assert response.status_code == 200
    assert response.get_json()["asset_code"] == catalog.instrument.asset_code


@pytest.mark.parametrize("ident", ["0", "2147483647", "99999999999999999999999"])
def test_get_instrument_unknown_is_not_found(client, catalog, headers_for, ident):
    response = client.get(f"/api/v1/instruments/{ident}", headers=headers_for("researcher"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_patch_instrument_changes_values_and_audits(client, catalog, headers_for):
    headers = headers_for("facility_manager")
    body = {"name": "Alpha SEM II", "slot_minutes": 30, "min_minutes": 30, "max_minutes": 120,
            "requires_approval": True, "field_ids": [catalog.fields[1].id],
            "user_weekly_quota_minutes": 600}
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}", json=body,
                            headers=headers)
    assert response.status_code == 200, response.get_json()
    assert {k: response.get_json()[k] for k in body} == body
    db.session.rollback()
    instrument = db.session.get(Instrument, catalog.instrument.id)
    assert (instrument.name, instrument.slot_minutes, instrument.field_ids) == (
        "Alpha SEM II", 30, [catalog.fields[1].id])
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "instrument.update")).one()
    assert entry.object_id == str(instrument.id)
    assert entry.before["name"] == "Alpha SEM" and entry.after["name"] == "Alpha SEM II"
    assert entry.after["field_ids"] == [catalog.fields[1].id]


def test_patch_instrument_leaves_absent_attributes_alone(client, catalog, headers_for):
    before = snapshot_db()["instruments"][0]
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}",
                            json={"location": "Room 101"}, headers=headers_for("admin"))
    assert response.status_code == 200
    after = snapshot_db()["instruments"][0]
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"location", "updated_at"}


def test_patch_instrument_quota_back_to_null(client, catalog, headers_for):
    headers = headers_for("facility_manager")
    url = f"/api/v1/instruments/{catalog.instrument.id}"
    client.patch(url, json={"team_weekly_quota_minutes": 900}, headers=headers)
    response = client.patch(url, json={"team_weekly_quota_minutes": None}, headers=headers)
    assert response.status_code == 200
    db.session.rollback()
    assert db.session.get(Instrument, catalog.instrument.id).team_weekly_quota_minutes is None


def test_patch_instrument_empty_body_changes_nothing(client, catalog, headers_for):
    headers = headers_for("facility_manager")
    before = snapshot_db()
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}", json={},
                            headers=headers)
    assert response.status_code == 200
    assert snapshot_db() == before


def test_patch_instrument_move_to_unmanaged_facility_is_forbidden(client, catalog, headers_for):
    headers = headers_for("facility_manager")
    before = snapshot_db()
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}",
                            json={"facility_id": catalog.other.id}, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert snapshot_db() == before


def test_patch_instrument_admin_may_move_it(client, catalog, headers_for):
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}",
                            json={"facility_id": catalog.other.id}, headers=headers_for("admin"))
    assert response.status_code == 200
    assert response.get_json()["facility_id"] == catalog.other.id


def test_patch_instrument_unknown_is_not_found_before_forbidden(client, catalog, headers_for):
    response = client.patch("/api/v1/instruments/2147483647", json={"name": "x"},
                            headers=headers_for("researcher"))
    assert response.status_code == 404


def test_post_instrument_creates_it_with_policy_defaults(client, catalog, headers_for):
    response = client.post("/api/v1/instruments", json=valid_instrument(catalog),
                           headers=headers_for("facility_manager"))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["name"] == "Beta XRD" and created["field_ids"] == [catalog.fields[1].id]
    policy = (created["slot_minutes"], created["max_minutes"], created["horizon_days"])
    assert policy == (15, 480, 90)
    assert created["status"] == "available" and created["requires_approval"] is False
    assert response.headers["Location"].endswith(f"/api/v1/instruments/{created['id']}")
    again = client.get(response.headers["Location"], headers=headers_for("researcher"))
    assert again.get_json() == created
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "instrument.create")).one()
    assert entry.object_id == str(created["id"]) and entry.after["asset_code"] == "XRD-0001"


def test_post_instrument_with_full_policy(client, catalog, headers_for):
    body = valid_instrument(catalog, requires_approval=True, requires_qualification=False,
                            slot_minutes=30, min_minutes=60, max_minutes=240, lead_minutes=120,
                            horizon_days=30, buffer_minutes=15, late_cancel_notice_hours=48,
                            no_show_grace_minutes=10, user_weekly_quota_minutes=600,
                            team_weekly_quota_minutes=None, status="limited", make="Rigaku",
                            model="SmartLab", location="B2-101", description="9 kW")
    response = client.post("/api/v1/instruments", json=body, headers=headers_for("admin"))
    assert response.status_code == 201, response.get_json()
    assert {k: response.get_json()[k] for k in body} == body


def test_post_instrument_manager_of_other_facility_forbidden_before_validation(
        client, catalog, headers_for):
    headers = headers_for("facility_manager")
    before = snapshot_db()
    body = valid_instrument(catalog, facility_id=catalog.other.id, slot_minutes="bad")
    response = client.post("/api/v1/instruments", json=body, headers=headers)
    assert response.status_code == 403
    assert "fields" not in response.get_json()["error"]
    assert snapshot_db() == before


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance"])
def test_post_instrument_non_manager_forbidden_before_validation(client, catalog, headers_for,
                                                                 role):
    headers = headers_for(role)
    before = snapshot_db()
    response = client.post("/api/v1/instruments", data="not json", content_type="text/plain",
                           headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert snapshot_db() == before


def test_list_facilities_describes_each_facility(client, catalog, headers_for):
    manager = factories.make_user_with_role("facility_manager", facility=catalog.facility)
    catalog.facility.opening_hours.append(OpeningHours(weekday=5, opens=time(9), closes=time(12)))
    db.session.commit()
    response = client.get("/api/v1/facilities", headers=headers_for("researcher"))
    assert response.status_code == 200
    items = {item["id"]: item for item in response.get_json()["items"]}
    assert set(items) == {catalog.facility.id, catalog.other.id}
    item = items[catalog.facility.id]
    assert item["platform_id"] == catalog.platform.id
    assert item["platform"] == catalog.platform.name
    assert item["timezone"] == "Asia/Shanghai"
    assert item["manager_ids"] == [manager.id]
    assert item["opening_hours"][0] == {"weekday": 0, "opens": "08:30", "closes": "17:30"}
    assert item["opening_hours"][-1] == {"weekday": 5, "opens": "09:00", "closes": "12:00"}


def test_list_facilities_query_count_does_not_grow(client, catalog, headers_for):
    headers = headers_for("researcher")
    factories.make_user_with_role("facility_manager", facility=catalog.facility)
    db.session.commit()
    with count_statements() as few:
        client.get("/api/v1/facilities", headers=headers)
    for _ in range(4):
        factories.make_user_with_role("facility_manager", facility=factories.make_facility())
    db.session.commit()
    with count_statements() as many:
        response = client.get("/api/v1/facilities", headers=headers)
    assert len(response.get_json()["items"]) == 6
    assert len(many) == len(few)


def test_list_fields_returns_every_field(client, catalog, headers_for):
    catalog.fields[0].name_zh = "功能材料"
    db.session.commit()
    response = client.get("/api/v1/fields", headers=headers_for("team_lead"))
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [i["id"] for i in items] == [f.id for f in catalog.fields]
    assert items[0] == {"id": catalog.fields[0].id, "code": catalog.fields[0].code,
                        "name": catalog.fields[0].name, "name_zh": "功能材料"}
