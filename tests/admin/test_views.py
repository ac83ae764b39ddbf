"""Administration pages (labbook/admin/views.py), every route at once: anonymous visitors
are sent to the login page, other roles get 403, administrators see each page with its
CSRF field, and posts without a CSRF token are refused; nothing refused is written or
audited. The pages themselves are tested by area in test_views_users.py,
test_views_teams.py and test_views_facilities.py."""
from __future__ import annotations

import pytest

from labbook.audit import AuditEntry
from labbook.extensions import db
from tests import factories
from tests.admin.view_support import _count, _post
from tests.conftest import csrf_token

ROLES_DENIED = ["researcher", "team_lead", "facility_manager", "finance"]


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
