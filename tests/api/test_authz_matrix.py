"""The authorization matrix of the API: every route × every kind of caller → status.

A route added under /api/v1 without a row here fails ``test_matrix_covers_every_route``.
Refused writes must leave the database as it was.

Booking-engine routes have one more kind of caller, ``owner``: the researcher whose
booking (or qualification) the request is about. There ``researcher`` is a stranger to it,
``facility_manager`` manages the instrument's facility and ``other_manager`` another one.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from labbook.auth.services import user_for_token
from labbook.bookings.models import Qualification
from labbook.bookings.series import create_series
from labbook.db import now_utc
from labbook.extensions import db
from labbook.feeds.services import create_feed
from labbook.notifications.services import notify
from tests import factories
from tests.api.bookings_helpers import iso, row_of, whole_hour, written
from tests.api.conftest import ROLES, api_routes, snapshot_db, valid_instrument

READ = {"anonymous": 401, "revoked": 401, "inactive": 401, "researcher": 200, "team_lead": 200,
        "facility_manager": 200, "other_manager": 200, "finance": 200, "admin": 200}


def _write(ok: int) -> dict[str, int]:
    """Only managers of the instrument's facility and admins may write."""
    return {"anonymous": 401, "revoked": 401, "inactive": 401, "researcher": 403,
            "team_lead": 403, "facility_manager": ok, "other_manager": 403, "finance": 403,
            "admin": ok}


MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("/instruments", "get"): READ,
    ("/instruments", "post"): _write(201),
    ("/instruments/{instrument_id}", "get"): READ,
    ("/instruments/{instrument_id}", "patch"): _write(200),
    ("/facilities", "get"): READ,
    ("/fields", "get"): READ,
    ("/teams", "get"): READ,
    ("/openapi.json", "get"): READ,
}


def _body(path: str, method: str, catalog: Any) -> dict[str, Any] | None:
    """A request that succeeds for whoever may make it."""
    if method == "post":
        return valid_instrument(catalog)
    if method == "patch":
        return {"name": "Renamed", "slot_minutes": 30, "min_minutes": 30, "max_minutes": 480}
    return None


_UNAUTHENTICATED = {"anonymous": 401, "revoked": 401, "inactive": 401}


def _booking_row(owner: int, manager: int, others: int) -> dict[str, int]:
    """Owner, managers of the facility (and admins), everyone else."""
    return {**_UNAUTHENTICATED, "owner": owner, "facility_manager": manager, "admin": manager,
            "researcher": others, "team_lead": others, "other_manager": others,
            "finance": others}


BOOKING_READ = {**READ, "owner": 200}


def _finance(ok: int) -> dict[str, int]:
    """Finance and admins; every other caller 403."""
    return {**_booking_row(403, 403, 403), "finance": ok, "admin": ok}


