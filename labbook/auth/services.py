"""Accounts, authentication and API tokens: the rules, with no HTTP in sight."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from labbook import audit
from labbook.auth.models import (
    LOCALES,
    ROLE_VALUES,
    ApiToken,
    User,
    UserRole,
    hash_token,
    new_token_secret,
)
from labbook.auth.throttle import get_throttle
from labbook.db import now_utc
from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db

MIN_PASSWORD_LENGTH = 8


class LoginThrottled(Forbidden):
    status = 429
    code = "too_many_requests"


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user(email: str) -> User | None:
    return db.session.execute(
        db.select(User).where(User.email == normalize_email(email))
    ).scalar_one_or_none()


def authenticate(email: str, password: str, address: str | None) -> User:
    """Check credentials, counting failures per account and per address.

    :raises LoginThrottled: after too many recent failures for this account or address.
    :raises ValidationError: when the email or password is wrong (one message for both, so
        the answer does not reveal which accounts exist).
    """
    throttle = get_throttle()
    email = normalize_email(email)
    if throttle.blocked(email, address):
        raise LoginThrottled(_("Too many failed attempts. Please wait a few minutes."))
    user = find_user(email)
    if user is None or not user.active or not user.check_password(password):
        throttle.failed(email, address)
        raise ValidationError(_("Invalid email or password."))
    throttle.succeeded(email)
    user.last_login_at = now_utc()
    return user


def validate_password(password: str) -> None:
    """:raises ValidationError: when the password is too short."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            _("Password too short."),
            {"password": [_("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)]},
        )


def _new_user_errors(
    email: str, name: str, roles: list[str] | tuple[str, ...], locale: str
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if "@" not in email or len(email) > 254:
        errors["email"] = [_("Enter a valid email address.")]
    elif find_user(email) is not None:
        errors["email"] = [_("A user with this email already exists.")]
    unknown = [r for r in roles if r not in ROLE_VALUES]
    if unknown:
        errors["roles"] = [_("Unknown role: %(role)s", role=", ".join(unknown))]
    if not (name or "").strip():
        errors["name"] = [_("This field is required.")]
    elif len(name.strip()) > 120:
        errors["name"] = [_("At most %(n)d characters.", n=120)]
    if locale not in LOCALES:
        errors["locale"] = [_("Unknown language.")]
    return errors


def create_user(
    actor: User | None,
    email: str,
    name: str,
    password: str | None,
    roles: list[str] | tuple[str, ...] = ("researcher",),
    locale: str = "en",
) -> User:
    """Create a local account.

    :raises ValidationError: listing every problem at once (email, name, roles, language,
        password).
    """
    email = normalize_email(email)
    errors = _new_user_errors(email, name, roles, locale)
    if password is not None:
        try:
            validate_password(password)
        except ValidationError as error:
            errors.update(error.fields)
    if errors:
        raise ValidationError(_("The user could not be created."), errors)
    user = User(email=email, name=name.strip(), locale=locale)
    if password is not None:
        user.set_password(password)
    user.role_rows = [UserRole(role=r) for r in dict.fromkeys(roles)]
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", user, after={"email": email, "roles": sorted(roles)})
    return user


def set_roles(actor: User, user: User, roles: list[str]) -> None:
    """Replace a user's roles. :raises ValidationError: on an unknown role."""
    unknown = [r for r in roles if r not in ROLE_VALUES]
    if unknown:
        raise ValidationError(
            _("Unknown role."), {"roles": [_("Unknown role: %(role)s", role=", ".join(unknown))]}
        )
    before = sorted(user.roles)
    keep = [row for row in user.role_rows if row.role in roles]
    added = [UserRole(role=r) for r in dict.fromkeys(roles) if r not in user.roles]
    user.role_rows = keep + added
    audit.record(
        actor, "user.roles", user, before={"roles": before}, after={"roles": sorted(roles)}
    )


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create an API token; the secret is returned once and only its hash is stored.

    :raises ValidationError: when the name is empty or too long.
    """
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationError(
            _("Invalid token name."), {"name": [_("Give the token a name of 1 to 80 characters.")]}
        )
    secret = new_token_secret()
    token = ApiToken(user=user, name=name, token_hash=hash_token(secret), hint=secret[:8])
    db.session.add(token)
    db.session.flush()
    audit.record(user, "token.create", token, after={"name": name, "user_id": user.id})
    return token, secret


def revoke_token(actor: User, token_id: int) -> ApiToken:
    """:raises NotFound: unless the token exists and belongs to ``actor`` (admins: any)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not actor.is_admin):
        raise NotFound(_("No such token."))
    if token.revoked_at is None:
        token.revoked_at = now_utc()
        audit.record(actor, "token.revoke", token, after={"revoked": True})
    return token


def user_for_token(secret: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    if not secret:
        return None
    # One round trip: the token, its user and the user's roles (every API call pays this).
    token = db.session.execute(
        db.select(ApiToken)
        .where(ApiToken.token_hash == hash_token(secret))
        .options(joinedload(ApiToken.user).joinedload(User.role_rows))
    ).unique().scalar_one_or_none()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    return token.user


def update_profile(user: User, name: str, locale: str) -> None:
    """:raises ValidationError: on an empty name or unknown locale."""
    errors: dict[str, list[str]] = {}
    if not (name or "").strip():
        errors["name"] = [_("This field is required.")]
    if locale not in LOCALES:
        errors["locale"] = [_("Unknown language.")]
    if errors:
        raise ValidationError(_("The profile could not be saved."), errors)
    before = {"name": user.name, "locale": user.locale}
    user.name = name.strip()
    user.locale = locale
    audit.record(user, "user.profile", user, before=before, after={"name": name, "locale": locale})


def change_password(user: User, current: str, new: str) -> None:
    """:raises ValidationError: when the current password is wrong or the new one short."""
    if not user.check_password(current):
        raise ValidationError(
            _("Password not changed."), {"current_password": [_("This is not your password.")]}
        )
    validate_password(new)
    user.set_password(new)
    audit.record(user, "user.password", user)
