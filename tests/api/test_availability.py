"""Availability of one instrument and "find a slot" across instruments, over the API."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from labbook.bookings.models import Outage
from labbook.extensions import db
from tests import factories
from tests.api.bookings_helpers import (
    NOT_FOUND_ID,
    body_for,
    error_of,
    iso,
    make_scene,
    whole_hour,
)


@pytest.fixture
def scene(app, api_token, client):  # type: ignore[no-untyped-def]
    """The owner's booking at start (buffer 15 min) and an outage 3 h later."""
    scene = make_scene(api_token, buffer_minutes=15)
    response = client.post("/api/v1/bookings", json=body_for(scene, purpose="secret sample"),
                           headers=scene.headers(scene.owner))
    assert response.status_code == 201
    scene.booking_id = response.get_json()["id"]
    db.session.add(Outage(instrument=scene.instrument, start_at=scene.start + timedelta(hours=3),
                          end_at=scene.start + timedelta(hours=4),
                          block_end=scene.start + timedelta(hours=4), state="scheduled",
                          outage_kind="calibration", title="Yearly calibration"))
    db.session.commit()
    return scene


def _availability(client, scene, user, start, end):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/instruments/{scene.instrument.id}/availability",
                      query_string={"start": iso(start), "end": iso(end)},
                      headers=scene.headers(user))


def test_availability_lists_busy_and_free(client, scene):
    start, end = scene.start - timedelta(hours=1), scene.start + timedelta(hours=5)
    response = _availability(client, scene, scene.stranger, start, end)
    assert response.status_code == 200
    body = response.get_json()
    booking, outage = body["busy"]
    assert (booking["kind"], booking["state"], booking["mine"]) == ("booking", "confirmed", False)
    assert datetime.fromisoformat(booking["blocked_until"]) == scene.start + timedelta(minutes=75)
    assert {"user", "purpose", "booking_id"}.isdisjoint(booking)
    assert (outage["kind"], outage["outage_kind"], outage["title"]) == (
        "outage", "calibration", "Yearly calibration")
    free = [(datetime.fromisoformat(f["start"]), datetime.fromisoformat(f["end"]))
            for f in body["free"]]
    assert free == [(start, scene.start),
                    (scene.start + timedelta(minutes=75), scene.start + timedelta(hours=3)),
                    (scene.start + timedelta(hours=4), end)]


@pytest.mark.parametrize("viewer", ["owner", "manager"])
def test_availability_shows_details_to_those_who_may_see_them(client, scene, viewer):
    response = _availability(client, scene, getattr(scene, viewer), scene.start,
                             scene.start + timedelta(hours=1))
    (booking,) = response.get_json()["busy"]
    assert (booking["booking_id"], booking["purpose"]) == (scene.booking_id, "secret sample")
    assert booking["mine"] is (viewer == "owner")


def test_availability_of_an_unknown_instrument_is_404(client, scene):
    response = client.get(f"/api/v1/instruments/{NOT_FOUND_ID}/availability",
                          query_string={"start": iso(scene.start),
                                        "end": iso(scene.start + timedelta(days=1))},
                          headers=scene.headers(scene.owner))
    error_of(response, 404, "not_found")


def test_availability_window_of_exactly_62_days_is_allowed(client, scene):
    response = _availability(client, scene, scene.owner, scene.start,
                             scene.start + timedelta(days=62))
    assert response.status_code == 200 and len(response.get_json()["busy"]) == 2


@pytest.mark.parametrize(("query", "field"), [
    ({}, "start"),
    ({"start": "2030-01-07T10:00:00+08:00"}, "end"),
    ({"start": "2030-01-07T10:00:00", "end": "2030-01-08T10:00:00+08:00"}, "start"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "2030-01-08"}, "end"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "2030-01-07T10:00:00+08:00"}, "end"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "2030-01-07T09:00:00+08:00"}, "end"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "2030-03-11T10:00:00+08:00"}, "end"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "9999-12-31T23:00:00-10:00"}, "end"),
    ({"start": "2030-01-07T10:00:00+08:00", "end": "2030-01-08T10:00:00+08:00", "x": "1"}, "x"),
], ids=["nothing", "no-end", "naive-start", "date-only-end", "empty-window", "reversed",
        "63-days", "year-9999", "unknown-parameter"])
def test_availability_bad_window_is_422(client, scene, query, field):
    response = client.get(f"/api/v1/instruments/{scene.instrument.id}/availability",
                          query_string=query, headers=scene.headers(scene.owner))
    assert field in error_of(response, 422, "validation")["fields"]


# -- find a slot --------------------------------------------------------------------------------


