"""The authorization matrix of the web UI: every route × every role (plus anonymous).

For each caller the test sweeps every (method, route) once and compares the outcome class
with the table below, reporting every mismatch at once. A second test fails when a route
exists that the table does not list, so a new view cannot skip this check. (The JSON API
has its own matrix in tests/api/test_authz_matrix.py.)

Outcome classes: ``login`` = redirected to the login page, ``403``, ``404``, and ``ok`` =
anything else the caller may legitimately get (200, a redirect elsewhere, 201, or 422 for
the deliberately empty POST bodies used here).
"""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from tests import factories
from tests.conftest import csrf_token, login

CALLERS = (
    "anonymous",
    "researcher",
    "lead_in",
    "lead_out",
    "manager_in",
    "manager_out",
    "finance",
    "admin",
)
EVERYONE = {c: "ok" for c in CALLERS if c != "anonymous"}
ADMIN_ONLY = {c: "403" for c in CALLERS if c != "anonymous"} | {"admin": "ok"}
MANAGERS = {c: "403" for c in CALLERS if c != "anonymous"} | {
    "manager_in": "ok",
    "manager_out": "ok",
    "admin": "ok",
}
MANAGER_OF_F = MANAGERS | {"manager_out": "403"}
TEAM_VIEWERS = {c: "403" for c in CALLERS if c != "anonymous"} | {
    "researcher": "ok",
    "lead_in": "ok",
    "finance": "ok",
    "admin": "ok",
}
TEAM_LEADS = {c: "403" for c in CALLERS if c != "anonymous"} | {"lead_in": "ok", "admin": "ok"}
TOKEN_OWNER = {c: "404" for c in CALLERS if c != "anonymous"} | {"researcher": "ok", "admin": "ok"}
# Booking B belongs to the researcher, on instrument I of facility F.
BOOKING_VIEWERS = {c: "404" for c in CALLERS if c != "anonymous"} | {
    "researcher": "ok",
    "manager_in": "ok",
    "admin": "ok",
}
BOOKING_DECIDERS = BOOKING_VIEWERS | {"researcher": "403", "lead_in": "403"}
# The team's lead sees a member's booking (SPEC: a PI sees the team's bookings) but cannot
# change it; everyone else outside owner/manager/admin gets 404, which reveals nothing.
BOOKING_CHANGERS = BOOKING_VIEWERS | {"lead_in": "403"}
BOOKING_VIEWERS = BOOKING_VIEWERS | {"lead_in": "ok"}
# A notification is its recipient's alone: everyone else (admins too) gets 404.
NOTIFICATION_OWNER = {c: "404" for c in CALLERS if c != "anonymous"} | {"researcher": "ok"}
# Calendar links W and V belong to the researcher; others (admins too, but they may revoke
# any) get 404.
FEED_OWNER = NOTIFICATION_OWNER
USAGE_READERS = MANAGER_OF_F | {"finance": "ok"}
# Fault D was reported by the researcher on I (with a photo).
FAULT_VIEWERS = BOOKING_VIEWERS | {"lead_in": "404"}
FINANCE = {c: "403" for c in CALLERS if c != "anonymous"} | {"finance": "ok", "admin": "ok"}
# Team T's statement: finance, admins and T's lead (lead_out leads another team).
STATEMENT_READERS = FINANCE | {"lead_in": "ok"}
# Charge line LN is T's session on I: its facility's manager, finance and T's lead may ask
# for an adjustment; deciding is for finance and the facility's manager (never the lead).
LINE_ADJUSTERS = STATEMENT_READERS | {"manager_in": "ok"}
ADJUSTMENT_DECIDERS = FINANCE | {"manager_in": "ok"}
ANY_MANAGER_OR_FINANCE = MANAGERS | {"finance": "ok"}
STATEMENT_LISTERS = FINANCE | {"lead_in": "ok", "lead_out": "ok"}

