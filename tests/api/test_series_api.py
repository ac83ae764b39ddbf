"""Recurring bookings over the API: POST /bookings with ``recurrence`` and ``mode``,
cancel scopes, GET /series/{id}. Both databases."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking, BookingSeries
from labbook.extensions import db
from tests import factories
from tests.api.bookings_helpers import (
    SHANGHAI,
    body_for,
    count,
    error_of,
    iso,
    make_scene,
    written,
)

WEEKLY_4 = {"freq": "weekly", "count": 4}


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return make_scene(api_token)


def _post(client, scene, user=None, **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/bookings", json=body_for(scene, **extra),
                       headers=scene.headers(user or scene.owner))


def _taken(scene, weeks: int = 2):  # type: ignore[no-untyped-def]
    """Another user's booking on the ``weeks``-th repetition of the scene's slot."""
    booking = factories.make_booking(scene.instrument, scene.stranger,
                                     start=scene.start + timedelta(weeks=weeks))
    db.session.commit()
    return booking


def _series(client, scene, rule=WEEKLY_4):  # type: ignore[no-untyped-def]
    response = _post(client, scene, recurrence=rule)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_post_series_weekly_books_four_occurrences(client, scene):
    response = _post(client, scene, recurrence=WEEKLY_4, purpose="weekly imaging")
    assert response.status_code == 201
    data = response.get_json()
    assert set(data) == {"series_id", "mode", "booked", "failed"}
    assert data["mode"] == "all_or_nothing" and data["failed"] == []
    assert [b["start"] for b in data["booked"]] == [
        iso(scene.start + timedelta(weeks=k)) for k in range(4)]
    assert {b["series_id"] for b in data["booked"]} == {data["series_id"]}
    assert {b["purpose"] for b in data["booked"]} == {"weekly imaging"}
    assert response.headers["Location"].endswith(f"/api/v1/series/{data['series_id']}")
    assert count(Booking) == 4 and count(BookingSeries) == 1


def test_post_series_fit_mode_books_what_fits_and_lists_the_failure(client, scene):
    _taken(scene)
    response = _post(client, scene, recurrence=WEEKLY_4, mode="fit")
    assert response.status_code == 201
    data = response.get_json()
    assert data["mode"] == "fit" and len(data["booked"]) == 3
    [failed] = data["failed"]
    assert failed["index"] == 2 and failed["outcome"] == "failed"
    assert failed["rule"] == "overlap" and failed["message"]
    assert failed["start"] == iso(scene.start + timedelta(weeks=2))
    assert failed["conflicts"] and "user" not in failed["conflicts"][0]
    assert db.session.scalar(sa.select(sa.func.count(Booking.id)).where(
        Booking.series_id == data["series_id"])) == 3


def test_post_series_all_or_nothing_with_a_clash_is_409_and_writes_nothing(client, scene):
    _taken(scene)
    before = written()
    series_before = count(BookingSeries)
    error = error_of(_post(client, scene, recurrence=WEEKLY_4), 409, "conflict")
    assert error["mode"] == "all_or_nothing"
    assert [o["outcome"] for o in error["occurrences"]] == [
        "bookable", "bookable", "failed", "bookable"]
    assert [f["index"] for f in error["failed"]] == [2]
    assert written() == before and count(BookingSeries) == series_before


@pytest.mark.parametrize(("rule", "fields"), [
    ({"freq": "hourly", "count": 2}, {"recurrence.freq"}),
    ({"freq": "weekly"}, {"recurrence.count", "recurrence.until"}),
    ({"freq": "weekly", "count": 2, "until": "2031-01-01"},
     {"recurrence.count", "recurrence.until"}),
    ({"freq": "daily", "count": 0, "interval": 99}, {"recurrence.count", "recurrence.interval"}),
    ({"freq": "weekly", "count": 2, "byweekday": [9]}, {"recurrence.byweekday"}),
    ({"freq": "weekly", "until": "someday"}, {"recurrence.until"}),
    ({"freq": "daily", "count": 2, "colour": "red"}, {"recurrence.colour"}),
    ("weekly", {"recurrence"}),
    ([], {"recurrence"}),
])
def test_post_series_bad_recurrence_is_422_with_recurrence_fields(client, scene, rule, fields):
    before = written()
    error = error_of(_post(client, scene, recurrence=rule), 422, "validation")
    assert set(error["fields"]) == fields
    assert written() == before


def test_post_series_weekday_must_include_the_first_day(client, scene):
    other_day = (scene.start.astimezone(SHANGHAI).weekday() + 1) % 7
    error = error_of(_post(client, scene, recurrence={"freq": "weekly", "count": 2,
                                                      "byweekday": [other_day]}),
                     422, "validation")
    assert set(error["fields"]) == {"recurrence.byweekday"}


@pytest.mark.parametrize("mode", ["fit", "all_or_nothing"])
def test_post_booking_mode_without_recurrence_is_422(client, scene, mode):
    before = written()
    error = error_of(_post(client, scene, mode=mode), 422, "validation")
    assert set(error["fields"]) == {"mode"}
    assert written() == before


def test_post_series_unknown_mode_is_422(client, scene):
    error = error_of(_post(client, scene, recurrence=WEEKLY_4, mode="some"), 422, "validation")
    assert set(error["fields"]) == {"mode"}


def test_post_booking_without_recurrence_is_unchanged(client, scene):
    response = _post(client, scene)
    assert response.status_code == 201
    data = response.get_json()
    assert data["series_id"] is None and data["state"] == "confirmed"
    assert response.headers["Location"].endswith(f"/api/v1/bookings/{data['id']}")


# -- cancel scopes ------------------------------------------------------------------------------


def _cancel(client, scene, booking_id, user=None, **body):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/bookings/{booking_id}/cancel", json=body or None,
                       headers=scene.headers(user or scene.owner))


def _states(series_id: int) -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(Booking.state).where(
        Booking.series_id == series_id).order_by(Booking.start_at)))


def test_cancel_occurrence_scope_answers_with_the_booking(client, scene):
    data = _series(client, scene)
    second = data["booked"][1]["id"]
    response = _cancel(client, scene, second, scope="occurrence")
    assert response.status_code == 200
    assert response.get_json()["id"] == second and response.get_json()["state"] == "cancelled"
    assert _states(data["series_id"]) == ["confirmed", "cancelled", "confirmed", "confirmed"]


def test_cancel_without_scope_cancels_only_that_occurrence(client, scene):
    data = _series(client, scene)
    response = _cancel(client, scene, data["booked"][0]["id"])
    assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
    assert _states(data["series_id"]) == ["cancelled", "confirmed", "confirmed", "confirmed"]


def test_cancel_following_scope_cancels_this_and_later_ones(client, scene):
    data = _series(client, scene)
    response = _cancel(client, scene, data["booked"][1]["id"], scope="following",
                       reason="project ended")
    assert response.status_code == 200
    cancelled = response.get_json()["cancelled"]
    assert [b["id"] for b in cancelled] == [b["id"] for b in data["booked"][1:]]
    assert {b["state"] for b in cancelled} == {"cancelled"}
    assert {b["state_reason"] for b in cancelled} == {"project ended"}
    assert _states(data["series_id"]) == ["confirmed", "cancelled", "cancelled", "cancelled"]


def test_cancel_series_scope_by_the_manager_cancels_every_upcoming_one(client, scene):
    data = _series(client, scene)
    response = _cancel(client, scene, data["booked"][2]["id"], user=scene.manager,
                       scope="series")
    assert response.status_code == 200
    assert len(response.get_json()["cancelled"]) == 4
    assert _states(data["series_id"]) == ["cancelled"] * 4
    again = _cancel(client, scene, data["booked"][0]["id"], scope="series")
    assert again.status_code == 200 and again.get_json() == {"cancelled": []}


@pytest.mark.parametrize("scope", ["following", "series"])
def test_cancel_series_scope_outside_a_series_is_422(client, scene, scope):
    booking = _post(client, scene).get_json()
    before = written()
    error = error_of(_cancel(client, scene, booking["id"], scope=scope), 422, "validation")
    assert set(error["fields"]) == {"scope"}
    assert written() == before


def test_cancel_bad_scope_is_422(client, scene):
    data = _series(client, scene)
    error = error_of(_cancel(client, scene, data["booked"][0]["id"], scope="all"), 422,
                     "validation")
    assert set(error["fields"]) == {"scope"}


def test_cancel_series_scope_by_a_stranger_is_404_and_writes_nothing(client, scene):
    data = _series(client, scene)
    before = written()
    error_of(_cancel(client, scene, data["booked"][0]["id"], user=scene.stranger,
                     scope="series"), 404, "not_found")
    assert written() == before


# -- GET /series/{id} ---------------------------------------------------------------------------


def test_get_series_lists_its_bookings_and_rule(client, scene):
    data = _series(client, scene)
    response = client.get(f"/api/v1/series/{data['series_id']}",
                          headers=scene.headers(scene.owner))
    assert response.status_code == 200
    series = response.get_json()
    assert series["id"] == data["series_id"] and series["user_id"] == scene.owner.id
    assert series["rule"] == {"freq": "weekly", "interval": 1,
                              "byweekday": [scene.start.astimezone(
                                  SHANGHAI).weekday()], "count": 4}
    assert series["timezone"] == scene.facility.timezone
    assert [b["id"] for b in series["bookings"]] == [b["id"] for b in data["booked"]]


@pytest.mark.parametrize(("who", "status"), [
    ("owner", 200), ("manager", 200), ("admin", 200), ("stranger", 404),
    ("other_manager", 404),
])
def test_get_series_is_private(client, scene, who, status):
    data = _series(client, scene)
    response = client.get(f"/api/v1/series/{data['series_id']}",
                          headers=scene.headers(getattr(scene, who)))
    assert response.status_code == status
    if status == 404:
        assert response.get_json()["error"]["code"] == "not_found"


def test_get_series_unknown_is_404(client, scene):
    response = client.get("/api/v1/series/2147483647", headers=scene.headers(scene.owner))
    error_of(response, 404, "not_found")
