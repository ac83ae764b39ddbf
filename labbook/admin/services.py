"""User administration rules that ``labbook.auth.services`` does not cover: an
administrator changing another user's details, roles, active flag or password, and the
user search behind the admin list. Services flush and audit; the caller commits.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from labbook import audit
from labbook.auth.models import LOCALES, ROLE_VALUES, Role, User, UserRole
from labbook.auth.services import validate_password
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.teams.models import Membership

USER_FIELDS = ("name", "locale", "active", "roles")


def _check_user_values(actor: User, user: User, values: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key in sorted(set(values) - set(USER_FIELDS)):
        errors[key] = [_("Unknown field.")]
    name = values.get("name", user.name)
    if not isinstance(name, str) or not name.strip():
        errors["name"] = [_("This field is required.")]
    elif len(name.strip()) > 120:
        errors["name"] = [_("At most %(n)d characters.", n=120)]
    if values.get("locale", user.locale) not in LOCALES:
        errors["locale"] = [_("Unknown language.")]
    roles = values.get("roles", sorted(user.roles))
    unknown = [r for r in roles if r not in ROLE_VALUES]
    if unknown:
        errors["roles"] = [_("Unknown role: %(role)s", role=", ".join(map(str, unknown)))]
    elif actor.id == user.id and Role.ADMIN.value not in roles:
        errors["roles"] = [_("You cannot remove your own administrator role.")]
    if not isinstance(values.get("active", True), bool):
        errors["active"] = [_("Must be true or false.")]
    elif actor.id == user.id and values.get("active") is False:
        errors["active"] = [_("You cannot deactivate your own account.")]
    return errors


def _snapshot(user: User) -> dict[str, Any]:
    return {"name": user.name, "locale": user.locale, "active": user.active,
            "roles": sorted(user.roles)}


def _apply(user: User, values: dict[str, Any]) -> None:
    if "name" in values:
        user.name = values["name"].strip()
    user.locale = values.get("locale", user.locale)
    user.active = values.get("active", user.active)
    if "roles" in values:
        wanted = list(dict.fromkeys(values["roles"]))
        keep = [row for row in user.role_rows if row.role in wanted]
        user.role_rows = keep + [UserRole(role=r) for r in wanted if r not in user.roles]


def update_user(actor: User, user: User, values: dict[str, Any],
                new_password: str | None = None) -> User:
    """Change another user's name, locale, active flag and roles, and optionally set a new
    password. An administrator cannot remove their own admin role or deactivate their own
    account, so the centre can never lock out the person making the change.

    :raises Forbidden: unless ``actor`` is an administrator.
    :raises ValidationError: on an empty or over-long name, unknown locale or role, a short
        new password (key ``new_password``), or an attempt to demote or deactivate oneself.
    """
    if not actor.is_admin:
        raise Forbidden(_("Only administrators can change other users."))
    errors = _check_user_values(actor, user, values)
    if new_password:
        try:
            validate_password(new_password)
        except ValidationError as error:
            errors["new_password"] = error.fields.get("password", [error.message])
    if errors:
        raise ValidationError(_("The user could not be saved."), errors)
    before = _snapshot(user)
    _apply(user, values)
    db.session.flush()
    after = _snapshot(user)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        audit.record(actor, "user.update", user,
                     before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    if new_password:
        user.set_password(new_password)
        audit.record(actor, "user.password_reset", user)
    return user


def search_users(query: str | None = None, role: str | None = None) -> sa.Select:
    """Users whose name or email contains ``query`` (case-insensitive), optionally only
    holders of ``role``; ordered by name, with roles and teams loaded for the list."""
    stmt = sa.select(User).options(
        selectinload(User.memberships).selectinload(Membership.team)
    ).order_by(sa.func.lower(User.name), User.id)
    if query and query.strip():
        needle = query.strip().lower()
        stmt = stmt.where(sa.or_(sa.func.lower(User.name).contains(needle, autoescape=True),
                                 User.email.contains(needle, autoescape=True)))
    if role:
        stmt = stmt.where(User.role_rows.any(UserRole.role == role))
    return stmt