# (method, URL template, expectations for logged-in callers; anonymous → login unless given)
MATRIX: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/login", {"anonymous": "ok", **EVERYONE}),
    ("POST", "/login", {"anonymous": "ok", **EVERYONE}),
    ("POST", "/language", {"anonymous": "ok", **EVERYONE}),
    ("GET", "/", EVERYONE),
    ("GET", "/facilities", EVERYONE),
    ("GET", "/facilities/{F}", EVERYONE),
    ("GET", "/instruments/{I}", EVERYONE),
    ("GET", "/instruments/new", MANAGERS),
    ("POST", "/instruments/new", MANAGERS),
    ("GET", "/instruments/{I}/edit", MANAGER_OF_F),
    ("POST", "/instruments/{I}/edit", MANAGER_OF_F),
    ("GET", "/profile", EVERYONE),
    ("POST", "/profile", EVERYONE),
    ("POST", "/profile/password", EVERYONE),
    ("POST", "/profile/tokens", EVERYONE),
    ("GET", "/teams", EVERYONE),
    ("GET", "/teams/{T}", TEAM_VIEWERS),
    ("POST", "/teams/{T}/members", TEAM_LEADS),
    ("POST", "/teams/{T}/accounts/{A}/users", TEAM_LEADS),
    ("GET", "/instruments/{I}/book", EVERYONE),
    ("POST", "/instruments/{I}/book", EVERYONE),
    ("GET", "/instruments/{I}/week", EVERYONE),
    ("GET", "/slots", EVERYONE),
    ("POST", "/instruments/{I}/request-qualification", EVERYONE),
    ("GET", "/instruments/{I}/qualifications", MANAGER_OF_F),
    ("POST", "/instruments/{I}/qualifications", MANAGER_OF_F),
    ("GET", "/bookings", EVERYONE),
    ("GET", "/bookings/{B}", BOOKING_VIEWERS),
    ("GET", "/bookings/{B}/edit", BOOKING_CHANGERS),
    ("POST", "/bookings/{B}/edit", BOOKING_CHANGERS),
    ("POST", "/bookings/{B}/check-in", BOOKING_CHANGERS),
    ("POST", "/bookings/{B}/check-out", BOOKING_CHANGERS),
    # Public: the secret is the key. Listed before the admin rows, which deactivate R.
    ("GET", "/feeds/{S}.ics", {"anonymous": "ok", **EVERYONE}),
    ("GET", "/manage/approvals", MANAGERS),
    ("POST", "/manage/approvals", MANAGERS),
    ("GET", "/manage/facilities/{F}/today", MANAGER_OF_F),
    ("GET", "/admin/users", ADMIN_ONLY),
    ("GET", "/admin/users/new", ADMIN_ONLY),
    ("POST", "/admin/users/new", ADMIN_ONLY),
    ("GET", "/admin/users/{R}", ADMIN_ONLY),
    ("POST", "/admin/users/{R}", ADMIN_ONLY),
    ("GET", "/admin/teams", ADMIN_ONLY),
    ("GET", "/admin/teams/new", ADMIN_ONLY),
    ("POST", "/admin/teams/new", ADMIN_ONLY),
    ("GET", "/admin/teams/{T}", ADMIN_ONLY),
    ("POST", "/admin/teams/{T}", ADMIN_ONLY),
    ("POST", "/admin/teams/{T}/members", ADMIN_ONLY),
    ("GET", "/admin/teams/{T}/accounts/new", ADMIN_ONLY),
    ("POST", "/admin/teams/{T}/accounts/new", ADMIN_ONLY),
    ("GET", "/admin/teams/{T}/accounts/{A}", ADMIN_ONLY),
    ("POST", "/admin/teams/{T}/accounts/{A}", ADMIN_ONLY),
    ("GET", "/admin/facilities", ADMIN_ONLY),
    ("GET", "/admin/facilities/new", ADMIN_ONLY),
    ("POST", "/admin/facilities/new", ADMIN_ONLY),
    ("GET", "/admin/facilities/{F}", ADMIN_ONLY),
    ("POST", "/admin/facilities/{F}", ADMIN_ONLY),
    ("POST", "/admin/facilities/{F}/hours", ADMIN_ONLY),
    ("POST", "/admin/facilities/{F}/managers", ADMIN_ONLY),
    ("GET", "/admin/scheduler", ADMIN_ONLY),
    ("GET", "/admin/outbox", ADMIN_ONLY),
    ("POST", "/admin/outbox/{M}/retry", ADMIN_ONLY),
    ("GET", "/notifications", EVERYONE),
    ("POST", "/notifications/read", EVERYONE),
    ("POST", "/notifications/{N}/read", NOTIFICATION_OWNER),
    ("GET", "/notifications/preferences", EVERYONE),
    ("POST", "/notifications/preferences", EVERYONE),
    ("GET", "/bookings/{B}.ics", BOOKING_VIEWERS),
    ("GET", "/feeds", EVERYONE),
    ("POST", "/feeds", EVERYONE),
    ("GET", "/manage/facilities/{F}/outages", MANAGER_OF_F),
    ("GET", "/manage/instruments/{I}/outages", MANAGER_OF_F),
    ("GET", "/manage/facilities/{F}/outages/new", MANAGER_OF_F),
    ("POST", "/manage/facilities/{F}/outages/new", MANAGER_OF_F),
    ("GET", "/manage/outages/{G}/complete", MANAGER_OF_F),
    ("POST", "/manage/outages/{G}/complete", MANAGER_OF_F),
    ("GET", "/instruments/{I}/maintenance", MANAGER_OF_F),
    ("GET", "/instruments/{I}/maintenance/new", MANAGER_OF_F),
    ("POST", "/instruments/{I}/maintenance/new", MANAGER_OF_F),
    ("GET", "/maintenance/{L}/edit", MANAGER_OF_F),
    ("POST", "/maintenance/{L}/edit", MANAGER_OF_F),
    ("GET", "/manage/facilities/{F}/usage", USAGE_READERS),
    ("GET", "/manage/facilities/{F}/usage.csv", USAGE_READERS),
    ("GET", "/manage/facilities/{F}/dashboard", MANAGER_OF_F),
    ("GET", "/profile/kiosk-pin", EVERYONE),
    ("POST", "/profile/kiosk-pin", EVERYONE),
    ("GET", "/instruments/{I}/kiosk-links", MANAGER_OF_F),
    ("POST", "/instruments/{I}/kiosk-links", MANAGER_OF_F),
    ("GET", "/kiosk/{E}", {"anonymous": "ok", **EVERYONE}),  # the secret is the key
    ("GET", "/kiosk/{E}/{H}", {"anonymous": "ok", **EVERYONE}),
    ("POST", "/kiosk/{E}/{H}", {"anonymous": "ok", **EVERYONE}),
    ("GET", "/instruments/{I}/walk-in", EVERYONE),
    ("POST", "/instruments/{I}/walk-in", EVERYONE),
    ("GET", "/instruments/{I}/faults/new", EVERYONE),
    ("POST", "/instruments/{I}/faults/new", EVERYONE),
    ("GET", "/faults/{D}", FAULT_VIEWERS),
    ("GET", "/faults/{D}/photo", FAULT_VIEWERS),
    ("GET", "/facilities/{F}/faults", MANAGER_OF_F),
    ("GET", "/instruments/{I}/faults", EVERYONE),
    ("GET", "/instruments/{I}/service-log", EVERYONE),
    ("GET", "/facilities/{F}/closures/import", MANAGER_OF_F),
    ("POST", "/facilities/{F}/closures/import", MANAGER_OF_F),
    ("GET", "/billing/", FINANCE),
    ("GET", "/billing/statements", STATEMENT_LISTERS),
    ("GET", "/billing/periods/{MO}", FINANCE),
    ("GET", "/billing/periods/{MO}/teams/{T}", STATEMENT_READERS),
    ("GET", "/billing/periods/{MO}/export/{FM}", FINANCE),
    ("GET", "/billing/periods/{MO}/statements/{T}.pdf", STATEMENT_READERS),
    ("GET", "/billing/adjustments", ANY_MANAGER_OR_FINANCE),
    ("GET", "/billing/lines/{LN}/adjust", LINE_ADJUSTERS),
    ("POST", "/billing/lines/{LN}/adjust", LINE_ADJUSTERS),
    ("GET", "/billing/rates", FINANCE),
    ("GET", "/billing/rates/instrument/{I}", FINANCE),
    ("GET", "/billing/rates/consumable/{C}", FINANCE),
    ("GET", "/billing/rates/preview", FINANCE),
    ("GET", "/billing/rates/new", FINANCE),
    ("POST", "/billing/rates/new", FINANCE),
    ("GET", "/billing/classes", FINANCE),
    ("POST", "/billing/classes", FINANCE),
    ("GET", "/billing/classes/{CC}", FINANCE),
    ("POST", "/billing/classes/{CC}", FINANCE),
    ("GET", "/billing/consumables", ANY_MANAGER_OR_FINANCE),
    ("POST", "/billing/consumables", ANY_MANAGER_OR_FINANCE),
    ("GET", "/billing/items/new", MANAGERS),
    ("POST", "/billing/items/new", MANAGERS),
    ("GET", "/billing/instruments/{I}/policy", MANAGER_OF_F),
    ("POST", "/billing/instruments/{I}/policy", MANAGER_OF_F),
    # Destructive actions last, so earlier rows see the world intact.
    ("POST", "/billing/periods/{MO}/close", FINANCE),
    ("POST", "/billing/rates/{RT}/publish", FINANCE),
    ("POST", "/billing/rates/{RT}/delete", FINANCE),
    ("POST", "/billing/items/{IT}/delete", MANAGER_OF_F),
    ("POST", "/billing/adjustments/{AD}/reject", ADJUSTMENT_DECIDERS),
    ("POST", "/billing/adjustments/{AD}/approve", ADJUSTMENT_DECIDERS),
    ("POST", "/profile/tokens/{K}/revoke", TOKEN_OWNER),
    ("POST", "/teams/{T}/members/{X}/remove", TEAM_LEADS),
    ("POST", "/admin/teams/{T}/members/{Y}/remove", ADMIN_ONLY),
    ("POST", "/admin/facilities/{F}/managers/{Z}/remove", ADMIN_ONLY),
    ("POST", "/faults/{D}/triage", FAULT_VIEWERS | {"researcher": "403"}),
    ("POST", "/manage/facilities/{F}/usage/{U}/correct", MANAGER_OF_F),
    ("POST", "/manage/facilities/{F}/usage/{U}/confirm", MANAGER_OF_F),
    ("POST", "/manage/outages/{G}/end", MANAGER_OF_F),
    ("POST", "/manage/outages/{G}/cancel", MANAGER_OF_F),
    ("POST", "/maintenance/{L}/delete", MANAGER_OF_F),
    ("POST", "/instruments/{I}/kiosk-links/{J}/revoke", MANAGER_OF_F),
    ("POST", "/feeds/{W}/regenerate", FEED_OWNER),
    ("POST", "/feeds/{V}/revoke", FEED_OWNER | {"admin": "ok"}),
    ("POST", "/bookings/{B}/reject", BOOKING_DECIDERS),
    ("POST", "/bookings/{B}/approve", BOOKING_DECIDERS),
    ("POST", "/bookings/{B}/cancel", BOOKING_CHANGERS),
    ("POST", "/instruments/{I}/qualifications/{Q}/revoke", MANAGER_OF_F),
    ("POST", "/instruments/{I}/qualification-requests/{P}/decline", MANAGER_OF_F),
    ("POST", "/logout", {c: "login" for c in CALLERS}),  # logging out ends on the login page
]


