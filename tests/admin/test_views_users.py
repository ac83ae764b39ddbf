"""User administration pages (labbook/admin/views.py): the list (search, role filter, teams,
pagination), creating a user with roles and a password, editing details, roles, password and
the active flag; an administrator cannot demote or deactivate themselves; bad input is
refused with 422 and writes nothing; every change is audited."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.extensions import db
from tests import factories
from tests.admin.view_support import _audits, _count, _post
from tests.conftest import csrf_token, login


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
