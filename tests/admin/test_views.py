"""Administration pages: users, teams (members, accounts), facilities (managers, opening
hours); the role matrix, CSRF, bad input (422, nothing written) and audit entries."""
from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.auth.models import User
from labbook.extensions import db
from labbook.instruments.models import Facility, OpeningHours
from labbook.teams.forms import centre_today
from labbook.teams.models import Account, Membership, Team
from tests import factories
from tests.conftest import csrf_token, login

ROLES_DENIED = ["researcher", "team_lead", "facility_manager", "finance"]


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _audits(action: str) -> list[AuditEntry]:
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)).all()


def _post(client, path, data, page="/teams"):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


@pytest.fixture
def admin(login_as):
    return login_as("admin")


@pytest.fixture
def world(app):
    """One of everything the admin routes take an id of."""
    team = factories.make_team()
    account = factories.make_account(team)
    member = factories.make_user()
    factories.add_member(team, member)
    facility = factories.make_facility()
    manager = factories.make_user(roles=("facility_manager",))
    facility.managers.append(manager)
    db.session.commit()
    return {"team": team.id, "account": account.id, "member": member.id, "facility": facility.id,
            "manager": manager.id}


GET_ROUTES = [
    "/admin/users", "/admin/users/new", "/admin/users/{member}",
    "/admin/teams", "/admin/teams/new", "/admin/teams/{team}",
    "/admin/teams/{team}/accounts/new", "/admin/teams/{team}/accounts/{account}",
    "/admin/facilities", "/admin/facilities/new", "/admin/facilities/{facility}",
]
POST_ROUTES = GET_ROUTES[1:3] + GET_ROUTES[4:6] + GET_ROUTES[6:8] + GET_ROUTES[9:] + [
    "/admin/teams/{team}/members", "/admin/teams/{team}/members/{member}/remove",
    "/admin/facilities/{facility}/managers",
    "/admin/facilities/{facility}/managers/{manager}/remove",
    "/admin/facilities/{facility}/hours",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_admin_pages_anonymous_redirects_to_login(client, world, path):
    response = client.get(path.format(**world))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", POST_ROUTES)
def test_admin_posts_anonymous_redirects_to_login_and_writes_nothing(client, world, path):
    before = _count(AuditEntry)
    response = client.post(path.format(**world), data={"csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert _count(AuditEntry) == before


@pytest.mark.parametrize("role", ROLES_DENIED)
@pytest.mark.parametrize("path", GET_ROUTES)
def test_admin_pages_forbidden_to_other_roles(client, login_as, world, role, path):
    login_as(role)
    assert client.get(path.format(**world)).status_code == 403


@pytest.mark.parametrize("role", ROLES_DENIED)
@pytest.mark.parametrize("path", POST_ROUTES)
def test_admin_posts_forbidden_to_other_roles(client, login_as, world, role, path):
    login_as(role)
    before = _count(AuditEntry)
    assert _post(client, path.format(**world), {"email": "x@example.org"}).status_code == 403
    assert _count(AuditEntry) == before


@pytest.mark.parametrize("path", GET_ROUTES)
def test_admin_pages_open_to_admin(client, admin, world, path):
    response = client.get(path.format(**world))
    assert response.status_code == 200
    assert b'name="csrf_token"' in response.data


@pytest.mark.parametrize("path", POST_ROUTES)
def test_admin_posts_without_csrf_are_refused(client, admin, world, path):
    before = _count(AuditEntry)
    response = client.post(path.format(**world), data={"email": "x@example.org", "name": "X"})
    assert response.status_code == 400
    assert _count(AuditEntry) == before


# -- users -----------------------------------------------------------------------------
def test_user_list_searches_name_and_email_and_filters_role(client, admin):
    factories.make_user(name="Ada Lovelace", email="ada@example.org")
    factories.make_user(name="Grace Hopper", email="grace@navy.example", roles=("finance",))
    db.session.commit()
    page = client.get("/admin/users?q=LOVELACE").get_data(as_text=True)
    assert "ada@example.org" in page and "grace@navy.example" not in page
    page = client.get("/admin/users?q=navy").get_data(as_text=True)
    assert "grace@navy.example" in page and "ada@example.org" not in page
    page = client.get("/admin/users?role=finance").get_data(as_text=True)
    assert "grace@navy.example" in page and "ada@example.org" not in page


def test_user_list_search_treats_wildcards_literally(client, admin):
    factories.make_user(name="Ada Lovelace", email="ada@example.org")
    db.session.commit()
    assert "ada@example.org" not in client.get("/admin/users?q=%25").get_data(as_text=True)


def test_user_list_shows_teams_and_paginates(app, client, admin):
    team = factories.make_team(name="Photonics Group")
    for n in range(3):
        factories.add_member(team, factories.make_user(name=f"Zed {n}"))
    db.session.commit()
    app.config["LABBOOK_PAGE_SIZE"] = 2
    try:
        first = client.get("/admin/users?q=zed").get_data(as_text=True)
        second = client.get("/admin/users?q=zed&page=2").get_data(as_text=True)
    finally:
        app.config["LABBOOK_PAGE_SIZE"] = 50
    assert "Zed 0" in first and "Zed 1" in first and "Zed 2" not in first
    assert "Zed 2" in second and "Photonics Group" in second
    assert "page=2" in first


def _new_user(**overrides):
    return {"email": "new.person@example.org", "name": "New Person", "password": "long-enough-pw",
            "roles": ["researcher", "finance"], "locale": "zh_Hans", **overrides}


def test_user_create_writes_user_roles_and_audit(client, admin):
    response = _post(client, "/admin/users/new", _new_user(), "/admin/users/new")
    assert response.status_code == 302
    user = db.session.scalar(sa.select(User).where(User.email == "new.person@example.org"))
    assert user.roles == {"researcher", "finance"} and user.locale == "zh_Hans"
    assert response.headers["Location"] == f"/admin/users/{user.id}"
    entry, = _audits("user.create")
    assert entry.actor_id == admin.id
    client.post("/logout", data={"csrf_token": csrf_token(client, "/teams")})
    assert login(client, "new.person@example.org", "long-enough-pw").status_code == 302


@pytest.mark.parametrize("overrides, message", [
    ({"email": "DUP@example.org"}, "already exists"),
    ({"roles": ["researcher", "overlord"]}, "not a valid choice"),
    ({"password": "short"}, "at least 8"),
    ({"name": "x" * 121}, "120"),
    ({"email": "x" * 250 + "@example.org"}, "254"),
    ({"locale": "fr"}, "Not a valid choice"),
    ({"name": ""}, "required"),
])
def test_user_create_bad_input_is_422_and_writes_nothing(client, admin, overrides, message):
    factories.make_user(email="dup@example.org")
    db.session.commit()
    before = _count(User)
    response = _post(client, "/admin/users/new", _new_user(**overrides), "/admin/users/new")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(User) == before
    assert _audits("user.create") == []


def test_user_edit_changes_details_roles_and_password(client, admin):
    user = factories.make_user(name="Old Name", roles=("researcher",))
    db.session.commit()
    response = _post(client, f"/admin/users/{user.id}", {
        "name": "New Name", "locale": "zh_Hans", "roles": ["team_lead", "finance"],
        "new_password": "a-brand-new-secret"}, f"/admin/users/{user.id}")
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert (user.name, user.locale, user.active) == ("New Name", "zh_Hans", False)
    assert user.roles == {"team_lead", "finance"}
    assert user.check_password("a-brand-new-secret")
    entry, = _audits("user.update")
    assert entry.before["roles"] == ["researcher"] and entry.after["active"] is False
    assert len(_audits("user.password_reset")) == 1


def test_user_edit_without_new_password_keeps_it(client, admin):
    user = factories.make_user()
    db.session.commit()
    _post(client, f"/admin/users/{user.id}", {"name": user.name, "locale": "en", "active": "y",
                                              "roles": ["researcher"]}, f"/admin/users/{user.id}")
    assert db.session.get(User, user.id).check_password(factories.PASSWORD)
    assert _audits("user.password_reset") == []


def test_user_edit_deactivated_user_cannot_log_in(client, app, admin):
    user = factories.make_user()
    db.session.commit()
    _post(client, f"/admin/users/{user.id}", {"name": user.name, "locale": "en",
                                              "roles": ["researcher"]}, f"/admin/users/{user.id}")
    other = app.test_client()
    assert login(other, user.email).status_code == 422


@pytest.mark.parametrize("data, message", [
    ({"active": "y", "roles": ["researcher"]}, "cannot remove your own administrator role"),
    ({"roles": ["admin"]}, "cannot deactivate your own account"),
])
def test_admin_cannot_demote_or_deactivate_themselves(client, admin, data, message):
    response = _post(client, f"/admin/users/{admin.id}",
                     {"name": admin.name, "locale": "en", **data}, f"/admin/users/{admin.id}")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    me = db.session.get(User, admin.id)
    assert me.is_admin and me.active
    assert client.get("/admin/users").status_code == 200


@pytest.mark.parametrize("data, field_message", [
    ({"name": "", "roles": ["researcher"]}, "required"),
    ({"name": "N", "roles": ["wizard"]}, "not a valid choice"),
    ({"name": "N", "roles": ["researcher"], "new_password": "short"}, "at least 8"),
])
def test_user_edit_bad_input_is_422_and_writes_nothing(client, admin, data, field_message):
    user = factories.make_user(name="Keep")
    db.session.commit()
    response = _post(client, f"/admin/users/{user.id}", {"locale": "en", "active": "y", **data},
                     f"/admin/users/{user.id}")
    assert response.status_code == 422
    assert field_message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).name == "Keep"
    assert _audits("user.update") == []


def test_user_edit_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/999999").status_code == 404


def test_user_edit_shows_memberships_and_managed_facilities(client, admin):
    manager = factories.make_user_with_role("facility_manager")
    facility = manager.managed_facilities[0]
    team = factories.make_team(name="Soft Matter")
    factories.add_member(team, manager, is_lead=True)
    db.session.commit()
    page = client.get(f"/admin/users/{manager.id}").get_data(as_text=True)
    assert facility.name in page and "Soft Matter" in page


# -- teams -----------------------------------------------------------------------------
def test_team_create_writes_team_default_account_and_audit(client, admin):
    response = _post(client, "/admin/teams/new", {
        "name": "Quantum Devices", "customer_class_code": "startup",
        "invoice_title": "Quantum Devices Ltd", "tax_id": "91330100XYZ"}, "/admin/teams/new")
    assert response.status_code == 302
    team = db.session.scalar(sa.select(Team).where(Team.name == "Quantum Devices"))
    assert team.customer_class_code == "startup" and team.tax_id == "91330100XYZ"
    assert team.default_account is not None
    assert _audits("team.create")[0].actor_id == admin.id


@pytest.mark.parametrize("overrides, message", [
    ({"name": "Existing"}, "already exists"),
    ({"name": ""}, "required"),
    ({"customer_class_code": "martian"}, "Not a valid choice"),
    ({"invoice_title": "x" * 201}, "200"),
    ({"tax_id": "x" * 65}, "64"),
])
def test_team_create_bad_input_is_422_and_writes_nothing(client, admin, overrides, message):
    factories.make_team(name="Existing")
    db.session.commit()
    before = (_count(Team), _count(Account))
    response = _post(client, "/admin/teams/new", {
        "name": "Fresh", "customer_class_code": "internal", **overrides}, "/admin/teams/new")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert (_count(Team), _count(Account)) == before


def test_team_edit_updates_and_audits(client, admin):
    team = factories.make_team(name="Before")
    db.session.commit()
    response = _post(client, f"/admin/teams/{team.id}", {
        "name": "After", "customer_class_code": "industry", "invoice_title": "",
        "tax_id": ""}, f"/admin/teams/{team.id}")
    assert response.status_code == 302
    db.session.expire_all()
    team = db.session.get(Team, team.id)
    assert (team.name, team.customer_class_code, team.invoice_title) == ("After", "industry", None)
    assert _audits("team.update")[0].before["name"] == "Before"


def test_team_edit_duplicate_name_is_422(client, admin):
    factories.make_team(name="Taken")
    team = factories.make_team(name="Mine")
    db.session.commit()
    response = _post(client, f"/admin/teams/{team.id}", {
        "name": "Taken", "customer_class_code": "internal"}, f"/admin/teams/{team.id}")
    assert response.status_code == 422
    assert db.session.get(Team, team.id).name == "Mine"


def test_team_add_member_by_email_as_lead(client, admin):
    team = factories.make_team()
    user = factories.make_user(email="pi@example.org", roles=("researcher",))
    db.session.commit()
    response = _post(client, f"/admin/teams/{team.id}/members",
                     {"email": "PI@example.org", "is_lead": "y"})
    assert response.status_code == 302
    membership = db.session.get(Membership, (team.id, user.id))
    assert membership.is_lead
    assert "team_lead" in db.session.get(User, user.id).roles
    assert _audits("team.member")[0].after == {"user_id": user.id, "is_lead": True}


def test_team_add_member_unknown_email_is_422_and_writes_nothing(client, admin):
    team = factories.make_team()
    db.session.commit()
    response = _post(client, f"/admin/teams/{team.id}/members", {"email": "ghost@example.org"})
    assert response.status_code == 422
    assert "No user has this email address" in response.get_data(as_text=True)
    assert _count(Membership, Membership.team_id == team.id) == 0
    assert _audits("team.member") == []


def test_team_remove_member(client, admin):
    team = factories.make_team()
    user = factories.make_user()
    factories.add_member(team, user, is_lead=True)
    db.session.commit()
    response = _post(client, f"/admin/teams/{team.id}/members/{user.id}/remove", {})
    assert response.status_code == 302
    assert db.session.get(Membership, (team.id, user.id)) is None
    assert _audits("team.member_removed")[0].before == {"user_id": user.id}


def test_team_remove_non_member_is_404(client, admin):
    team = factories.make_team()
    user = factories.make_user()
    db.session.commit()
    assert _post(client, f"/admin/teams/{team.id}/members/{user.id}/remove", {}).status_code == 404


def _account(**overrides):
    return {"code": "GR-2026-01", "name": "NSFC grant", "kind": "grant",
            "valid_from": "2026-01-01", "valid_until": "2027-12-31", "spending_limit": "50000.50",
            "active": "y", "all_members": "y", **overrides}


def test_account_create_writes_account_and_audit(client, admin):
    team = factories.make_team()
    db.session.commit()
    path = f"/admin/teams/{team.id}/accounts/new"
    response = _post(client, path, _account(is_default="y"), path)
    assert response.status_code == 302
    account = db.session.scalar(sa.select(Account).where(Account.code == "GR-2026-01"))
    assert account.team_id == team.id and account.is_default
    assert account.spending_limit == Decimal("50000.50")
    assert (account.valid_from, account.valid_until) == (date(2026, 1, 1), date(2027, 12, 31))
    assert _audits("account.save")[0].after["spending_limit"] == "50000.50"


def test_account_new_form_starts_today(client, admin):
    team = factories.make_team()
    db.session.commit()
    page = client.get(f"/admin/teams/{team.id}/accounts/new").get_data(as_text=True)
    assert f'value="{centre_today().isoformat()}"' in page


def test_account_edit_changes_flags_and_clears_limit(client, admin):
    team = factories.make_team()
    account = factories.make_account(team, code="CC-1")
    db.session.commit()
    path = f"/admin/teams/{team.id}/accounts/{account.id}"
    response = _post(client, path, _account(code="CC-1", spending_limit="", active="",
                                            all_members=""), path)
    assert response.status_code == 302
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    assert account.spending_limit is None
    assert not account.active and not account.all_members


@pytest.mark.parametrize("overrides, message", [
    ({"spending_limit": "12.345"}, "two decimals"),
    ({"spending_limit": "-5"}, "at least 0"),
    ({"spending_limit": "lots"}, "two decimals"),
    ({"valid_until": "2025-12-31"}, "must not be before"),
    ({"valid_from": "2026-02-30"}, "Not a valid date"),
    ({"code": "TAKEN"}, "already has this code"),
    ({"name": "x" * 201}, "200"),
    ({"kind": "barter"}, "Not a valid choice"),
])
def test_account_bad_input_is_422_and_writes_nothing(client, admin, overrides, message):
    factories.make_account(code="TAKEN")
    team = factories.make_team()
    db.session.commit()
    before = _count(Account)
    path = f"/admin/teams/{team.id}/accounts/new"
    response = _post(client, path, _account(**overrides), path)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(Account) == before
    assert _audits("account.save") == []


def test_account_of_another_team_is_404(client, admin):
    account = factories.make_account()
    other = factories.make_team()
    db.session.commit()
    assert client.get(f"/admin/teams/{other.id}/accounts/{account.id}").status_code == 404


# -- facilities ------------------------------------------------------------------------
def _facility(platform, **overrides):
    return {"platform_id": platform, "code": "bio", "name": "Bio Imaging Core",
            "name_zh": "生物成像平台", "location": "B2", "timezone": "Asia/Shanghai",
            "description": "Confocal and flow", **overrides}


def test_facility_create_writes_facility_and_audit(client, admin):
    platform = factories.make_platform()
    db.session.commit()
    response = _post(client, "/admin/facilities/new", _facility(platform.id),
                     "/admin/facilities/new")
    assert response.status_code == 302
    facility = db.session.scalar(sa.select(Facility).where(Facility.code == "bio"))
    assert facility.name_zh == "生物成像平台" and facility.platform_id == platform.id
    assert response.headers["Location"] == f"/admin/facilities/{facility.id}"
    assert _audits("facility.create")[0].actor_id == admin.id


@pytest.mark.parametrize("overrides, message", [
    ({"timezone": "Asia/Beijing"}, "Unknown time zone"),
    ({"code": "dup"}, "already has this code"),
    ({"name": "x" * 161}, "160"),
    ({"platform_id": "abc"}, "Invalid Choice"),
    ({"platform_id": "999999"}, "Not a valid choice"),
    ({"code": ""}, "required"),
])
def test_facility_create_bad_input_is_422_and_writes_nothing(client, admin, overrides, message):
    factories.make_facility(code="dup")
    platform = factories.make_platform()
    db.session.commit()
    before = _count(Facility)
    response = _post(client, "/admin/facilities/new",
                     {**_facility(platform.id), **overrides}, "/admin/facilities/new")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(Facility) == before
    assert _audits("facility.create") == []


def test_facility_edit_updates_and_audits(client, admin):
    facility = factories.make_facility(location="Old wing")
    db.session.commit()
    path = f"/admin/facilities/{facility.id}"
    response = _post(client, path, _facility(facility.platform_id, code=facility.code,
                                             name=facility.name, location="New wing",
                                             timezone="Europe/Berlin"), path)
    assert response.status_code == 302
    db.session.expire_all()
    facility = db.session.get(Facility, facility.id)
    assert (facility.location, facility.timezone) == ("New wing", "Europe/Berlin")
    assert _audits("facility.update")[0].after["location"] == "New wing"


def test_facility_edit_bad_timezone_rerenders_all_sections(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    path = f"/admin/facilities/{facility.id}"
    response = _post(client, path, _facility(facility.platform_id, code=facility.code,
                                             timezone="Nowhere/Special"), path)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Unknown time zone" in page and "08:30-17:30" in page and "Add a manager" in page
    assert db.session.get(Facility, facility.id).timezone == "Asia/Shanghai"


def test_facility_add_manager_grants_role(client, admin):
    facility = factories.make_facility()
    user = factories.make_user(email="tech@example.org", roles=("researcher",))
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers",
                     {"email": "tech@example.org"})
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.manages_facility(facility.id)
    assert "facility_manager" in user.roles
    assert _audits("facility.managers")[0].after == {"user_ids": [user.id]}


def test_facility_add_manager_unknown_email_is_422(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers", {"email": "no@one.org"})
    assert response.status_code == 422
    assert "No user has this email address" in response.get_data(as_text=True)
    assert _audits("facility.managers") == []


def test_facility_remove_manager(client, admin):
    manager = factories.make_user_with_role("facility_manager")
    facility = manager.managed_facilities[0]
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers/{manager.id}/remove", {})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Facility, facility.id).managers == []


def _hours(**days):
    return {f"day_{d}": days.get(f"d{d}", "") for d in range(7)}


def test_facility_hours_saves_multiple_intervals(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/hours",
                     _hours(d0="08:30-12:00, 13:00-17:30", d5="9:00 – 12:00"))
    assert response.status_code == 302
    rows = db.session.scalars(sa.select(OpeningHours).where(
        OpeningHours.facility_id == facility.id).order_by(OpeningHours.weekday, OpeningHours.opens))
    assert [(r.weekday, r.opens, r.closes) for r in rows] == [
        (0, time(8, 30), time(12)), (0, time(13), time(17, 30)), (5, time(9), time(12))]
    assert len(_audits("facility.hours")) == 1


@pytest.mark.parametrize("text, message", [
    ("17:00-09:00", "must be before the closing time"),
    ("09:00-09:00", "must be before the closing time"),
    ("08:00-12:00, 11:00-14:00", "must not overlap"),
    ("8am to noon", "is not one"),
    ("25:00-26:00", "is not one"),
    ("08:00-12:00," * 20, "At most 200"),
])
def test_facility_hours_bad_input_is_422_and_writes_nothing(client, admin, text, message):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/hours", _hours(d2=text))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(OpeningHours, OpeningHours.facility_id == facility.id) == 5
    assert _audits("facility.hours") == []


def test_facility_unknown_id_is_404(client, admin):
    assert client.get("/admin/facilities/999999").status_code == 404