def _world() -> SimpleNamespace:
    """Facility F with instrument I, another facility; team T (researcher, lead_in, two
    spare members X and Y, account A) and another team with lead_out. The researcher has a
    pending booking B on I and a qualification Q on it; X has an open qualification
    request P."""
    from labbook.auth.services import create_token
    from labbook.bookings.models import QualificationRequest
    from labbook.feeds.services import create_feed
    from labbook.notifications.models import OutboxMessage
    from labbook.notifications.services import notify
    from tests.mail import compose

    f, other = factories.make_facility(), factories.make_facility()
    team, other_team = factories.make_team(), factories.make_team()
    instrument, account = factories.make_instrument(facility=f), factories.make_account(team=team)
    w = SimpleNamespace(F=f.id, I=instrument.id, T=team.id, A=account.id)
    w.users = {
        "researcher": factories.make_user_with_role("researcher", team=team),
        "lead_in": factories.make_user_with_role("team_lead", team=team),
        "lead_out": factories.make_user_with_role("team_lead", team=other_team),
        "manager_in": factories.make_user_with_role("facility_manager", facility=f),
        "manager_out": factories.make_user_with_role("facility_manager", facility=other),
        "finance": factories.make_user(roles=("finance",)),
        "admin": factories.make_user(roles=("admin",)),
    }
    spare = factories.make_user_with_role("facility_manager", facility=f)
    w.R, w.Z = w.users["researcher"].id, spare.id
    w.X = factories.make_user_with_role("researcher", team=team).id
    w.Y = factories.make_user_with_role("researcher", team=team).id
    w.K = create_token(w.users["researcher"], "matrix")[0].id
    w.B = factories.make_booking(
        instrument, w.users["researcher"], account=account, state="pending"
    ).id
    w.Q = factories.make_qualification(w.users["researcher"], instrument).id
    request = QualificationRequest(user_id=w.X, instrument_id=instrument.id, message="")
    db.session.add(request)
    db.session.flush()
    w.P = request.id
    note = notify(w.users["researcher"], "qualification_granted", params={"instrument": "I"})
    w.N = note.id
    w.S = create_feed(w.users["researcher"], "instrument", instrument.id)[1]
    w.W = create_feed(w.users["researcher"], "user")[0].id
    w.V = create_feed(w.users["researcher"], "facility", f.id)[0].id
    _care_world(w, instrument, account)
    _billing_world(w, instrument, account, spare)
    compose()
    w.M = db.session.scalar(
        sa.select(OutboxMessage.id).where(OutboxMessage.notification_id == note.id))
    db.session.commit()
    return w


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _care_world(w: SimpleNamespace, instrument, account) -> None:  # type: ignore[no-untyped-def]
    """Outage G and maintenance plan L on I; a completed session U; fault D (photo)."""
    from datetime import timedelta

    from labbook.bookings.models import Outage
    from labbook.care.kiosk import create_link
    from labbook.care.models import FaultReport, MaintenancePlan
    from labbook.db import now_utc

    now = now_utc()
    start = now + timedelta(days=40)
    outage = Outage(instrument=instrument, start_at=start, end_at=start + timedelta(hours=2),
                    block_end=start + timedelta(hours=2), state="scheduled",
                    outage_kind="repair", title="Pump")
    plan = MaintenancePlan(instrument=instrument, title="Bake-out", interval_count=4,
                           interval_unit="weeks", duration_minutes=120,
                           first_start=now + timedelta(days=60), checklist=["vent"])
    db.session.add_all([outage, plan])
    start = now - timedelta(days=2)
    w.U = factories.make_booking(
        instrument, w.users["researcher"], account=account, start=start, state="completed",
        checked_in_at=start, checked_out_at=start + timedelta(minutes=50)).id
    fault = FaultReport(instrument=instrument, reporter=w.users["researcher"], severity="cosmetic",
                        status="open", description="Scratched window", photo=PNG,
                        photo_type="image/png")
    db.session.add(fault)
    db.session.flush()
    w.G, w.L, w.D = outage.id, plan.id, fault.id
    link, w.E = create_link(w.users["admin"], instrument, "bench")
    w.J, w.H = link.id, "check-in"


