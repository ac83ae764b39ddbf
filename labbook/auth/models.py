"""Users, their roles and API tokens.

Roles are global markers (``user_roles``); the two scoped roles take their scope from
elsewhere: a facility manager manages the facilities listed in ``facility_managers``, a team
lead leads the teams where their membership has ``is_lead``. Permission predicates live here
so views and services ask the model, never re-derive the rule.
"""
from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.instruments.models import Facility, Instrument
    from labbook.teams.models import Membership, Team


class Role(str, enum.Enum):
    RESEARCHER = "researcher"
    TEAM_LEAD = "team_lead"
    FACILITY_MANAGER = "facility_manager"
    FINANCE = "finance"
    ADMIN = "admin"


ROLE_VALUES = tuple(role.value for role in Role)
LOCALES = ("en", "zh_Hans")
PASSWORD_METHOD = "scrypt"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.CheckConstraint("locale IN ('en', 'zh_Hans')", name="locale_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    # The personal PIN for kiosk check-in/out (hashed like a password); None: not set.
    kiosk_pin_hash: Mapped[str | None] = mapped_column(sa.String(255))
    locale: Mapped[str] = mapped_column(sa.String(10), default="en", server_default="en")
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_login_at: Mapped[datetime | None]

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    managed_facilities: Mapped[list[Facility]] = relationship(
        secondary="facility_managers", back_populates="managers"
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<User {self.email}>"

    # -- Flask-Login ---------------------------------------------------------------
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.active)

    # -- passwords -----------------------------------------------------------------
    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    # -- roles and scopes ----------------------------------------------------------
    @property
    def roles(self) -> set[str]:
        return {row.role for row in self.role_rows}

    def has_role(self, *roles: str | Role) -> bool:
        wanted = {r.value if isinstance(r, Role) else r for r in roles}
        return bool(self.roles & wanted)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles

    @property
    def is_finance(self) -> bool:
        return self.has_role(Role.FINANCE, Role.ADMIN)

    def manages_facility(self, facility: Facility | int | None) -> bool:
        """True when the user may manage ``facility`` (admins manage every facility)."""
        if self.is_admin:
            return True
        if facility is None or not self.has_role(Role.FACILITY_MANAGER):
            return False
        facility_id = facility if isinstance(facility, int) else facility.id
        return any(f.id == facility_id for f in self.managed_facilities)

    def manages_any_facility(self) -> bool:
        return self.is_admin or (
            self.has_role(Role.FACILITY_MANAGER) and bool(self.managed_facilities)
        )

    def can_edit_instrument(self, instrument: Instrument) -> bool:
        return self.manages_facility(instrument.facility_id)

    def team_ids(self) -> set[int]:
        return {m.team_id for m in self.memberships}

    def leads_team(self, team: Team | int) -> bool:
        if self.is_admin:
            return True
        team_id = team if isinstance(team, int) else team.id
        return self.has_role(Role.TEAM_LEAD) and any(
            m.team_id == team_id and m.is_lead for m in self.memberships
        )

    def can_see_team(self, team: Team | int) -> bool:
        """Admins and finance see every team; others see the teams they belong to."""
        if self.is_finance:
            return True
        team_id = team if isinstance(team, int) else team.id
        return team_id in self.team_ids()


class UserRole(db.Model):
    __tablename__ = "user_roles"
    __table_args__ = (
        sa.CheckConstraint(
            "role IN ('researcher', 'team_lead', 'facility_manager', 'finance', 'admin')",
            name="role_known",
        ),
    )

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(default=now_utc)

    user: Mapped[User] = relationship(back_populates="role_rows")


TOKEN_PREFIX = "lbk_"


def hash_token(raw: str) -> str:
    """SHA-256 of a high-entropy token; a slow hash adds nothing for 256-bit secrets."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(db.Model):
    """A bearer token for ``/api/v1``. Only its hash is stored; the secret is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
