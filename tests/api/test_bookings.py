"""The bookings API: creating, reading and listing bookings, and the retry of lost races, on
both databases. Changes and state transitions are in test_bookings_changes.py, refusals
and bad input in test_bookings_errors.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook import db as db_layer
from labbook.bookings.models import Booking, Outage
from labbook.db import now_utc
from labbook.extensions import db
from tests import factories
from tests.api.bookings_helpers import (
    body_for,
    error_of,
    iso,
    make_scene,
    written,
)

BOOKING_FIELDS = {
    "id", "instrument_id", "user_id", "team_id", "account_id", "start", "end", "state",
    "purpose", "assisted", "series_id", "sequence", "late_cancel", "created_at", "updated_at",
    "state_reason", "checked_in_at", "checked_out_at",
}


@pytest.fixture
def scene(app, api_token):  # type: ignore[no-untyped-def]
    return make_scene(api_token)


def _book(client, scene, user=None, **kw):  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/bookings", json=body_for(scene, **kw),
                           headers=scene.headers(user or scene.owner))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- create ---------------------------------------------------------------------------------


def test_post_booking_creates_and_answers_with_the_booking(client, scene):
    headers = scene.headers(scene.owner)
    before = written()
    response = client.post("/api/v1/bookings", json=body_for(scene, purpose="EDS maps"),
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == BOOKING_FIELDS
    assert response.headers["Location"].endswith(f"/api/v1/bookings/{body['id']}")
    account = scene.owner.memberships[0].team.default_account
    assert (body["state"], body["user_id"], body["account_id"], body["team_id"]) == (
        "confirmed", scene.owner.id, account.id, account.team_id)
    assert body["start"] == iso(scene.start) and body["start"].endswith("+08:00")
    assert datetime.fromisoformat(body["end"]) == scene.start + timedelta(hours=1)
    assert body["purpose"] == "EDS maps" and body["assisted"] is False
    assert body["sequence"] == 0 and body["series_id"] is None
    assert written()["Reservation"] == before["Reservation"] + 1
    stored = db.session.get(Booking, body["id"])
    assert stored.start_at == scene.start and stored.block_end == stored.end_at
    assert db.session.scalar(sa.select(AuditEntry.action).where(
        AuditEntry.object_type == "Booking", AuditEntry.object_id == str(body["id"]))
    ) == "booking.create"


def test_post_booking_accepts_any_offset_and_answers_in_the_facility_zone(client, scene):
    new_york = timezone(timedelta(hours=-5))
    response = client.post("/api/v1/bookings", headers=scene.headers(scene.owner), json={
        "instrument_id": scene.instrument.id,
        "start": scene.start.isoformat().replace("+00:00", "Z"),
        "end": (scene.start + timedelta(hours=1)).astimezone(new_york).isoformat()})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["start"] == iso(scene.start)
    assert datetime.fromisoformat(body["end"]) == scene.start + timedelta(hours=1)


def test_post_booking_is_pending_when_approval_is_required(client, scene):
    scene.instrument.requires_approval = True
    db.session.commit()
    assert _book(client, scene)["state"] == "pending"


def test_post_booking_by_the_facility_manager_skips_approval(client, scene):
    scene.instrument.requires_approval = True
    team = scene.owner.memberships[0].team
    factories.add_member(team, scene.manager)  # a manager charges their own team's account
    db.session.commit()
    body = _book(client, scene, user=scene.manager, account_id=team.default_account.id)
    assert body["state"] == "confirmed" and body["user_id"] == scene.manager.id


def test_post_booking_with_explicit_account_and_assisted(client, scene):
    team = scene.owner.memberships[0].team
    grant = factories.make_account(team, kind="grant", valid_from=now_utc().date())
    db.session.commit()
    body = _book(client, scene, account_id=grant.id, assisted=True, purpose=" cells ")
    assert (body["account_id"], body["assisted"]) == (grant.id, True)
    assert body["purpose"] == "cells"


def test_post_booking_conflict_is_409_with_conflicts_and_alternatives(client, scene):
    first = _book(client, scene)
    headers = scene.headers(scene.owner)
    before = written()
    response = client.post("/api/v1/bookings", headers=headers,
                           json=body_for(scene, start=scene.start + timedelta(minutes=30)))
    error = error_of(response, 409, "conflict")
    assert error["conflicts"][0]["booking_id"] == first["id"]  # the owner sees their own
    assert len(error["alternatives"]) == 3
    for alternative in error["alternatives"]:
        start = datetime.fromisoformat(alternative["start"])
        assert start >= scene.start + timedelta(hours=1) or start <= scene.start - timedelta(
            hours=1)
    assert written() == before


# -- read -----------------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["owner", "manager", "admin"])
def test_get_booking_for_those_who_may_see_it(client, scene, viewer):
    booking = _book(client, scene, purpose="secret")
    response = client.get(f"/api/v1/bookings/{booking['id']}",
                          headers=scene.headers(getattr(scene, viewer)))
    assert response.status_code == 200
    assert response.get_json() == client.get(
        f"/api/v1/bookings/{booking['id']}", headers=scene.headers(scene.owner)).get_json()
    assert response.get_json()["purpose"] == "secret"


@pytest.mark.parametrize("viewer", ["stranger", "other_manager"])
def test_get_booking_of_someone_else_is_404(client, scene, viewer):
    booking = _book(client, scene)
    response = client.get(f"/api/v1/bookings/{booking['id']}",
                          headers=scene.headers(getattr(scene, viewer)))
    error = error_of(response, 404, "not_found")
    assert error == error_of(client.get("/api/v1/bookings/2147483647",
                                        headers=scene.headers(scene.stranger)),
                             404, "not_found")


def test_get_booking_of_an_outage_id_is_404(client, scene):
    outage = Outage(instrument=scene.instrument, start_at=scene.start,
                    end_at=scene.start + timedelta(hours=1),
                    block_end=scene.start + timedelta(hours=1), state="scheduled",
                    outage_kind="repair", title="gun")
    db.session.add(outage)
    db.session.commit()
    error_of(client.get(f"/api/v1/bookings/{outage.id}", headers=scene.headers(scene.admin)),
             404, "not_found")


# -- list -----------------------------------------------------------------------------------


@pytest.fixture
def several(client, scene):  # type: ignore[no-untyped-def]
    """The owner's booking at start (confirmed) and +3 h (cancelled), the stranger's at
    +1 h, and a booking of the owner's on an instrument of another facility."""
    mine = _book(client, scene)
    cancelled = _book(client, scene, start=scene.start + timedelta(hours=3))
    client.post(f"/api/v1/bookings/{cancelled['id']}/cancel",
                headers=scene.headers(scene.owner))
    theirs = _book(client, scene, user=scene.stranger, start=scene.start + timedelta(hours=1))
    elsewhere = factories.make_instrument(requires_qualification=False)
    away = factories.make_booking(elsewhere, scene.owner, start=scene.start,
                                  end=scene.start + timedelta(hours=1))
    db.session.commit()
    return {"mine": mine["id"], "cancelled": cancelled["id"], "theirs": theirs["id"],
            "away": away.id}


