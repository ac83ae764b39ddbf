"""The bookings API: changing bookings (PATCH) and moving them through their states
(cancel, approve, reject, check-in, check-out), on both databases."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.db import now_utc
from labbook.extensions import db
from tests import factories
from tests.api.bookings_helpers import (
    body_for,
    error_of,
    iso,
    make_scene,
    row_of,
    whole_hour,
    written,
)


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return make_scene(api_token)


def _book(client, scene, user=None, **kw):  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/bookings", json=body_for(scene, **kw),
                           headers=scene.headers(user or scene.owner))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- change -----------------------------------------------------------------------------------


def test_patch_booking_moves_it(client, scene):
    booking = _book(client, scene)
    new_start = scene.start + timedelta(hours=5)
    response = client.patch(f"/api/v1/bookings/{booking['id']}",
                            json={"start": iso(new_start),
                                  "end": iso(new_start + timedelta(minutes=90)),
                                  "sequence": booking["sequence"]},
                            headers=scene.headers(scene.owner))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["start"] == iso(new_start) and body["sequence"] == booking["sequence"] + 1
    assert row_of(booking["id"])["end_at"] == new_start + timedelta(minutes=90)


def test_patch_booking_extends_with_end_only(client, scene):
    booking = _book(client, scene)
    end = scene.start + timedelta(hours=2)
    body = client.patch(f"/api/v1/bookings/{booking['id']}", json={"end": iso(end)},
                        headers=scene.headers(scene.owner)).get_json()
    assert (body["start"], body["end"]) == (booking["start"], iso(end))


def test_patch_booking_purpose_only_keeps_times_and_audits(client, scene):
    booking = _book(client, scene, purpose="old")
    response = client.patch(f"/api/v1/bookings/{booking['id']}", json={"purpose": "new"},
                            headers=scene.headers(scene.owner))
    body = response.get_json()
    assert (body["purpose"], body["start"], body["sequence"]) == ("new", booking["start"], 1)
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "booking.update"))
    assert entry.before == {"purpose": "old"} and entry.after == {"purpose": "new"}


def test_patch_booking_same_times_do_not_send_it_back_to_approval(client, scene):
    scene.instrument.requires_approval = True
    db.session.commit()
    booking = _book(client, scene)
    client.post(f"/api/v1/bookings/{booking['id']}/approve", headers=scene.headers(scene.manager))
    body = client.patch(f"/api/v1/bookings/{booking['id']}",
                        json={"start": booking["start"], "end": booking["end"]},
                        headers=scene.headers(scene.owner)).get_json()
    assert body["state"] == "confirmed"


def test_patch_booking_owner_move_needs_approval_again(client, scene):
    scene.instrument.requires_approval = True
    db.session.commit()
    booking = _book(client, scene)
    client.post(f"/api/v1/bookings/{booking['id']}/approve", headers=scene.headers(scene.manager))
    new_start = scene.start + timedelta(hours=4)
    body = client.patch(f"/api/v1/bookings/{booking['id']}",
                        json={"start": iso(new_start), "end": iso(new_start + timedelta(hours=1))},
                        headers=scene.headers(scene.owner)).get_json()
    assert body["state"] == "pending"


def test_patch_booking_by_the_manager_ignores_the_window_rules(client, scene):
    booking = _book(client, scene)
    scene.instrument.lead_minutes = 7 * 24 * 60  # the owner could no longer book this
    db.session.commit()
    moved = {"start": iso(scene.start + timedelta(hours=1)),
             "end": iso(scene.start + timedelta(hours=2))}
    url = f"/api/v1/bookings/{booking['id']}"
    refused = client.patch(url, json=moved, headers=scene.headers(scene.owner))
    assert error_of(refused, 422, "validation")["rule"] == "lead_time"
    response = client.patch(url, json=moved, headers=scene.headers(scene.manager))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["start"] == moved["start"]


def test_patch_booking_with_a_stale_sequence_is_409_and_changes_nothing(client, scene):
    booking = _book(client, scene, purpose="old")
    client.patch(f"/api/v1/bookings/{booking['id']}", json={"purpose": "newer"},
                 headers=scene.headers(scene.owner))
    before = row_of(booking["id"])
    response = client.patch(f"/api/v1/bookings/{booking['id']}",
                            json={"purpose": "stale", "sequence": 0},
                            headers=scene.headers(scene.owner))
    error = error_of(response, 409, "conflict")
    assert error["sequence"] == 1
    assert row_of(booking["id"]) == before


def test_patch_booking_into_a_taken_time_is_409_with_alternatives(client, scene):
    booking = _book(client, scene)
    _book(client, scene, user=scene.stranger, start=scene.start + timedelta(hours=2))
    before = row_of(booking["id"])
    response = client.patch(f"/api/v1/bookings/{booking['id']}",
                            json={"end": iso(scene.start + timedelta(hours=3))},
                            headers=scene.headers(scene.owner))
    error = error_of(response, 409, "conflict")
    assert error["alternatives"] and set(error["conflicts"][0]) == {"start", "end", "kind"}
    assert row_of(booking["id"]) == before


# -- transitions --------------------------------------------------------------------------------


@pytest.mark.parametrize("request_kwargs", [
    {}, {"json": {}}, {"data": "", "content_type": "application/json"},
    {"json": {"reason": "plans changed"}},
], ids=["no-body", "empty-object", "empty-json-body", "with-reason"])
def test_cancel_booking_with_or_without_body(client, scene, request_kwargs):
    booking = _book(client, scene)
    response = client.post(f"/api/v1/bookings/{booking['id']}/cancel",
                           headers=scene.headers(scene.owner), **request_kwargs)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "cancelled" and body["late_cancel"] is False
    assert body["state_reason"] == request_kwargs.get("json", {}).get("reason")
    assert row_of(booking["id"])["state"] == "cancelled"


def test_cancel_booking_inside_the_notice_is_late_for_the_owner_only(client, scene):
    soon = whole_hour(days=0.5)
    first = _book(client, scene, start=soon)
    second = _book(client, scene, start=soon + timedelta(hours=1))
    late = client.post(f"/api/v1/bookings/{first['id']}/cancel",
                       headers=scene.headers(scene.owner)).get_json()
    by_manager = client.post(f"/api/v1/bookings/{second['id']}/cancel",
                             headers=scene.headers(scene.manager)).get_json()
    assert (late["late_cancel"], by_manager["late_cancel"]) == (True, False)


def test_cancel_booking_by_a_stranger_is_404_and_changes_nothing(client, scene):
    booking = _book(client, scene)
    headers = scene.headers(scene.stranger)
    before = written()
    response = client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=headers)
    error_of(response, 404, "not_found")
    assert written() == before and row_of(booking["id"])["state"] == "confirmed"


def test_approve_and_reject_pending_bookings(client, scene):
    scene.instrument.requires_approval = True
    db.session.commit()
    first = _book(client, scene)
    second = _book(client, scene, start=scene.start + timedelta(hours=2))
    approved = client.post(f"/api/v1/bookings/{first['id']}/approve", json={"sequence": 0},
                           headers=scene.headers(scene.manager))
    assert approved.status_code == 200 and approved.get_json()["state"] == "confirmed"
    rejected = client.post(f"/api/v1/bookings/{second['id']}/reject",
                           json={"reason": "instrument booked for a course"},
                           headers=scene.headers(scene.admin))
    assert rejected.status_code == 200
    assert rejected.get_json()["state_reason"] == "instrument booked for a course"
    assert [row_of(b["id"])["state"] for b in (first, second)] == ["confirmed", "rejected"]


def test_approve_by_the_owner_is_403_naming_the_rule(client, scene):
    scene.instrument.requires_approval = True
    db.session.commit()
    booking = _book(client, scene)
    headers = scene.headers(scene.owner)
    before = written()
    error = error_of(client.post(f"/api/v1/bookings/{booking['id']}/approve",
                                 headers=headers), 403, "forbidden")
    assert error["rule"] == "manager"
    assert written() == before


def test_approve_a_confirmed_booking_is_422(client, scene):
    booking = _book(client, scene)
    error = error_of(client.post(f"/api/v1/bookings/{booking['id']}/approve",
                                 headers=scene.headers(scene.manager)), 422, "validation")
    assert error["rule"] == "state" and "state" in error["fields"]
    assert error["message"] == "The booking is “Confirmed”; it cannot become “Confirmed”."


def test_check_in_and_out(client, scene):
    start = now_utc().replace(minute=0, second=0, microsecond=0)
    booking = factories.make_booking(scene.instrument, scene.owner, start=start,
                                     end=start + timedelta(hours=2))
    db.session.commit()
    url = f"/api/v1/bookings/{booking.id}"
    checked_in = client.post(f"{url}/check-in", headers=scene.headers(scene.owner)).get_json()
    assert checked_in["state"] == "in_use" and checked_in["checked_in_at"].endswith("+08:00")
    checked_out = client.post(f"{url}/check-out", json={"sequence": checked_in["sequence"]},
                              headers=scene.headers(scene.manager)).get_json()
    assert checked_out["state"] == "completed" and checked_out["checked_out_at"]
    stored = row_of(booking.id)
    assert stored["checked_in_at"] <= stored["checked_out_at"]


def test_check_in_long_before_the_start_is_422(client, scene):
    booking = _book(client, scene)
    error = error_of(client.post(f"/api/v1/bookings/{booking['id']}/check-in",
                                 headers=scene.headers(scene.owner)), 422, "validation")
    assert error["rule"] == "check_in_window"
    assert row_of(booking["id"])["state"] == "confirmed"


def test_check_out_of_a_booking_not_running_is_422(client, scene):
    booking = _book(client, scene)
    error = error_of(client.post(f"/api/v1/bookings/{booking['id']}/check-out",
                                 headers=scene.headers(scene.owner)), 422, "validation")
    assert error["rule"] == "state"