def _billing_world(w: SimpleNamespace, instrument, account, spare) -> None:  # type: ignore
    """This month MO refreshed: line LN is session U's charge; Z (a manager of F) asked for
    adjustment AD on it; draft rate RT on I; consumable C of F and usage item IT (samples on
    I); customer class CC; export format FM."""
    from labbook.billing.adjustments import request_adjustment
    from labbook.billing.models import ChargeLine
    from labbook.billing.periods import current_month
    from labbook.billing.statements import refresh_period
    from labbook.db import now_utc

    factories.make_rate(instrument, "100.00")
    w.RT = factories.make_rate(instrument, "120.00", effective_from=date(2099, 1, 1),
                               published=False).id
    w.C = factories.make_consumable(instrument.facility).id
    month = current_month()
    w.MO, w.CC, w.FM = f"{month:%Y-%m}", "internal", "csv"
    w.IT = factories.make_item(account, "2", instrument=instrument,
                               occurred_at=now_utc()).id
    refresh_period(month)
    line = db.session.scalar(sa.select(ChargeLine).where(ChargeLine.reservation_id == w.U))
    w.LN = line.id
    w.AD = request_adjustment(spare, line, "-10.00", "Calibration drift").id


def _outcome(response) -> str:  # type: ignore[no-untyped-def]
    if response.status_code in (401, 403, 404):
        return str(response.status_code).replace("401", "login")
    if response.status_code in (301, 302, 303) and "/login" in response.headers["Location"]:
        return "login"
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    return "ok"


@pytest.mark.parametrize("caller", CALLERS)
def test_authz_matrix_every_route(app, client, caller):
    world = _world()
    if caller != "anonymous":
        assert login(client, world.users[caller].email).status_code == 302
    token = csrf_token(client, "/login")
    mismatches = []
    for method, template, expected in MATRIX:
        url = template.format(**vars(world))
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token})
        want = expected.get(caller, "login")
        got = _outcome(response)
        if got != want:
            mismatches.append(
                f"{caller} {method} {url}: expected {want}, got {got} " f"({response.status_code})"
            )
    assert mismatches == []


def test_authz_matrix_lists_every_ui_route(app):
    listed = {(method, template) for method, template, _ in MATRIX}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<[^>]+>", "{?}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if not any(m == method and _same_shape(t, path) for m, t in listed):
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def _same_shape(template: str, path: str) -> bool:
    return re.sub(r"\{[A-Z]+\}", "{?}", template) == path