def _slots(client, scene, user=None, **query):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/slots", query_string=query,
                          headers=scene.headers(user or scene.owner))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_slots_finds_the_first_free_interval_after_the_booking(client, scene):
    items = _slots(client, scene, minutes=90, start=iso(scene.start),
                   facility=scene.facility.id)
    assert [(i["instrument_id"], i["instrument"]) for i in items] == [
        (scene.instrument.id, "Alpha SEM")]
    assert datetime.fromisoformat(items[0]["start"]) == scene.start + timedelta(minutes=75)
    assert datetime.fromisoformat(items[0]["end"]) == scene.start + timedelta(minutes=165)
    (longer,) = _slots(client, scene, minutes=105, start=iso(scene.start),
                       facility=scene.facility.id)  # its buffer would run into the outage
    assert datetime.fromisoformat(longer["start"]) == scene.start + timedelta(hours=4)


def test_slots_default_window_starts_now(client, scene):
    (item,) = _slots(client, scene, minutes=60, facility=scene.facility.id)
    assert datetime.fromisoformat(item["start"]) < scene.start  # today, before the booking


def test_slots_across_instruments_earliest_first_only_where_qualified(client, scene):
    scene.facility.opening_hours = []  # staffed around the clock: no basic-level limits
    free = factories.make_instrument(scene.facility, name="Beta XRD", category="XRD",
                                     requires_qualification=False)
    factories.make_instrument(scene.facility, name="Gamma", category="XRD")  # not qualified
    db.session.commit()
    items = _slots(client, scene, minutes=60, start=iso(scene.start), facility=scene.facility.id)
    assert [i["instrument"] for i in items] == ["Beta XRD", "Alpha SEM"]
    assert items[0]["start"] == scene.start.isoformat()
    assert [i["instrument_id"] for i in _slots(client, scene, minutes=60, category="XRD",
                                               start=iso(scene.start))] == [free.id]
    assert len(_slots(client, scene, minutes=60, limit=1, facility=scene.facility.id)) == 1


def test_slots_for_a_length_no_instrument_allows_is_empty(client, scene):
    assert _slots(client, scene, minutes=10, facility=scene.facility.id) == []  # not on grid


@pytest.mark.parametrize(("query", "field"), [
    ({}, "minutes"),
    ({"minutes": 0}, "minutes"),
    ({"minutes": 1441}, "minutes"),
    ({"minutes": "an hour"}, "minutes"),
    ({"minutes": 60, "limit": 0}, "limit"),
    ({"minutes": 60, "limit": 51}, "limit"),
    ({"minutes": 60, "start": "2030-01-07T10:00:00"}, "start"),
    ({"minutes": 60, "start": "2030-01-07T10:00:00+08:00", "end": "2030-01-07T09:00:00+08:00"},
     "end"),
    ({"minutes": 60, "start": "2030-01-07T10:00:00+08:00", "end": "2030-04-07T10:00:00+08:00"},
     "end"),
    ({"minutes": 60, "field": "x"}, "field"),
    ({"minutes": 60, "category": "x" * 81}, "category"),
    ({"minutes": 60, "colour": "blue"}, "colour"),
], ids=["no-minutes", "zero-minutes", "over-a-day", "minutes-text", "limit-zero", "limit-51",
        "naive-start", "reversed", "91-days", "field-text", "category-too-long", "unknown"])
def test_slots_bad_query_is_422(client, scene, query, field):
    response = client.get("/api/v1/slots", query_string=query,
                          headers=scene.headers(scene.owner))
    assert field in error_of(response, 422, "validation")["fields"]


def test_slots_with_only_an_end_in_the_past_is_422(client, scene):
    response = client.get("/api/v1/slots", query_string={
        "minutes": 60, "end": iso(whole_hour(days=-1))}, headers=scene.headers(scene.owner))
    assert "end" in error_of(response, 422, "validation")["fields"]


def test_openapi_availability_schemas_are_what_the_api_sends(client, scene):
    document = client.get("/api/v1/openapi.json", headers=scene.headers(scene.owner)).get_json()
    schemas = document["components"]["schemas"]
    busy_schema = schemas["Availability"]["properties"]["busy"]["items"]
    response = _availability(client, scene, scene.manager, scene.start,
                             scene.start + timedelta(hours=5)).get_json()
    for item in response["busy"]:
        assert set(busy_schema["required"]) <= set(item) <= set(busy_schema["properties"])
    (slot,) = _slots(client, scene, minutes=60, facility=scene.facility.id)
    assert set(slot) == set(schemas["FreeSlot"]["required"])