BOOKING_MATRIX: dict[tuple[str, str], dict[str, int]] = {
    # Every caller has a default account here, so qualification and role decide.
    ("/bookings", "post"): {**_booking_row(201, 201, 403)},
    ("/bookings", "get"): BOOKING_READ,
    ("/bookings/{booking_id}", "get"): _booking_row(200, 200, 404),
    ("/bookings/{booking_id}", "patch"): _booking_row(200, 200, 404),
    ("/bookings/{booking_id}/cancel", "post"): _booking_row(200, 200, 404),
    ("/bookings/{booking_id}/approve", "post"): _booking_row(403, 200, 404),
    ("/bookings/{booking_id}/reject", "post"): _booking_row(403, 200, 404),
    ("/bookings/{booking_id}/check-in", "post"): _booking_row(200, 200, 404),
    ("/bookings/{booking_id}/check-out", "post"): _booking_row(200, 200, 404),
    ("/series/{series_id}", "get"): _booking_row(200, 200, 404),
    ("/instruments/{instrument_id}/availability", "get"): BOOKING_READ,
    ("/slots", "get"): BOOKING_READ,
    ("/qualifications", "get"): BOOKING_READ,
    ("/qualifications", "post"): _booking_row(403, 201, 403),
    ("/qualifications/{qualification_id}", "delete"): _booking_row(403, 200, 404),
    ("/qualification-requests", "post"): {**_booking_row(201, 201, 201)},
    ("/bookings/{booking_id}/ics", "get"): _booking_row(200, 200, 404),
    # A notification or calendar link is its owner's alone (admins may revoke any link).
    ("/notifications", "get"): BOOKING_READ,
    ("/notifications/{notification_id}/read", "post"): _booking_row(200, 404, 404),
    ("/feeds", "get"): BOOKING_READ,
    ("/feeds", "post"): {**_booking_row(201, 201, 201)},
    ("/feeds/{feed_id}", "delete"): {**_booking_row(204, 404, 404), "admin": 204},
    # Equipment care: ``owner`` is the researcher who reported fault / used the session.
    ("/outages", "post"): _booking_row(403, 201, 403),
    ("/outages", "get"): BOOKING_READ,
    ("/outages/{outage_id}", "get"): BOOKING_READ,
    ("/outages/{outage_id}", "patch"): _booking_row(403, 200, 403),
    ("/faults", "post"): _booking_row(201, 201, 201),
    ("/faults", "get"): BOOKING_READ,
    ("/faults/{fault_id}", "get"): _booking_row(200, 200, 404),
    ("/faults/{fault_id}", "patch"): _booking_row(403, 200, 404),
    ("/instruments/{instrument_id}/service-log", "get"): BOOKING_READ,
    ("/instruments/{instrument_id}/downtime", "get"): BOOKING_READ,
    ("/usage", "get"): {**_booking_row(403, 200, 403), "finance": 200},
    ("/usage/{booking_id}", "patch"): {**_booking_row(403, 200, 404), "finance": 403},
    # Billing: ``owner`` used the instrument (their session's charge line, their team and
    # account). Deciding an adjustment one could not even ask for answers 404.
    ("/customer-classes", "get"): BOOKING_READ,
    ("/customer-classes", "post"): _finance(201),
    ("/customer-classes/{code}", "patch"): _finance(200),
    ("/teams/{team_id}", "patch"): _finance(200),
    ("/consumables", "get"): BOOKING_READ,
    ("/consumables", "post"): {**_finance(201), "facility_manager": 201},
    ("/rates", "get"): {**_finance(200), "facility_manager": 200, "other_manager": 200},
    ("/rates", "post"): _finance(201),
    ("/rates/{rate_id}/publish", "post"): _finance(200),
    ("/rates/{rate_id}", "delete"): _finance(204),
    ("/billing/periods", "get"): _finance(200),
    ("/billing/periods/{month}/statements", "get"): {**_finance(200), "team_lead": 200},
    ("/billing/periods/{month}/checklist", "get"): _finance(200),
    ("/billing/periods/{month}/preview", "get"): _finance(200),
    ("/billing/periods/{month}/close", "post"): _finance(200),
    ("/billing/adjustments", "get"): {**_finance(200), "team_lead": 200,
                                      "facility_manager": 200, "other_manager": 200},
    ("/billing/adjustments", "post"): {**_finance(201), "facility_manager": 201},
    ("/billing/adjustments/{adjustment_id}/approve", "post"): {
        **_finance(200), "facility_manager": 200, "owner": 404, "researcher": 404,
        "other_manager": 404, "team_lead": 404},
    ("/billing/adjustments/{adjustment_id}/reject", "post"): {
        **_finance(200), "facility_manager": 200, "owner": 404, "researcher": 404,
        "other_manager": 404, "team_lead": 404},
    ("/accounts/{account_id}/balance", "get"): _finance(200),
    # Usage items: an argon cylinder of the instrument's facility, charged to the owner.
    ("/usage-items", "get"): {**_finance(200), "facility_manager": 200, "other_manager": 200},
    ("/usage-items", "post"): _booking_row(403, 201, 403),
    ("/usage-items/{item_id}", "get"): {**_booking_row(404, 200, 404), "finance": 200},
    ("/usage-items/{item_id}", "delete"): {**_booking_row(404, 204, 404), "finance": 403},
}
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


def test_matrix_covers_every_route(app):
    assert set(MATRIX) | set(BOOKING_MATRIX) == api_routes(app)
    assert not set(MATRIX) & set(BOOKING_MATRIX)
    assert all(set(row) == set(ROLES) for row in MATRIX.values())
    assert all(set(row) == {*ROLES, "owner"} for row in BOOKING_MATRIX.values())


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("path", "method"), sorted(MATRIX))
def test_api_authorization(client, catalog, headers_for, path, method, role):
    headers = headers_for(role)
    expected = MATRIX[(path, method)][role]
    before = snapshot_db()
    url = "/api/v1" + path.format(instrument_id=catalog.instrument.id)
    response = client.open(url, method=method.upper(), headers=headers,
                           json=_body(path, method, catalog))
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if expected >= 400:
        code = ERROR_CODES[expected]
        assert response.get_json()["error"]["code"] == code
        assert snapshot_db() == before
    elif method in {"post", "patch"}:
        assert snapshot_db() != before


# -- booking engine -------------------------------------------------------------------------

# The state a route needs its booking in to succeed.
_BOOKING_STATE = {"approve": "pending", "reject": "pending", "check-out": "in_use"}


def _give_default_account(user: Any) -> None:
    team = factories.make_team()
    factories.make_account(team, is_default=True, valid_from=date(2020, 1, 1))
    factories.add_member(team, user)


