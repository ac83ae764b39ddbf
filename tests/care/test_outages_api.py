"""Outages API (labbook/care/api_outages.py): schedule with ``?dry_run=true`` previews
(nothing written), scheduling cancels and notifies, facility-wide outages, listing for
everyone, PATCH end/cancel, and the SPEC section 8 error bodies. Both databases."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.bookings import outages
from labbook.bookings.models import Outage
from labbook.db import now_utc
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests import factories

UTC = timezone.utc
START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@pytest.fixture
def scene(app, api_token):
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility)
    second = factories.make_instrument(facility)
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    booking = factories.make_booking(instrument, start=START + timedelta(hours=1))
    db.session.commit()
    return dict(facility=facility, instrument=instrument, second=second, manager=manager,
                booking=booking, headers=api_token(manager), api_token=api_token)


def _body(instrument, **kw):
    body = {"instrument_id": instrument.id, "kind": "repair", "start": START.isoformat(),
            "end": (START + timedelta(hours=4)).isoformat(), "title": "Detector swap"}
    body.update(kw)
    return body


def _outages():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Outage))


def test_dry_run_lists_affected_bookings_and_writes_nothing(client, scene):
    response = client.post("/api/v1/outages?dry_run=true", json=_body(scene["instrument"]),
                           headers=scene["headers"])
    assert response.status_code == 200, response.json
    data = response.json
    assert data["dry_run"] is True and data["outages"] == []
    (item,) = data["affected_bookings"]
    assert item["id"] == scene["booking"].id and item["user_id"] == scene["booking"].user_id
    assert item["start"] == "2030-01-07T10:00:00+08:00"
    db.session.expire_all()
    assert _outages() == 0 and scene["booking"].state == "confirmed"


def test_post_schedules_cancels_and_notifies(client, scene):
    response = client.post("/api/v1/outages", json=_body(scene["instrument"]),
                           headers=scene["headers"])
    assert response.status_code == 201, response.json
    (outage,) = response.json["outages"]
    assert outage["kind"] == "repair" and outage["end"] == "2030-01-07T13:00:00+08:00"
    assert [b["id"] for b in response.json["affected_bookings"]] == [scene["booking"].id]
    db.session.expire_all()
    assert scene["booking"].state == "cancelled"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == scene["booking"].user_id,
        Notification.kind == "outage_affects_booking")) == 1


def test_post_on_a_facility_covers_every_instrument(client, scene):
    body = _body(scene["instrument"], kind="closure", end=None)
    del body["instrument_id"]
    body["facility_id"] = scene["facility"].id
    response = client.post("/api/v1/outages", json=body, headers=scene["headers"])
    assert response.status_code == 201, response.json
    ids = {o["instrument_id"] for o in response.json["outages"]}
    assert ids == {scene["instrument"].id, scene["second"].id}
    assert all(o["end"] is None for o in response.json["outages"])


@pytest.mark.parametrize("role", ["researcher", "other_manager", "finance"])
def test_post_is_forbidden_to_others(client, scene, role):
    user = (factories.make_user_with_role("facility_manager") if role == "other_manager"
            else factories.make_user_with_role(role))
    headers = scene["api_token"](user)
    for query in ("", "?dry_run=true"):
        response = client.post(f"/api/v1/outages{query}", json=_body(scene["instrument"]),
                               headers=headers)
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"
    assert _outages() == 0


def test_post_validation_errors(client, scene):
    naive = _body(scene["instrument"], start="2030-01-07T09:00:00")
    response = client.post("/api/v1/outages", json=naive, headers=scene["headers"])
    assert response.status_code == 422 and "start" in response.json["error"]["fields"]
    both = _body(scene["instrument"], facility_id=scene["facility"].id)
    response = client.post("/api/v1/outages", json=both, headers=scene["headers"])
    assert response.status_code == 422 and "facility_id" in response.json["error"]["fields"]
    reversed_ = _body(scene["instrument"], end=START.isoformat())
    response = client.post("/api/v1/outages", json=reversed_, headers=scene["headers"])
    assert response.status_code == 422 and "end" in response.json["error"]["fields"]
    assert _outages() == 0


def test_post_unknown_instrument_is_404(client, scene):
    body = _body(scene["instrument"], instrument_id=999999)
    response = client.post("/api/v1/outages", json=body, headers=scene["headers"])
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_post_over_another_outage_is_409(client, scene):
    first = client.post("/api/v1/outages", json=_body(scene["instrument"]),
                        headers=scene["headers"])
    assert first.status_code == 201
    response = client.post("/api/v1/outages", json=_body(scene["instrument"], kind="closure"),
                           headers=scene["headers"])
    assert response.status_code == 409
    assert response.json["error"]["conflicts"][0]["kind"] == "outage"


def test_list_is_open_to_every_signed_in_user(client, scene):
    client.post("/api/v1/outages", json=_body(scene["instrument"]), headers=scene["headers"])
    headers = scene["api_token"](factories.make_user_with_role("researcher"))
    response = client.get(f"/api/v1/outages?instrument={scene['instrument'].id}",
                          headers=headers)
    assert response.status_code == 200
    assert [o["title"] for o in response.json["items"]] == ["Detector swap"]
    response = client.get(f"/api/v1/outages?instrument={scene['second'].id}", headers=headers)
    assert response.json["items"] == []
    assert client.get("/api/v1/outages").status_code == 401


@pytest.mark.parametrize("query", [
    {"from": "2030-01-08T00:00:00+08:00", "to": "2030-01-07T00:00:00+08:00"},
    {"to": "2020-01-01T00:00:00+08:00"},  # before "from", which defaults to now
])
def test_list_with_an_empty_window_is_422(client, scene, query):
    response = client.get("/api/v1/outages", query_string=query, headers=scene["headers"])
    assert response.status_code == 422
    assert response.json["error"]["fields"]["to"] == ["Must be after from."]


def _unplanned(scene):
    now = now_utc()
    result = outages.schedule_outage(scene["manager"], scene["instrument"],
                                     now - timedelta(hours=1), None, "repair", "Down", now=now)
    db.session.commit()
    return result.outage


def test_patch_end_now_closes_an_unplanned_outage(client, scene):
    outage = _unplanned(scene)
    response = client.patch(f"/api/v1/outages/{outage.id}", json={"end": "now"},
                            headers=scene["headers"])
    assert response.status_code == 200, response.json
    assert response.json["end"] is not None
    db.session.expire_all()
    assert outage.end_at is not None and outage.end_at <= now_utc()
    again = client.patch(f"/api/v1/outages/{outage.id}", json={"end": "now"},
                         headers=scene["headers"])
    assert again.status_code == 422  # already ended: "now" would extend it


def test_patch_cancel_and_errors(client, scene):
    outage = _unplanned(scene)
    researcher = scene["api_token"](factories.make_user_with_role("researcher"))
    response = client.patch(f"/api/v1/outages/{outage.id}", json={"state": "cancelled"},
                            headers=researcher)
    assert response.status_code == 403
    response = client.patch(f"/api/v1/outages/{outage.id}", json={"end": "soon"},
                            headers=scene["headers"])
    assert response.status_code == 422 and "end" in response.json["error"]["fields"]
    response = client.patch("/api/v1/outages/999999", json={"state": "cancelled"},
                            headers=scene["headers"])
    assert response.status_code == 404
    response = client.patch(f"/api/v1/outages/{outage.id}", json={"state": "cancelled"},
                            headers=scene["headers"])
    assert response.status_code == 200 and response.json["state"] == "cancelled"
    response = client.patch(f"/api/v1/outages/{outage.id}", json={"end": "now"},
                            headers=scene["headers"])
    assert response.status_code == 422


def test_patch_end_into_another_outage_is_409(client, scene):
    outage = _unplanned(scene)
    client.patch(f"/api/v1/outages/{outage.id}", json={"end": "now"}, headers=scene["headers"])
    later = client.post("/api/v1/outages", json=_body(scene["instrument"]),
                        headers=scene["headers"])
    assert later.status_code == 201
    response = client.patch(f"/api/v1/outages/{outage.id}",
                            json={"end": "2030-01-07T12:00:00+08:00"}, headers=scene["headers"])
    assert response.status_code == 409