def _ids(client, headers, **query) -> list[int]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/bookings", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_list_bookings_shows_only_your_own_by_default(client, scene, several):
    ids = _ids(client, scene.headers(scene.owner))
    assert ids == [several["mine"], several["away"], several["cancelled"]]
    assert _ids(client, scene.headers(scene.stranger)) == [several["theirs"]]
    assert _ids(client, scene.headers(scene.manager)) == []


def test_list_bookings_filters(client, scene, several):
    headers = scene.headers(scene.owner)
    assert _ids(client, headers, instrument=scene.instrument.id) == [
        several["mine"], several["cancelled"]]
    assert _ids(client, headers, state="cancelled") == [several["cancelled"]]
    both = [several["mine"], several["away"], several["cancelled"]]
    assert _ids(client, headers, state="cancelled,confirmed") == both
    query = "state=confirmed&state=cancelled"
    response = client.get(f"/api/v1/bookings?{query}", headers=headers)
    assert [i["id"] for i in response.get_json()["items"]] == both
    later = iso(scene.start + timedelta(hours=2))
    assert _ids(client, headers, **{"from": later}) == [several["cancelled"]]
    assert _ids(client, headers, to=later) == [several["mine"], several["away"]]
    assert _ids(client, headers, facility=scene.facility.id, mine="true") == [
        several["mine"], several["cancelled"]]


def test_list_bookings_of_a_managed_facility(client, scene, several):
    expected = [several["mine"], several["theirs"], several["cancelled"]]
    assert _ids(client, scene.headers(scene.manager), facility=scene.facility.id) == expected
    assert _ids(client, scene.headers(scene.manager), mine="false") == expected
    assert _ids(client, scene.headers(scene.admin), facility=scene.facility.id) == expected
    assert len(_ids(client, scene.headers(scene.admin), mine="false")) == 4


@pytest.mark.parametrize("who", ["owner", "other_manager"])
def test_list_bookings_of_a_facility_you_do_not_manage_is_403(client, scene, several, who):
    response = client.get("/api/v1/bookings", query_string={"facility": scene.facility.id},
                          headers=scene.headers(getattr(scene, who)))
    error_of(response, 403, "forbidden")


def test_list_bookings_mine_false_shows_a_researcher_only_their_own(client, scene, several):
    assert _ids(client, scene.headers(scene.stranger), mine="false") == [several["theirs"]]


