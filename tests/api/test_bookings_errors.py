"""Refusals and bad input of the bookings API: every policy rule surfaces with its status,
code and ``rule``; malformed requests answer 4xx with a machine-readable body; conflicts
leak nothing about other people's bookings; and nothing is ever written (or answered with
a 500)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import OpeningHours
from tests import factories
from tests.api.bookings_helpers import (
    NOT_FOUND_ID,
    body_for,
    error_of,
    iso,
    make_scene,
    row_of,
    written,
)


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return make_scene(api_token)


def _post(client, scene, body, user=None, **kw):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/bookings", json=body, headers=scene.headers(user or scene.owner),
                       **kw)


# -- malformed input: 4xx, nothing written ---------------------------------------------------

# (case id, change to a valid body (None deletes the key), expected status, field named)
BAD_BODIES = [
    ("instrument-missing", {"instrument_id": None}, 422, "instrument_id"),
    ("start-missing", {"start": None}, 422, "start"),
    ("end-missing", {"end": None}, 422, "end"),
    ("instrument-as-string", {"instrument_id": "1"}, 422, "instrument_id"),
    ("instrument-as-bool", {"instrument_id": True}, 422, "instrument_id"),
    ("instrument-as-float", {"instrument_id": 1.0}, 422, "instrument_id"),
    ("instrument-zero", {"instrument_id": 0}, 422, "instrument_id"),
    ("instrument-huge", {"instrument_id": 10**30}, 422, "instrument_id"),
    ("instrument-null", {"instrument_id": "null"}, 422, "instrument_id"),
    ("start-naive", {"start": "2030-01-07T10:00:00"}, 422, "start"),
    ("end-naive", {"end": "2030-01-07T11:00:00"}, 422, "end"),
    ("start-date-only", {"start": "2030-01-07"}, 422, "start"),
    ("start-garbage", {"start": "next tuesday"}, 422, "start"),
    ("start-epoch-number", {"start": 1893974400}, 422, "start"),
    ("start-bad-offset", {"start": "2030-01-07T10:00:00+25:00"}, 422, "start"),
    ("start-year-1", {"start": "0001-01-01T00:30:00+01:00"}, 422, "start"),
    ("end-year-9999", {"end": "9999-12-31T23:30:00-01:00"}, 422, "end"),
    ("start-null", {"start": "null"}, 422, "start"),
    ("end-before-start", "end-before-start", 422, "end"),
    ("end-equals-start", "end-equals-start", 422, "end"),
    ("purpose-too-long", {"purpose": "x" * 501}, 422, "purpose"),
    ("purpose-not-text", {"purpose": ["a"]}, 422, "purpose"),
    ("purpose-nul", {"purpose": "a\u0000b"}, 422, "purpose"),
    ("assisted-as-string", {"assisted": "yes"}, 422, "assisted"),
    ("account-as-string", {"account_id": "7"}, 422, "account_id"),
    ("account-unknown", {"account_id": NOT_FOUND_ID}, 422, "account_id"),
    ("unknown-key", {"colour": "blue"}, 422, "colour"),
    ("read-only-state", {"state": "confirmed"}, 422, "state"),
    ("read-only-user", {"user_id": 1}, 422, "user_id"),
    ("instrument-unknown", {"instrument_id": NOT_FOUND_ID}, 404, None),
]


def _bad_body(scene, change):  # type: ignore[no-untyped-def]
    body = body_for(scene)
    if change == "end-before-start":
        body["end"] = iso(scene.start - timedelta(hours=1))
    elif change == "end-equals-start":
        body["end"] = body["start"]
    else:
        for key, value in change.items():
            if value is None:
                del body[key]
            else:
                body[key] = None if value == "null" else value
    return body


@pytest.mark.parametrize(("change", "status", "field"), [c[1:] for c in BAD_BODIES],
                         ids=[c[0] for c in BAD_BODIES])
def test_post_booking_bad_input_is_refused_and_writes_nothing(client, scene, change, status,
                                                              field):
    before = written()
    response = _post(client, scene, _bad_body(scene, change))
    error = error_of(response, status, {404: "not_found", 422: "validation"}[status])
    if field:
        assert error["fields"][field][0]
    assert written() == before


def test_post_booking_reports_every_bad_field_at_once(client, scene):
    error = error_of(_post(client, scene, {"start": "2030-01-07T10:00", "colour": 1}),
                     422, "validation")
    assert set(error["fields"]) == {"instrument_id", "start", "end", "colour"}


TRANSPORT = [
    ("form-encoded", {"data": {"start": "x"}}, 415, "unsupported_media_type"),
    ("text-plain", {"data": "{}", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("no-body", {}, 415, "unsupported_media_type"),
    ("malformed", {"data": '{"start": ', "content_type": "application/json"}, 400,
     "bad_request"),
    ("bad-utf8", {"data": b'{"purpose": "\xff"}', "content_type": "application/json"}, 400,
     "bad_request"),
    ("array", {"json": [1]}, 422, "validation"),
    ("null", {"data": "null", "content_type": "application/json"}, 422, "validation"),
]


@pytest.mark.parametrize(("kwargs", "status", "code"), [t[1:] for t in TRANSPORT],
                         ids=[t[0] for t in TRANSPORT])
def test_post_booking_bad_transport(client, scene, kwargs, status, code):
    before = written()
    response = client.post("/api/v1/bookings", headers=scene.headers(scene.owner), **kwargs)
    error_of(response, status, code)
    assert written() == before


@pytest.fixture
def booking(client, scene):  # type: ignore[no-untyped-def]
    response = _post(client, scene, body_for(scene, purpose="mine"))
    assert response.status_code == 201
    return response.get_json()


ACTION_TRANSPORT = [
    ("text-plain", {"data": "reason", "content_type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("form-encoded", {"data": {"reason": "x"}}, 415, "unsupported_media_type"),
    ("malformed", {"data": "{", "content_type": "application/json"}, 400, "bad_request"),
    ("array", {"json": []}, 422, "validation"),
    ("unknown-key", {"json": {"colour": "blue"}}, 422, "validation"),
    ("sequence-as-string", {"json": {"sequence": "0"}}, 422, "validation"),
    ("stale-sequence", {"json": {"sequence": 5}}, 409, "conflict"),
]


@pytest.mark.parametrize(("kwargs", "status", "code"), [t[1:] for t in ACTION_TRANSPORT],
                         ids=[t[0] for t in ACTION_TRANSPORT])
@pytest.mark.parametrize("action", ["cancel", "approve", "check-in", "check-out"])
def test_booking_action_bad_body_changes_nothing(client, scene, booking, action, kwargs, status,
                                                 code):
    before, row = written(), row_of(booking["id"])
    response = client.post(f"/api/v1/bookings/{booking['id']}/{action}",
                           headers=scene.headers(scene.manager), **kwargs)
    error_of(response, status, code)
    assert written() == before and row_of(booking["id"]) == row


@pytest.mark.parametrize("body", [None, {}, {"reason": ""}, {"reason": "   "},
                                  {"reason": "x" * 501}],
                         ids=["no-body", "empty", "empty-reason", "blank-reason", "too-long"])
def test_reject_needs_a_reason(client, scene, booking, body):
    before = written()
    kwargs = {} if body is None else {"json": body}
    response = client.post(f"/api/v1/bookings/{booking['id']}/reject",
                           headers=scene.headers(scene.manager), **kwargs)
    error = error_of(response, 422, "validation")
    assert "reason" in error["fields"]
    assert written() == before


@pytest.mark.parametrize("path", ["", "/cancel", "/approve", "/reject", "/check-in",
                                  "/check-out"])
def test_booking_routes_with_an_unknown_id_are_404(client, scene, path):
    method = client.patch if path == "" else client.post
    body = {"reason": "x"} if path in ("/cancel", "/reject") else {}
    # Ids beyond 32 bits do not match the route; werkzeug then answers PATCH with 405.
    for booking_id in (NOT_FOUND_ID,) + ((2**31, 10**20) if path else ()):
        response = method(f"/api/v1/bookings/{booking_id}{path}", json=body,
                          headers=scene.headers(scene.admin))
        error_of(response, 404, "not_found")


PATCH_BAD = [
    ("start-naive", {"start": "2030-01-07T10:00:00"}, 422, "start"),
    ("end-garbage", {"end": "soon"}, 422, "end"),
    ("end-before-start", "end-before-start", 422, "end"),
    ("not-aligned", "not-aligned", 422, "start"),
    ("purpose-too-long", {"purpose": "x" * 501}, 422, "purpose"),
    ("instrument-read-only", {"instrument_id": 1}, 422, "instrument_id"),
    ("account-read-only", {"account_id": 1}, 422, "account_id"),
    ("state-read-only", {"state": "cancelled"}, 422, "state"),
    ("unknown-key", {"colour": "blue"}, 422, "colour"),
]


@pytest.mark.parametrize(("change", "status", "field"), [c[1:] for c in PATCH_BAD],
                         ids=[c[0] for c in PATCH_BAD])
def test_patch_booking_bad_input_changes_nothing(client, scene, booking, change, status, field):
    start = scene.start
    special = {"end-before-start": {"end": iso(start - timedelta(hours=1))},
               "not-aligned": {"start": iso(start + timedelta(minutes=5))}}
    body = special[change] if isinstance(change, str) else change
    before, row = written(), row_of(booking["id"])
    response = client.patch(f"/api/v1/bookings/{booking['id']}", json=body,
                            headers=scene.headers(scene.owner))
    error = error_of(response, status, "validation")
    assert error["fields"][field]
    assert written() == before and row_of(booking["id"]) == row


def test_patch_of_a_cancelled_booking_is_422(client, scene, booking):
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=scene.headers(scene.owner))
    for body in ({"purpose": "again"}, {"end": iso(scene.start + timedelta(hours=2))}):
        error = error_of(client.patch(f"/api/v1/bookings/{booking['id']}", json=body,
                                      headers=scene.headers(scene.owner)), 422, "validation")
        assert error["rule"] == "state"


LIST_BAD = [
    ("state-unknown", {"state": "lost"}, "state"),
    ("state-empty-item", {"state": "pending,"}, "state"),
    ("from-naive", {"from": "2030-01-07T10:00:00"}, "from"),
    ("to-not-a-time", {"to": "tomorrow"}, "to"),
    ("to-before-from", {"from": "2030-01-08T00:00:00+08:00", "to": "2030-01-07T00:00:00+08:00"},
     "to"),
    ("instrument-not-a-number", {"instrument": "x"}, "instrument"),
    ("mine-not-a-bool", {"mine": "maybe"}, "mine"),
    ("per-page-too-big", {"per_page": 201}, "per_page"),
    ("unknown-parameter", {"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("query", "field"), [c[1:] for c in LIST_BAD],
                         ids=[c[0] for c in LIST_BAD])
def test_list_bookings_bad_query_is_422(client, scene, query, field):
    response = client.get("/api/v1/bookings", query_string=query,
                          headers=scene.headers(scene.owner))
    assert field in error_of(response, 422, "validation")["fields"]


def test_list_bookings_repeated_single_parameter_is_422(client, scene):
    response = client.get("/api/v1/bookings?instrument=1&instrument=2",
                          headers=scene.headers(scene.owner))
    assert "instrument" in error_of(response, 422, "validation")["fields"]


# -- policy rules: each refusal names its rule ------------------------------------------------


def _expect_rule(client, scene, body, status, rule, field=None, user=None):  # type: ignore
    headers = scene.headers(user or scene.owner)
    before = written()
    response = client.post("/api/v1/bookings", json=body, headers=headers)
    error = error_of(response, status, {403: "forbidden", 422: "validation"}[status])
    assert error["rule"] == rule
    if field:
        assert error["fields"][field] == [error["message"]]
    assert written() == before
    return error


@pytest.mark.parametrize(("setup", "minutes", "offset", "rule", "field"), [
    ({}, 60, timedelta(minutes=5), "granularity", "start"),
    ({}, 50, timedelta(0), "granularity", "end"),
    ({"min_minutes": 30}, 15, timedelta(0), "min_duration", "end"),
    ({}, 9 * 60, timedelta(0), "max_duration", "end"),
    ({}, 60, -timedelta(days=3), "past", "start"),
    ({"lead_minutes": 3 * 24 * 60}, 60, timedelta(0), "lead_time", "start"),
    ({"horizon_days": 1}, 60, timedelta(0), "horizon", "start"),
    ({"status": "down"}, 60, timedelta(0), "instrument_unavailable", "instrument_id"),
    ({"user_weekly_quota_minutes": 30}, 60, timedelta(0), "user_quota", "start"),
    ({"team_weekly_quota_minutes": 45}, 60, timedelta(0), "team_quota", "start"),
])
def test_post_booking_policy_refusals_name_the_rule(client, scene, setup, minutes, offset, rule,
                                                    field):
    for name, value in setup.items():
        setattr(scene.instrument, name, value)
    db.session.commit()
    _expect_rule(client, scene, body_for(scene, start=scene.start + offset, minutes=minutes),
                 422, rule, field)


def test_post_booking_outside_staffed_hours_needs_advanced(client, scene):
    basic = factories.make_booker(scene.instrument, level="basic")
    scene.facility.opening_hours = [OpeningHours(weekday=d, opens=time(0, 0), closes=time(0, 15))
                                    for d in range(7)]
    db.session.commit()
    _expect_rule(client, scene, body_for(scene), 422, "staffed_hours", "start", user=basic)
    assert _post(client, scene, body_for(scene)).status_code == 201  # the owner is advanced


@pytest.mark.parametrize("change", [{"active": False}, {"valid_until": date(2021, 1, 1)}],
                         ids=["inactive", "expired"])
def test_post_booking_on_an_unusable_account_is_422(client, scene, change):
    account = scene.owner.memberships[0].team.default_account
    for name, value in change.items():
        setattr(account, name, value)
    db.session.commit()
    _expect_rule(client, scene, body_for(scene), 422, "account", "account_id")


def test_post_booking_on_another_teams_account_is_422(client, scene):
    theirs = scene.stranger.memberships[0].team.default_account
    _expect_rule(client, scene, body_for(scene, account_id=theirs.id), 422, "account",
                 "account_id")


def test_post_booking_without_a_default_account_asks_for_one(client, scene):
    second = factories.make_team()  # a second team with its own default: ambiguous
    factories.make_account(second, is_default=True)
    factories.add_member(second, scene.owner)
    db.session.commit()
    _expect_rule(client, scene, body_for(scene), 422, "account", "account_id")


def test_post_booking_unqualified_is_403(client, scene):
    newcomer = factories.make_user_with_role("researcher", team=scene.owner.memberships[0].team)
    db.session.commit()
    error = _expect_rule(client, scene, body_for(scene), 403, "qualification", user=newcomer)
    assert "fields" not in error


def test_post_booking_with_an_expired_qualification_is_403(client, scene):
    newcomer = factories.make_user_with_role("researcher", team=scene.owner.memberships[0].team)
    factories.make_qualification(newcomer, scene.instrument,
                                 expires_at=now_utc() - timedelta(days=1))
    db.session.commit()
    _expect_rule(client, scene, body_for(scene), 403, "qualification", user=newcomer)


# -- conflicts and privacy ------------------------------------------------------------------------


def test_conflict_answer_to_a_stranger_carries_no_details(client, scene, booking):
    before = written()
    response = _post(client, scene, body_for(scene, start=scene.start + timedelta(minutes=15)),
                     user=scene.stranger)
    error = error_of(response, 409, "conflict")
    (clash,) = error["conflicts"]
    assert set(clash) == {"start", "end", "kind"}
    text = response.get_data(as_text=True)
    assert "Olivia" not in text and "mine" not in text and str(scene.owner.id) not in clash
    assert len(error["alternatives"]) == 3
    assert written() == before


def test_conflict_answer_to_the_manager_names_the_booking(client, scene, booking):
    account = scene.owner.memberships[0].team.default_account
    factories.add_member(account.team, scene.manager)  # managers charge their own team
    db.session.commit()
    response = _post(client, scene, body_for(scene, account_id=account.id), user=scene.manager)
    (clash,) = error_of(response, 409, "conflict")["conflicts"]
    assert (clash["booking_id"], clash["user"], clash["purpose"]) == (
        booking["id"], "Olivia Owner", "mine")


def test_conflict_with_the_buffer_is_409(client, scene):
    scene.instrument.buffer_minutes = 15
    db.session.commit()
    assert _post(client, scene, body_for(scene)).status_code == 201
    response = _post(client, scene, body_for(scene, start=scene.start + timedelta(hours=1)),
                     user=scene.stranger)
    (clash,) = error_of(response, 409, "conflict")["conflicts"]
    assert clash["end"].endswith("+08:00")  # in the facility's zone, like every time shown
    assert datetime.fromisoformat(clash["end"]) == scene.start + timedelta(minutes=75)
