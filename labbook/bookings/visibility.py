"""Who may see which bookings and qualifications, as queries for the lists of the API and
the pages (the row-by-row rules are ``Booking.can_see_details`` and
``may_see_qualification``)."""
from __future__ import annotations

import sqlalchemy as sa

from labbook.auth.models import Role, User
from labbook.bookings.models import Booking, Qualification
from labbook.instruments.models import Instrument


def _managed_instruments(user: User) -> sa.Select | None:
    """Ids of the instruments in the facilities ``user`` manages (None: no facility)."""
    if not (user.has_role(Role.FACILITY_MANAGER) and user.managed_facilities):
        return None
    return sa.select(Instrument.id).where(
        Instrument.facility_id.in_([f.id for f in user.managed_facilities]))


def bookings_visible_to(user: User) -> sa.Select:
    """Bookings ``user`` may see: their own, their led teams' bookings, those on instruments
    of the facilities they manage, and for admins every booking (the rule of
    ``Booking.can_see_details``)."""
    stmt = sa.select(Booking)
    if user.is_admin:
        return stmt
    conditions = [Booking.user_id == user.id]
    led = [m.team_id for m in user.memberships if m.is_lead] if user.has_role("team_lead") else []
    if led:
        conditions.append(Booking.team_id.in_(led))
    managed = _managed_instruments(user)
    if managed is not None:
        conditions.append(Booking.instrument_id.in_(managed))
    return stmt.where(sa.or_(*conditions))


def may_see_qualification(user: User, qualification: Qualification) -> bool:
    """The holder, managers of the instrument's facility, admins; a category-wide
    qualification concerns instruments everywhere, so every facility manager sees it."""
    if qualification.user_id == user.id:
        return True
    if qualification.instrument is None:
        return user.manages_any_facility()
    return user.manages_facility(qualification.instrument.facility_id)


def qualifications_visible_to(user: User) -> sa.Select:
    """Unrevoked qualifications ``user`` may see (``may_see_qualification`` as a query)."""
    stmt = sa.select(Qualification).where(Qualification.revoked_at.is_(None))
    if user.is_admin:
        return stmt
    managed = _managed_instruments(user)
    if managed is None:
        return stmt.where(Qualification.user_id == user.id)
    return stmt.where(sa.or_(Qualification.user_id == user.id,
                             Qualification.category.is_not(None),
                             Qualification.instrument_id.in_(managed)))
