"""Qualifications over the API: grant, revoke, list, and requests to be qualified."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.models import Qualification, QualificationRequest
from labbook.db import now_utc
from labbook.extensions import db
from tests import factories
from tests.api.bookings_helpers import NOT_FOUND_ID, body_for, error_of, make_scene, written

QUALIFICATION_FIELDS = {"id", "user_id", "instrument_id", "category", "level", "granted_at",
                        "granted_by_id", "expires_at", "revoked_at", "note", "live"}


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    """The make_scene cast plus a newcomer in the owner's team, not yet qualified."""
    scene = make_scene(api_token)
    scene.newcomer = factories.make_user_with_role("researcher",
                                                   team=scene.owner.memberships[0].team)
    db.session.commit()
    scene.headers(scene.newcomer)
    return scene


def _grant(client, scene, actor=None, **body):  # type: ignore[no-untyped-def]
    body = {"user_id": scene.newcomer.id, "instrument_id": scene.instrument.id, **body}
    return client.post("/api/v1/qualifications", json=body,
                       headers=scene.headers(actor or scene.manager))


def _can_book(client, scene) -> int:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/bookings", json=body_for(scene),
                           headers=scene.headers(scene.newcomer))
    if response.status_code == 201:
        client.post(f"/api/v1/bookings/{response.get_json()['id']}/cancel",
                    headers=scene.headers(scene.newcomer))
    return response.status_code


def test_post_qualification_grants_and_the_user_can_book(client, scene):
    assert _can_book(client, scene) == 403
    expires = now_utc() + timedelta(days=365)
    response = _grant(client, scene, level="advanced", expires_at=expires.isoformat(),
                      note="trained by Li")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == QUALIFICATION_FIELDS
    assert (body["user_id"], body["instrument_id"], body["level"], body["live"]) == (
        scene.newcomer.id, scene.instrument.id, "advanced", True)
    assert datetime.fromisoformat(body["expires_at"]) == expires
    assert body["granted_by_id"] == scene.manager.id and body["revoked_at"] is None
    assert db.session.scalar(sa.select(AuditEntry.action).where(
        AuditEntry.object_type == "Qualification")) == "qualification.grant"
    assert _can_book(client, scene) == 201


def test_post_qualification_again_replaces_the_level(client, scene):
    first = _grant(client, scene).get_json()
    again = _grant(client, scene, level="advanced").get_json()
    assert again["id"] == first["id"] and again["level"] == "advanced"


def test_post_qualification_for_a_category_by_an_admin(client, scene):
    response = _grant(client, scene, actor=scene.admin, instrument_id=None, category="SEM",
                      level="advanced")
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["category"], response.get_json()["instrument_id"]) == (
        "SEM", None)
    assert _can_book(client, scene) == 201


@pytest.mark.parametrize(("actor", "body", "rule"), [
    ("other_manager", {}, "manager"),
    ("manager", {"instrument_id": None, "category": "SEM"}, "manager"),
], ids=["other-facility", "category-needs-admin"])
def test_post_qualification_outside_your_scope_is_403(client, scene, actor, body, rule):
    before = written()
    error = error_of(_grant(client, scene, actor=getattr(scene, actor), **body), 403,
                     "forbidden")
    assert error["rule"] == rule
    assert written() == before


@pytest.mark.parametrize("body", [{}, {"user_id": "x", "colour": 1}],
                         ids=["valid", "invalid"])
def test_post_qualification_by_a_researcher_is_403_before_the_body_is_judged(client, scene,
                                                                             body):
    before = written()
    response = client.post("/api/v1/qualifications", headers=scene.headers(scene.owner),
                           json=body or {"user_id": scene.newcomer.id,
                                         "instrument_id": scene.instrument.id})
    assert "fields" not in error_of(response, 403, "forbidden")
    assert written() == before


BAD = [
    ("user-missing", {"user_id": None}, 422, "user_id"),
    ("user-unknown", {"user_id": NOT_FOUND_ID}, 422, "user_id"),
    ("user-as-string", {"user_id": "1"}, 422, "user_id"),
    ("instrument-unknown", {"instrument_id": NOT_FOUND_ID}, 404, None),
    ("neither", {"instrument_id": None}, 422, "instrument_id"),
    ("both", {"category": "SEM"}, 422, "instrument_id"),
    ("category-empty", {"instrument_id": None, "category": " "}, 422, "category"),
    ("level-unknown", {"level": "expert"}, 422, "level"),
    ("expiry-naive", {"expires_at": "2031-01-01T00:00:00"}, 422, "expires_at"),
    ("expiry-past", {"expires_at": "2020-01-01T00:00:00+08:00"}, 422, "expires_at"),
    ("note-too-long", {"note": "x" * 501}, 422, "note"),
    ("read-only-id", {"id": 3}, 422, "id"),
    ("unknown-key", {"colour": "blue"}, 422, "colour"),
]


