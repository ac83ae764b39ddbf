"""User administration rules (``labbook.admin.services``)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.admin import services
from labbook.audit import AuditEntry
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from tests import factories


def test_update_user_is_admin_only(app):
    finance = factories.make_user(roles=("finance",))
    with pytest.raises(Forbidden):
        services.update_user(finance, factories.make_user(), {"name": "X"})


def test_update_user_audits_only_changed_values(app):
    admin = factories.make_user(roles=("admin",))
    user = factories.make_user(name="Same", roles=("researcher",))
    services.update_user(admin, user, {"name": "Same", "roles": ["researcher", "finance"]})
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert entry.before == {"roles": ["researcher"]}
    assert entry.after == {"roles": ["finance", "researcher"]}


def test_update_user_without_changes_writes_no_audit(app):
    admin = factories.make_user(roles=("admin",))
    user = factories.make_user()
    services.update_user(admin, user, {"name": user.name, "active": True})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize("values, field", [
    ({"locale": "fr"}, "locale"),
    ({"active": "yes"}, "active"),
    ({"roles": ["researcher", "wizard"]}, "roles"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"email": "new@example.org"}, "email"),
])
def test_update_user_rejects_bad_values(app, values, field):
    admin = factories.make_user(roles=("admin",))
    user = factories.make_user(name="Keep")
    with pytest.raises(ValidationError) as info:
        services.update_user(admin, user, values)
    assert field in info.value.fields
    assert user.name == "Keep"


def test_update_user_short_password_is_reported_on_new_password(app):
    admin = factories.make_user(roles=("admin",))
    user = factories.make_user()
    with pytest.raises(ValidationError) as info:
        services.update_user(admin, user, {}, new_password="short")
    assert "new_password" in info.value.fields
    assert user.check_password(factories.PASSWORD)


def test_admin_may_keep_own_admin_role_while_adding_others(app):
    admin = factories.make_user(roles=("admin",))
    services.update_user(admin, admin, {"roles": ["admin", "finance"], "active": True})
    assert admin.roles == {"admin", "finance"}


def test_admin_may_demote_another_admin(app):
    admin, other = factories.make_user(roles=("admin",)), factories.make_user(roles=("admin",))
    services.update_user(admin, other, {"roles": ["researcher"], "active": False})
    assert not other.is_admin and not other.active


def test_search_users_matches_name_or_email_case_insensitively(app):
    factories.make_user(name="Marie Curie", email="mc@example.org")
    factories.make_user(name="Other", email="CURIE.fan@example.org".lower())
    factories.make_user(name="Nobody", email="n@example.org")
    found = db.session.scalars(services.search_users("cUrIe")).all()
    assert sorted(u.name for u in found) == ["Marie Curie", "Other"]


def test_search_users_filters_by_role(app):
    factories.make_user(name="Fin", roles=("finance",))
    factories.make_user(name="Res", roles=("researcher",))
    assert [u.name for u in db.session.scalars(services.search_users(role="finance"))] == ["Fin"]
