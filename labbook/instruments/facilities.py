"""Facility rules: creating and changing facilities, choosing their managers and setting
their opening hours (the staffed hours the booking rules consult).

Only administrators change facilities; ``actor`` may be None for trusted system callers
(the CLI, demo data), which skip that check. Services flush and audit; the caller commits.
"""
from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import Any, Iterable
from zoneinfo import available_timezones

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import Role, User, UserRole
from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, OpeningHours, Platform

DEFAULT_TIMEZONE = "Asia/Shanghai"
TEXT_LIMITS = {
    "code": 40,
    "name": 160,
    "name_zh": 160,
    "location": 200,
    "timezone": 64,
    "description": 5000,
}
REQUIRED_TEXT = ("code", "name")
FACILITY_FIELDS = ("platform_id",) + tuple(TEXT_LIMITS)
# Names in the tz database that are not places: a facility's zone must be a real one.
_NOT_ZONES = ("localtime", "Factory", "posixrules")

Interval = tuple[int, time, time]


@lru_cache(maxsize=1)
def known_timezones() -> tuple[str, ...]:
    """The IANA zone names a facility may use, sorted (also offered as form suggestions)."""
    return tuple(sorted(
        name for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    ))


def is_timezone(name: Any) -> bool:
    """True when ``name`` is an IANA zone zoneinfo can load (e.g. ``Asia/Shanghai``)."""
    return isinstance(name, str) and name in known_timezones()


def _require_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_admin:
        raise Forbidden(_("Only administrators can change facilities."))


def _check_text(values: dict[str, Any], errors: dict[str, list[str]], creating: bool) -> None:
    for name, limit in TEXT_LIMITS.items():
        if name not in values:
            if creating and name in REQUIRED_TEXT:
                errors[name] = [_("This field is required.")]
            continue
        value = values[name]
        if value is None and name not in REQUIRED_TEXT:
            continue
        if not isinstance(value, str):
            errors[name] = [_("Must be text.")]
        elif name in REQUIRED_TEXT and not value.strip():
            errors[name] = [_("This field is required.")]
        elif len(value) > limit:
            errors[name] = [_("At most %(n)d characters.", n=limit)]


def _check_unique(values: dict[str, Any], errors: dict[str, list[str]],
                  current: Facility | None) -> None:
    for name, message in (
        ("code", _("Another facility already has this code.")),
        ("name", _("Another facility already has this name.")),
    ):
        value = values.get(name)
        if name in errors or not isinstance(value, str):
            continue
        clash = db.session.scalar(
            sa.select(Facility.id).where(getattr(Facility, name) == value.strip())
        )
        if clash is not None and (current is None or clash != current.id):
            errors[name] = [message]


