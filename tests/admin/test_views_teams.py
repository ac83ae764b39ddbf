"""Team administration pages (labbook/admin/views.py): creating and editing teams (with
their default account), adding members by email (as lead) and removing them, and the
team's accounts: creating, editing flags and spending limits, an account of another team
is 404; bad input is refused with 422 and writes nothing; every change is audited."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.extensions import db
from labbook.teams.forms import centre_today
from labbook.teams.models import Account, Membership, Team
from tests import factories
from tests.admin.view_support import _audits, _count, _post


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