def _availability_url(instrument: Any, owner: Any, start: Any) -> str:
    return (f"/instruments/{instrument.id}/availability?start="
            f"{iso(start).replace('+', '%2B')}&end="
            f"{iso(start + timedelta(days=1)).replace('+', '%2B')}")


def _series_url(instrument: Any, owner: Any, start: Any) -> str:
    result = create_series(owner, instrument, start, start + timedelta(hours=1),
                           {"freq": "weekly", "count": 2})
    return f"/series/{result.series_id}"


_READS = {
    "/instruments/{instrument_id}/availability": _availability_url,
    "/series/{series_id}": _series_url,
    "/slots": lambda instrument, owner, start: "/slots?minutes=60",
}


def _booking_request(path: str, method: str, catalog: Any, owner: Any,
                     caller: Any) -> tuple[str, Any]:
    """The URL and body of a request that succeeds for whoever may make it."""
    instrument = catalog.instrument
    start = whole_hour()
    if (path, method) == ("/bookings", "post"):
        if caller is not None and caller is not owner:
            _give_default_account(caller)
        return "/bookings", {"instrument_id": instrument.id, "start": iso(start),
                             "end": iso(start + timedelta(hours=1))}
    if path.startswith("/bookings/"):
        action = path.rpartition("/")[2]
        if action == "check-in":
            start = now_utc().replace(minute=0, second=0, microsecond=0)
        booking = factories.make_booking(instrument, owner, start=start,
                                         state=_BOOKING_STATE.get(action, "confirmed"))
        body = {"reason": "needed for a course"} if action == "reject" else {
            "purpose": "changed"} if method == "patch" else None
        return path.format(booking_id=booking.id), body
    if method == "get" and path in _READS:
        return _READS[path](instrument, owner, start), None
    for prefixes, make in _OTHER_REQUESTS:
        if path.startswith(prefixes):
            return make(path, method, instrument, owner)
    return path, None


def _qualification_request(path: str, method: str, instrument: Any,
                           owner: Any) -> tuple[str, Any]:
    if path == "/qualifications/{qualification_id}":
        qualification = db.session.scalar(
            db.select(Qualification).where(Qualification.user_id == owner.id))
        return path.format(qualification_id=qualification.id), None
    if (path, method) == ("/qualifications", "post"):
        newcomer = factories.make_user_with_role("researcher")
        return path, {"user_id": newcomer.id, "instrument_id": instrument.id}
    if (path, method) == ("/qualification-requests", "post"):
        return path, {"instrument_id": instrument.id, "message": "please"}
    return path, None


def _personal_request(path: str, method: str, instrument: Any, owner: Any) -> tuple[str, Any]:
    """Notifications and calendar links: things that belong to one user."""
    if path == "/notifications/{notification_id}/read":
        note = notify(owner, "qualification_granted", params={"instrument": instrument.name})
        return path.format(notification_id=note.id), None
    if (path, method) == ("/feeds", "post"):
        return path, {"scope": "instrument", "id": instrument.id}
    if path == "/feeds/{feed_id}":
        return path.format(feed_id=create_feed(owner, "user")[0].id), None
    return path, None


def _care_request(path: str, method: str, instrument: Any, owner: Any) -> tuple[str, Any]:
    """Outages, faults, the service log, downtime and usage."""
    from labbook.bookings.models import Outage
    from labbook.care.models import FaultReport

    now = now_utc().replace(minute=0, second=0, microsecond=0)
    if path == "/outages" and method == "post":
        start = now + timedelta(days=30)
        return path, {"instrument_id": instrument.id, "kind": "repair", "title": "Pump",
                      "start": iso(start), "end": iso(start + timedelta(hours=2))}
    if path == "/outages/{outage_id}":
        start = now + timedelta(days=31)
        outage = Outage(instrument=instrument, start_at=start, end_at=start + timedelta(hours=1),
                        block_end=start + timedelta(hours=1), state="scheduled",
                        outage_kind="calibration", title="Calibrate")
        db.session.add(outage)
        db.session.flush()
        body = {"state": "cancelled"} if method == "patch" else None
        return path.format(outage_id=outage.id), body
    if path == "/faults" and method == "post":
        return path, {"instrument_id": instrument.id, "severity": "cosmetic",
                      "description": "Scratched window"}
    if path == "/faults/{fault_id}":
        fault = FaultReport(instrument=instrument, reporter=owner, severity="cosmetic",
                            status="open", description="Loose knob")
        db.session.add(fault)
        db.session.flush()
        body = {"status": "investigating", "note": "Looking"} if method == "patch" else None
        return path.format(fault_id=fault.id), body
    if path == "/usage":
        return f"/usage?facility={instrument.facility_id}&month={now:%Y-%m}", None
    if path == "/usage/{booking_id}":
        start = now - timedelta(days=3)
        booking = factories.make_booking(
            instrument, owner, start=start, state="completed", checked_in_at=start,
            checked_out_at=start + timedelta(minutes=50))
        return path.format(booking_id=booking.id), {
            "checked_in_at": iso(start + timedelta(minutes=5)),
            "checked_out_at": iso(start + timedelta(minutes=55)), "reason": "clock was off"}
    if path.startswith("/instruments/{instrument_id}/"):
        return path.format(instrument_id=instrument.id), None
    return path, None