def test_list_bookings_pages(client, scene, several):
    response = client.get("/api/v1/bookings", query_string={"per_page": 2, "page": 2},
                          headers=scene.headers(scene.owner))
    body = response.get_json()
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 3)
    assert [item["id"] for item in body["items"]] == [several["cancelled"]]


# -- retries ------------------------------------------------------------------------------------


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, _DriverError(sqlstate))


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "23P01"])
def test_run_with_retry_runs_the_unit_again_after_a_lost_race(app, sqlstate):
    calls = []

    def unit() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _db_error(sqlstate)
        return "done"

    assert db_layer.run_with_retry(unit) == "done"
    assert len(calls) == 3


def test_run_with_retry_gives_up_after_the_last_attempt(app):
    calls = []

    def unit() -> None:
        calls.append(1)
        raise _db_error("40P01")

    with pytest.raises(sa.exc.OperationalError):
        db_layer.run_with_retry(unit)
    assert len(calls) == db_layer.MAX_ATTEMPTS


def test_run_with_retry_does_not_retry_other_database_errors(app):
    calls = []

    def unit() -> None:
        calls.append(1)
        raise _db_error("23505")

    with pytest.raises(sa.exc.OperationalError):
        db_layer.run_with_retry(unit)
    assert len(calls) == 1


def test_run_with_retry_commits_the_unit(app):
    team = factories.make_team(name="Retry team")
    db_layer.run_with_retry(lambda: setattr(team, "name", "Committed"))
    db.session.rollback()  # would undo anything not committed
    assert db.session.get(type(team), team.id).name == "Committed"


def test_a_booking_costs_eight_statements_and_renders_no_mail(app, client, scene):
    """The create path's round trips (issue 3's target: at most 8): token, instrument with
    its qualifications, account, lock (PostgreSQL), overlap check, three inserts. The
    test harness's SAVEPOINTs and SQLite's BEGIN are transaction control, not counted."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    headers, body = scene.headers(scene.owner), body_for(scene)
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.post("/api/v1/bookings", json=body, headers=headers)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 201, response.get_json()
    control = ("SAVEPOINT", "RELEASE", "BEGIN", "ROLLBACK")
    data = [s for s in seen if not s.upper().startswith(control)]
    tables = [s.split()[2] if s.startswith("INSERT") else s.split(" FROM ")[1].split()[0]
              for s in data if " FROM " in s or s.startswith("INSERT")]
    locks = [s for s in data if "pg_advisory_xact_lock" in s]
    assert tables == ["api_tokens", "instruments", "accounts", "reservations", "reservations",
                      "audit_log", "notifications"], data
    assert len(locks) == (1 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgres")
                          else 0)
    assert len(data) <= 8
    assert not any("outbox_messages" in s or "notification_preferences" in s for s in seen)


# -- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_documents_the_booking_operations(client, scene):
    document = client.get("/api/v1/openapi.json", headers=scene.headers(scene.owner)).get_json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    create = paths["/bookings"]["post"]
    assert {"201", "403", "404", "409", "422"} <= set(create["responses"])
    assert "Location" in create["responses"]["201"]["headers"]
    assert set(schemas["BookingCreate"]["required"]) == {"instrument_id", "start", "end"}
    assert schemas["BookingCreate"]["properties"]["start"]["format"] == "date-time"
    for action in ("cancel", "approve", "check-in", "check-out"):
        assert paths[f"/bookings/{{booking_id}}/{action}"]["post"]["requestBody"][
            "required"] is False
    assert paths["/bookings/{booking_id}/reject"]["post"]["requestBody"]["required"] is True
    state = next(p for p in paths["/bookings"]["get"]["parameters"] if p["name"] == "state")
    assert state["schema"]["type"] == "array" and "no_show" in state["schema"]["items"]["enum"]


def test_openapi_booking_schema_is_what_the_api_sends(client, scene):
    document = client.get("/api/v1/openapi.json", headers=scene.headers(scene.owner)).get_json()
    booking = _book(client, scene)
    schema = document["components"]["schemas"]["Booking"]
    assert set(booking) == set(schema["properties"]) == set(schema["required"])


def test_list_bookings_mine_false_shows_a_lead_their_teams_bookings(client, scene, several):
    team = scene.owner.memberships[0].team
    lead = factories.make_user(roles=("researcher", "team_lead"))
    factories.add_member(team, lead, is_lead=True)
    db.session.commit()
    ids = _ids(client, scene.headers(lead), mine="false")
    assert ids == [several["mine"], several["away"], several["cancelled"]]  # not the stranger's
    assert _ids(client, scene.headers(lead)) == []  # mine=true: the lead has none of their own