def _check_facility(values: dict[str, Any], current: Facility | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name in sorted(set(values) - set(FACILITY_FIELDS)):
        errors[name] = [_("Unknown field.")]
    _check_text(values, errors, creating=current is None)
    if "platform_id" in values:
        pid = values["platform_id"]
        known = isinstance(pid, int) and not isinstance(pid, bool) and (
            db.session.get(Platform, pid) is not None)
        if not known:
            errors["platform_id"] = [_("Unknown platform.")]
    elif current is None:
        errors["platform_id"] = [_("This field is required.")]
    if "timezone" in values and "timezone" not in errors and not is_timezone(values["timezone"]):
        errors["timezone"] = [_("Unknown time zone. Use a name such as Asia/Shanghai.")]
    _check_unique(values, errors, current)
    return errors


def _apply(facility: Facility, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, str):
            value = value.strip()
        if name == "name_zh" and not value:
            value = None
        elif name in ("location", "description") and value is None:
            value = ""
        setattr(facility, name, value)


def create_facility(actor: User | None, values: dict[str, Any]) -> Facility:
    """Create a facility; its time zone defaults to the centre's (Asia/Shanghai).

    :raises Forbidden: unless ``actor`` is an administrator.
    :raises ValidationError: on a missing, over-long or duplicate code or name, an unknown
        platform or time zone, or an unknown field.
    """
    _require_admin(actor)
    values = {"timezone": DEFAULT_TIMEZONE, **values}
    errors = _check_facility(values, None)
    if errors:
        raise ValidationError(_("The facility could not be saved."), errors)
    facility = Facility()
    _apply(facility, {"location": "", "description": "", **values})
    db.session.add(facility)
    db.session.flush()
    audit.record(actor, "facility.create", facility,
                 after=audit.snapshot(facility, FACILITY_FIELDS))
    return facility


def update_facility(actor: User | None, facility: Facility, values: dict[str, Any]) -> Facility:
    """Change some attributes of ``facility``; the audit entry lists only what changed.

    :raises Forbidden: unless ``actor`` is an administrator.
    :raises ValidationError: as for :func:`create_facility`.
    """
    _require_admin(actor)
    errors = _check_facility(values, facility)
    if errors:
        raise ValidationError(_("The facility could not be saved."), errors)
    before = audit.snapshot(facility, FACILITY_FIELDS)
    _apply(facility, values)
    db.session.flush()
    after = audit.snapshot(facility, FACILITY_FIELDS)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        audit.record(actor, "facility.update", facility,
                     before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return facility


def set_managers(actor: User | None, facility: Facility, users: Iterable[User]) -> None:
    """Make ``users`` the managers of ``facility``. Each one gets the facility_manager role,
    which the manager's scope needs; a removed manager keeps the role (an administrator
    may take it away on the user's page) but no longer manages this facility.

    :raises Forbidden: unless ``actor`` is an administrator.
    """
    _require_admin(actor)
    users = list(dict.fromkeys(users))
    before = sorted(u.id for u in facility.managers)
    for user in users:
        if Role.FACILITY_MANAGER.value not in user.roles:
            user.role_rows.append(UserRole(role=Role.FACILITY_MANAGER.value))
    facility.managers = users
    db.session.flush()
    audit.record(actor, "facility.managers", facility, before={"user_ids": before},
                 after={"user_ids": sorted(u.id for u in users)})


def add_manager(actor: User | None, facility: Facility, user: User) -> None:
    """Add one manager (adding an existing manager changes nothing).

    :raises Forbidden: unless ``actor`` is an administrator.
    """
    _require_admin(actor)
    if user not in facility.managers:
        set_managers(actor, facility, [*facility.managers, user])


def remove_manager(actor: User | None, facility: Facility, user: User) -> None:
    """:raises Forbidden: unless ``actor`` is an administrator.
    :raises NotFound: when ``user`` does not manage ``facility``."""
    _require_admin(actor)
    if user not in facility.managers:
        raise NotFound(_("This user does not manage the facility."))
    set_managers(actor, facility, [m for m in facility.managers if m is not user])


def _day_key(weekday: Any) -> str:
    valid = isinstance(weekday, int) and not isinstance(weekday, bool) and 0 <= weekday <= 6
    return f"day_{weekday}" if valid else "opening_hours"


def check_opening_hours(intervals: Iterable[Interval]) -> dict[str, list[str]]:
    """Field errors for a week of staffed intervals, keyed ``day_<weekday>`` (0 = Monday):
    each interval must open before it closes, and intervals of one day must not overlap
    (touching is fine)."""
    errors: dict[str, list[str]] = {}
    by_day: dict[int, list[tuple[time, time]]] = {}
    for item in intervals:
        weekday, opens, closes = item
        key = _day_key(weekday)
        if key == "opening_hours" or not isinstance(opens, time) or not isinstance(closes, time):
            errors.setdefault(key, []).append(_("Each interval needs a weekday and two times."))
        elif opens >= closes:
            errors.setdefault(key, []).append(_("%(opens)s–%(closes)s: the opening time must be "
                                                "before the closing time.",
                                                opens=opens.strftime("%H:%M"),
                                                closes=closes.strftime("%H:%M")))
        else:
            by_day.setdefault(weekday, []).append((opens, closes))
    for weekday, spans in by_day.items():
        spans.sort()
        if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])):
            errors.setdefault(_day_key(weekday), []).append(_("Intervals on one day must not "
                                                              "overlap."))
    return errors


def _hours_snapshot(facility: Facility) -> list[list[Any]]:
    return [[h.weekday, h.opens.strftime("%H:%M"), h.closes.strftime("%H:%M")]
            for h in sorted(facility.opening_hours, key=lambda h: (h.weekday, h.opens))]


def set_opening_hours(actor: User | None, facility: Facility,
                      intervals: Iterable[Interval]) -> None:
    """Replace the facility's staffed hours with ``intervals`` of (weekday, opens, closes)
    in the facility's local time; a day without intervals is closed.

    :raises Forbidden: unless ``actor`` is an administrator.
    :raises ValidationError: with errors keyed ``day_<weekday>`` when an interval does not
        open before it closes or intervals of one day overlap.
    """
    _require_admin(actor)
    intervals = list(intervals)
    errors = check_opening_hours(intervals)
    if errors:
        raise ValidationError(_("The opening hours could not be saved."), errors)
    before = _hours_snapshot(facility)
    facility.opening_hours = [
        OpeningHours(weekday=d, opens=o.replace(microsecond=0), closes=c.replace(microsecond=0))
        for d, o, c in sorted(intervals)
    ]
    db.session.flush()
    audit.record(actor, "facility.hours", facility, before={"hours": before},
                 after={"hours": _hours_snapshot(facility)})


def hours_by_day(facility: Facility) -> dict[int, list[tuple[time, time]]]:
    """The facility's staffed intervals grouped by weekday (0 = Monday), in order."""
    days: dict[int, list[tuple[time, time]]] = {d: [] for d in range(7)}
    for hours in sorted(facility.opening_hours, key=lambda h: (h.weekday, h.opens)):
        days[hours.weekday].append((hours.opens, hours.closes))
    return days