@pytest.mark.parametrize(("change", "status", "field"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_post_qualification_bad_input_writes_nothing(client, scene, change, status, field):
    body = {"user_id": scene.newcomer.id, "instrument_id": scene.instrument.id, **change}
    body = {key: value for key, value in body.items() if value is not None}
    before = written()
    response = client.post("/api/v1/qualifications", json=body,
                           headers=scene.headers(scene.admin))
    error = error_of(response, status, {404: "not_found", 422: "validation"}[status])
    if field:
        assert error["fields"][field]
    assert written() == before


# -- revoke ----------------------------------------------------------------------------------


def test_delete_qualification_revokes_it_and_booking_stops(client, scene):
    granted = _grant(client, scene).get_json()
    response = client.delete(f"/api/v1/qualifications/{granted['id']}",
                             headers=scene.headers(scene.manager))
    assert response.status_code == 200
    body = response.get_json()
    assert body["revoked_at"] and body["live"] is False
    assert _can_book(client, scene) == 403
    again = client.delete(f"/api/v1/qualifications/{granted['id']}",
                          headers=scene.headers(scene.manager))
    assert again.status_code == 200 and again.get_json()["revoked_at"] == body["revoked_at"]


@pytest.mark.parametrize(("who", "status"), [("newcomer", 403), ("stranger", 404),
                                             ("other_manager", 404)])
def test_delete_qualification_by_others_is_refused(client, scene, who, status):
    granted = _grant(client, scene).get_json()
    headers = scene.headers(getattr(scene, who))
    before = written()
    response = client.delete(f"/api/v1/qualifications/{granted['id']}", headers=headers)
    error_of(response, status, {403: "forbidden", 404: "not_found"}[status])
    assert written() == before


def test_delete_unknown_qualification_is_404(client, scene):
    error_of(client.delete(f"/api/v1/qualifications/{NOT_FOUND_ID}",
                           headers=scene.headers(scene.admin)), 404, "not_found")


# -- list ----------------------------------------------------------------------------------------


def _ids(client, scene, viewer, **query) -> list[int]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/qualifications", query_string=query,
                          headers=scene.headers(viewer))
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_list_qualifications_by_viewer(client, scene):
    owner_q, stranger_q = (db.session.scalar(sa.select(Qualification.id).where(
        Qualification.user_id == user.id)) for user in (scene.owner, scene.stranger))
    elsewhere = factories.make_qualification(scene.owner, factories.make_instrument())
    category = factories.make_qualification(scene.stranger, category="XRD")
    revoked = factories.make_qualification(scene.newcomer, scene.instrument,
                                           revoked_at=now_utc())
    db.session.commit()
    assert _ids(client, scene, scene.owner) == [owner_q, elsewhere.id]
    assert _ids(client, scene, scene.manager) == [owner_q, stranger_q, category.id]
    assert _ids(client, scene, scene.other_manager) == [category.id]
    assert _ids(client, scene, scene.admin, user=scene.owner.id) == [owner_q, elsewhere.id]
    assert _ids(client, scene, scene.manager, instrument=scene.instrument.id) == [
        owner_q, stranger_q]
    assert _ids(client, scene, scene.owner, user=scene.stranger.id) == []
    assert revoked.id not in _ids(client, scene, scene.admin)


def test_list_qualifications_bad_query_is_422(client, scene):
    response = client.get("/api/v1/qualifications", query_string={"user": "me"},
                          headers=scene.headers(scene.owner))
    assert "user" in error_of(response, 422, "validation")["fields"]


# -- requests --------------------------------------------------------------------------------------


def test_post_qualification_request_and_grant_closes_it(client, scene):
    response = client.post("/api/v1/qualification-requests",
                           json={"instrument_id": scene.instrument.id, "message": "EBSD"},
                           headers=scene.headers(scene.newcomer))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["user_id"], body["state"], body["message"]) == (scene.newcomer.id, "open",
                                                                 "EBSD")
    again = client.post("/api/v1/qualification-requests",
                        json={"instrument_id": scene.instrument.id},
                        headers=scene.headers(scene.newcomer))
    assert again.get_json()["id"] == body["id"]
    _grant(client, scene)
    db.session.rollback()
    assert db.session.get(QualificationRequest, body["id"]).state == "granted"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({}, 422, "instrument_id"),
    ({"instrument_id": NOT_FOUND_ID}, 404, None),
    ({"instrument_id": "1"}, 422, "instrument_id"),
    ({"instrument_id": 1, "message": "x" * 1001}, 422, "message"),
    ({"instrument_id": 1, "user_id": 1}, 422, "user_id"),
], ids=["missing", "unknown", "string-id", "message-too-long", "read-only-user"])
def test_post_qualification_request_bad_input(client, scene, body, status, field):
    before = written()
    response = client.post("/api/v1/qualification-requests", json=body,
                           headers=scene.headers(scene.newcomer))
    error = error_of(response, status, {404: "not_found", 422: "validation"}[status])
    if field:
        assert error["fields"][field]
    assert written() == before


def test_openapi_qualification_schemas_are_what_the_api_sends(client, scene):
    document = client.get("/api/v1/openapi.json", headers=scene.headers(scene.owner)).get_json()
    schemas = document["components"]["schemas"]
    assert set(schemas["Qualification"]["properties"]) == QUALIFICATION_FIELDS
    request_body = client.post("/api/v1/qualification-requests",
                               json={"instrument_id": scene.instrument.id},
                               headers=scene.headers(scene.newcomer)).get_json()
    assert set(request_body) == set(schemas["QualificationRequest"]["required"])
