"""Team pages: who sees which team, and the team lead's member and account tools."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.auth.models import User
from labbook.extensions import db
from labbook.teams.models import Account, Membership, Team
from tests import factories
from tests.conftest import csrf_token


def _post(client, path, data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/teams")})


def _audits(action: str) -> list[AuditEntry]:
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)).all()


@pytest.fixture
def team(app):
    team = factories.make_team(name="Thin Films Lab", customer_class="external_academic")
    factories.make_account(team, code="TF-CC", is_default=True)
    restricted = factories.make_account(team, code="TF-GRANT", kind="grant", all_members=False)
    member = factories.make_user(name="Mia Member", email="mia@example.org")
    factories.add_member(team, member)
    restricted.authorised_users.append(member)
    db.session.commit()
    return team


def _member(team: Team) -> User:
    return next(m.user for m in team.memberships if m.user.email == "mia@example.org")


def _restricted(team: Team) -> Account:
    return next(a for a in team.accounts if a.code == "TF-GRANT")


# -- who sees what ---------------------------------------------------------------------
def test_team_pages_anonymous_redirects_to_login(client, team):
    for path in ("/teams", f"/teams/{team.id}"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_member_sees_own_team_only(client, login_as, team):
    factories.make_team(name="Someone Else's Team")
    db.session.commit()
    login_as("researcher", team=team)
    page = client.get("/teams").get_data(as_text=True)
    assert "Thin Films Lab" in page and "Someone Else" not in page


def test_member_sees_team_detail_with_accounts(client, login_as, team):
    login_as("researcher", team=team)
    response = client.get(f"/teams/{team.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "TF-CC" in page and "TF-GRANT" in page and "Mia Member" in page
    assert "All members" in page
    assert "Add a member" not in page and "/remove" not in page


def test_non_member_gets_403_on_team_detail(client, login_as, team):
    login_as("researcher")
    assert client.get(f"/teams/{team.id}").status_code == 403


def test_lead_of_another_team_gets_403(client, login_as, team):
    login_as("team_lead")
    assert client.get(f"/teams/{team.id}").status_code == 403


def test_unknown_team_is_404(client, login_as):
    login_as("researcher")
    assert client.get("/teams/999999").status_code == 404


@pytest.mark.parametrize("role", ["finance", "admin"])
def test_finance_and_admin_see_all_teams(client, login_as, team, role):
    login_as(role)
    assert "Thin Films Lab" in client.get("/teams").get_data(as_text=True)
    assert client.get(f"/teams/{team.id}").status_code == 200


def test_user_without_teams_sees_empty_list(client, login_as, team):
    login_as("facility_manager")
    page = client.get("/teams").get_data(as_text=True)
    assert "Thin Films Lab" not in page and "do not belong to any team" in page


# -- the lead's tools ------------------------------------------------------------------
def test_lead_sees_management_forms(client, login_as, team):
    login_as("team_lead", team=team)
    page = client.get(f"/teams/{team.id}").get_data(as_text=True)
    assert "Add a member" in page and f"/teams/{team.id}/accounts/" in page


def test_sole_lead_is_not_offered_to_step_down(client, login_as, team):
    login_as("team_lead", team=team)
    page = client.get(f"/teams/{team.id}").get_data(as_text=True)
    assert "Make lead" in page and "Make member" not in page


def test_lead_adds_member_by_email(client, login_as, team):
    lead = login_as("team_lead", team=team)
    newcomer = factories.make_user(email="new@example.org")
    db.session.commit()
    response = _post(client, f"/teams/{team.id}/members", {"email": "new@example.org"})
    assert response.status_code == 302
    membership = db.session.get(Membership, (team.id, newcomer.id))
    assert membership is not None and not membership.is_lead
    entry, = _audits("team.member")
    assert entry.actor_id == lead.id


def test_lead_makes_member_a_lead(client, login_as, team):
    login_as("team_lead", team=team)
    member = _member(team)
    response = _post(client, f"/teams/{team.id}/members", {"email": member.email, "is_lead": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Membership, (team.id, member.id)).is_lead
    assert "team_lead" in db.session.get(User, member.id).roles


def test_lead_add_unknown_email_is_422_and_writes_nothing(client, login_as, team):
    login_as("team_lead", team=team)
    before = len(team.memberships)
    response = _post(client, f"/teams/{team.id}/members", {"email": "ghost@example.org"})
    assert response.status_code == 422
    assert "No user has this email address" in response.get_data(as_text=True)
    db.session.expire_all()
    assert len(db.session.get(Team, team.id).memberships) == before
    assert _audits("team.member") == []


@pytest.mark.parametrize("email", ["", "x" * 255])
def test_lead_add_member_bad_email_is_422(client, login_as, team, email):
    login_as("team_lead", team=team)
    assert _post(client, f"/teams/{team.id}/members", {"email": email}).status_code == 422
    assert _audits("team.member") == []


def test_lead_removes_member(client, login_as, team):
    login_as("team_lead", team=team)
    member = _member(team)
    response = _post(client, f"/teams/{team.id}/members/{member.id}/remove", {})
    assert response.status_code == 302
    assert db.session.get(Membership, (team.id, member.id)) is None
    assert _audits("team.member_removed")[0].before == {"user_id": member.id}


def test_last_lead_cannot_remove_themselves(client, login_as, team):
    lead = login_as("team_lead", team=team)
    response = _post(client, f"/teams/{team.id}/members/{lead.id}/remove", {})
    assert response.status_code == 422
    assert "last lead" in response.get_data(as_text=True)
    assert db.session.get(Membership, (team.id, lead.id)) is not None


def test_lead_sets_authorised_members_of_restricted_account(client, login_as, team):
    lead = login_as("team_lead", team=team)
    account = _restricted(team)
    prefix = f"account{account.id}-"
    response = _post(client, f"/teams/{team.id}/accounts/{account.id}/users",
                     {prefix + "users": [str(lead.id)]})
    assert response.status_code == 302
    db.session.expire_all()
    assert [u.id for u in db.session.get(Account, account.id).authorised_users] == [lead.id]
    entry, = _audits("account.users")
    assert entry.before == {"user_ids": [_member(team).id]}
    assert entry.after == {"user_ids": [lead.id]}


def test_lead_can_clear_authorised_members(client, login_as, team):
    login_as("team_lead", team=team)
    account = _restricted(team)
    response = _post(client, f"/teams/{team.id}/accounts/{account.id}/users", {})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Account, account.id).authorised_users == []


def test_authorising_a_non_member_is_422(client, login_as, team):
    login_as("team_lead", team=team)
    outsider = factories.make_user()
    db.session.commit()
    account = _restricted(team)
    response = _post(client, f"/teams/{team.id}/accounts/{account.id}/users",
                     {f"account{account.id}-users": [str(outsider.id)]})
    assert response.status_code == 422
    db.session.expire_all()
    assert [u.email for u in db.session.get(Account, account.id).authorised_users] == [
        "mia@example.org"]


def test_account_of_another_team_is_404(client, login_as, team):
    login_as("team_lead", team=team)
    foreign = factories.make_account()
    db.session.commit()
    response = _post(client, f"/teams/{team.id}/accounts/{foreign.id}/users", {})
    assert response.status_code == 404


def test_admin_may_use_the_lead_tools(client, login_as, team):
    login_as("admin")
    newcomer = factories.make_user(email="by-admin@example.org")
    db.session.commit()
    assert _post(client, f"/teams/{team.id}/members",
                 {"email": "by-admin@example.org"}).status_code == 302
    assert db.session.get(Membership, (team.id, newcomer.id)) is not None


def _lead_posts(team: Team) -> list[tuple[str, dict]]:
    member, account = _member(team), _restricted(team)
    return [
        (f"/teams/{team.id}/members", {"email": member.email, "is_lead": "y"}),
        (f"/teams/{team.id}/members/{member.id}/remove", {}),
        (f"/teams/{team.id}/accounts/{account.id}/users", {}),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("role", ["researcher", "finance", "facility_manager"])
def test_non_leads_get_403_on_lead_tools_and_nothing_is_written(
        client, login_as, team, role, index):
    if role == "researcher":
        login_as(role, team=team)
    else:
        login_as(role)
    path, data = _lead_posts(team)[index]
    assert _post(client, path, data).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


def test_member_with_team_lead_role_elsewhere_is_not_lead_here(client, login_as, team):
    user = login_as("team_lead")  # leads their own new team
    factories.add_member(team, db.session.get(User, user.id))  # plain member of this one
    db.session.commit()
    path, data = _lead_posts(team)[1]
    assert _post(client, path, data).status_code == 403


@pytest.mark.parametrize("index", [0, 1, 2])
def test_lead_posts_without_csrf_are_refused(client, login_as, team, index):
    login_as("team_lead", team=team)
    path, data = _lead_posts(team)[index]
    assert client.post(path, data=data).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize("index", [0, 1, 2])
def test_lead_posts_anonymous_redirect_to_login(client, team, index):
    path, data = _lead_posts(team)[index]
    response = client.post(path, data={**data, "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