def _billing_request(path: str, method: str, instrument: Any, owner: Any) -> tuple[str, Any]:
    """Billing: the owner's session last month has line L (refreshed); adjustment J on it
    was asked for by a finance clerk (so every decider here is someone else)."""
    from labbook.billing.adjustments import request_adjustment
    from labbook.billing.models import ChargeLine
    from labbook.billing.periods import current_month, previous_month
    from labbook.billing.statements import refresh_period

    last = previous_month(current_month())
    account = owner.memberships[0].team.default_account
    if path.startswith("/usage-items"):
        argon = factories.make_consumable(instrument.facility, code="GAS-AR-50")
        if method == "post":
            return path, {"consumable_id": argon.id, "account_id": account.id,
                          "quantity": "2.5", "occurred_at": iso(now_utc()), "note": "cylinder"}
        item = factories.make_item(account, "1", consumable=argon, occurred_at=now_utc())
        return path.format(item_id=item.id), None
    if path.startswith("/billing/adjustments"):
        start = now_utc().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
        booking = factories.make_booking(instrument, owner, start=start, state="completed")
        factories.make_rate(instrument, "100.00")
        refresh_period(current_month())
        line = db.session.scalar(db.select(ChargeLine).where(
            ChargeLine.reservation_id == booking.id))
        if method == "post" and path == "/billing/adjustments":
            return path, {"line_id": line.id, "amount": "-10.00", "reason": "drift"}
        clerk = factories.make_user(roles=("finance",))
        adjustment = request_adjustment(clerk, line, "-10.00", "drift")
        body = {"note": "no"} if path.endswith("reject") else None
        return path.format(adjustment_id=adjustment.id), body
    rate = factories.make_rate(instrument, "90.00", effective_from=date(2099, 1, 1),
                               published=False)
    bodies = {
        ("/customer-classes", "post"): {"code": "government", "name": "Government",
                                        "tax_rate": "0.03"},
        ("/customer-classes/{code}", "patch"): {"tax_rate": "0.01"},
        ("/teams/{team_id}", "patch"): {"invoice_title": "Lab of Owner"},
        ("/consumables", "post"): {"code": "GAS-AR", "name": "Argon", "unit": "L",
                                   "facility_id": instrument.facility_id},
        ("/rates", "post"): {"instrument_id": instrument.id, "customer_class": "internal",
                             "charge_type": "instrument_hour", "amount": "100.00",
                             "effective_from": "2099-02-01"},
    }
    url = path.format(code="internal", team_id=account.team_id, rate_id=rate.id,
                      month=f"{last:%Y-%m}", account_id=account.id)
    return url, bodies.get((path, method))


_OTHER_REQUESTS = (
    (("/billing", "/rates", "/customer-classes", "/consumables", "/teams/", "/accounts/",
      "/usage-items"), _billing_request),
    (("/qualification",), _qualification_request),
    (("/notifications", "/feeds"), _personal_request),
    (("/outages", "/faults", "/usage", "/instruments/{instrument_id}/"), _care_request),
)
BOOKING_CASES = [(path, method, role) for (path, method), row in sorted(BOOKING_MATRIX.items())
                 for role in sorted(row)]


@pytest.mark.parametrize(("path", "method", "role"), BOOKING_CASES)
def test_bookings_api_authorization(client, catalog, headers_for, api_token, path, method,
                                    role):
    owner = factories.make_booker(catalog.instrument, level="advanced")
    headers = api_token(owner) if role == "owner" else headers_for(role)
    secret = headers.get("Authorization", " ").split(" ", 1)[1]
    caller = owner if role == "owner" else user_for_token(secret)
    url, body = _booking_request(path, method, catalog, owner, caller)
    db.session.commit()
    before = written()
    booking_id = url.split("/")[2] if url.startswith("/bookings/") else None
    row = row_of(int(booking_id)) if booking_id else None
    response = client.open("/api/v1" + url, method=method.upper(), headers=headers, json=body)
    expected = BOOKING_MATRIX[(path, method)][role]
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if expected >= 400:
        assert response.get_json()["error"]["code"] == ERROR_CODES[expected]
        assert written() == before
        assert row is None or row_of(int(booking_id)) == row
    elif method != "get":
        assert written() != before
