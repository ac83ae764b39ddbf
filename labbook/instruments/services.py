"""Catalog rules: who may create or change an instrument, and what a coherent instrument
and booking policy looks like. The UI form, the JSON API and the CSV import all come here,
so the rules exist once. Services flush, audit, and never commit.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.db import now_utc
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.instruments.models import (
    INSTRUMENT_STATUSES,
    POLICY_FIELDS,
    Facility,
    Instrument,
    ResearchField,
)

TEXT_LIMITS = {
    "name": 160,
    "asset_code": 64,
    "category": 80,
    "make": 120,
    "model": 120,
    "location": 200,
    "description": 5000,
}
REQUIRED_TEXT = ("name", "asset_code", "category")
INT_RANGES = {
    "slot_minutes": (1, 1440),
    "min_minutes": (1, 10080),
    "max_minutes": (1, 10080),
    "lead_minutes": (0, 525600),
    "horizon_days": (1, 3660),
    "buffer_minutes": (0, 1440),
    "late_cancel_notice_hours": (0, 8760),
    "no_show_grace_minutes": (0, 1440),
    "user_weekly_quota_minutes": (1, 10080),
    "team_weekly_quota_minutes": (1, 10080),
}
NULLABLE_INTS = ("user_weekly_quota_minutes", "team_weekly_quota_minutes")
BOOL_FIELDS = ("requires_approval", "requires_qualification")
EDITABLE = tuple(TEXT_LIMITS) + ("facility_id", "field_ids", "status") + POLICY_FIELDS
AUDITED = tuple(TEXT_LIMITS) + ("facility_id", "field_ids", "status") + POLICY_FIELDS


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)

    def raise_if_any(self, message: str) -> None:
        if self.fields:
            raise ValidationError(message, self.fields)


def _check_text(values: dict[str, Any], errors: _Errors, creating: bool) -> None:
    for name, limit in TEXT_LIMITS.items():
        if name not in values:
            if creating and name in REQUIRED_TEXT:
                errors.add(name, _("This field is required."))
            continue
        value = values[name]
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors.add(name, _("Must be text."))
        elif name in REQUIRED_TEXT and not value.strip():
            errors.add(name, _("This field is required."))
        elif len(value) > limit:
            errors.add(name, _("At most %(n)d characters.", n=limit))


def _check_numbers(values: dict[str, Any], errors: _Errors) -> None:
    for name, (low, high) in INT_RANGES.items():
        if name not in values:
            continue
        value = values[name]
        if value is None and name in NULLABLE_INTS:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors.add(name, _("Must be a whole number."))
        elif not low <= value <= high:
            errors.add(name, _("Must be between %(low)d and %(high)d.", low=low, high=high))
    for name in BOOL_FIELDS:
        if name in values and not isinstance(values[name], bool):
            errors.add(name, _("Must be true or false."))


def _check_policy_coherence(merged: dict[str, Any], errors: _Errors) -> None:
    slot, low, high = merged["slot_minutes"], merged["min_minutes"], merged["max_minutes"]
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in (slot, low, high)):
        return  # already reported by _check_numbers
    if low % slot:
        errors.add("min_minutes", _("Must be a multiple of the slot length (%(n)d min).", n=slot))
    elif low < slot:
        errors.add("min_minutes", _("Must be at least the slot length (%(n)d min).", n=slot))
    if high % slot:
        errors.add("max_minutes", _("Must be a multiple of the slot length (%(n)d min).", n=slot))
    elif high < low:
        errors.add("max_minutes", _("Must be at least the minimum duration."))


def _resolve_fields(ids: Any, errors: _Errors) -> list[ResearchField] | None:
    if not isinstance(ids, (list, tuple)) or any(
        isinstance(i, bool) or not isinstance(i, int) for i in ids
    ):
        errors.add("field_ids", _("Must be a list of research field ids."))
        return None
    if not ids:
        errors.add("field_ids", _("Choose at least one research field."))
        return None
    found = db.session.scalars(sa.select(ResearchField).where(ResearchField.id.in_(set(ids)))).all()
    missing = set(ids) - {f.id for f in found}
    if missing:
        errors.add(
            "field_ids",
            _("Unknown research field: %(ids)s", ids=", ".join(str(i) for i in sorted(missing))),
        )
        return None
    return sorted(found, key=lambda f: f.id)


def _check_references(
    actor: User | None, values: dict[str, Any], errors: _Errors, current: Instrument | None
) -> tuple[Facility | None, list[ResearchField] | None]:
    facility = None
    if "facility_id" in values:
        fid = values["facility_id"]
        if isinstance(fid, bool) or not isinstance(fid, int):
            errors.add("facility_id", _("Must be a facility id."))
        else:
            facility = db.session.get(Facility, fid)
            if facility is None:
                errors.add("facility_id", _("Unknown facility."))
    fields = _resolve_fields(values["field_ids"], errors) if "field_ids" in values else None
    if "status" in values and values["status"] not in INSTRUMENT_STATUSES:
        errors.add("status", _("Unknown status."))
    if "asset_code" in values and isinstance(values["asset_code"], str):
        code = values["asset_code"].strip()
        clash = db.session.scalar(sa.select(Instrument.id).where(Instrument.asset_code == code))
        if clash is not None and (current is None or clash != current.id):
            errors.add("asset_code", _("Another instrument already has this asset code."))
    return facility, fields


def _policy_defaults() -> dict[str, Any]:
    columns = Instrument.__table__.columns
    return {name: columns[name].default.arg for name in POLICY_FIELDS if columns[name].default}


def validate_instrument(
    actor: User | None, values: dict[str, Any], current: Instrument | None = None
) -> tuple[Facility | None, list[ResearchField] | None]:
    """Check ``values`` (already typed: ints, bools, strings, lists of ids). ``actor`` is
    None for trusted system callers (the CLI import, demo data), which skip the scope check.

    :raises ValidationError: listing every bad field at once.
    :raises Forbidden: when ``actor`` does not manage the target facility.
    """
    if (
        current is not None
        and actor is not None
        and not actor.manages_facility(current.facility_id)
    ):
        raise Forbidden(_("Only managers of this facility can change its instruments."))
    unknown = set(values) - set(EDITABLE)
    errors = _Errors()
    for name in sorted(unknown):
        errors.add(name, _("Unknown field."))
    _check_text(values, errors, creating=current is None)
    _check_numbers(values, errors)
    if current is None:
        for name in ("facility_id", "field_ids"):
            if name not in values:
                errors.add(name, _("This field is required."))
    facility, fields = _check_references(actor, values, errors, current)
    merged = {
        **(
            _policy_defaults()
            if current is None
            else {n: getattr(current, n) for n in POLICY_FIELDS}
        ),
        **values,
    }
    _check_policy_coherence(merged, errors)
    errors.raise_if_any(_("The instrument could not be saved."))
    target = facility if facility is not None else (current.facility if current else None)
    if actor is not None and (target is None or not actor.manages_facility(target)):
        raise Forbidden(_("Only managers of this facility can change its instruments."))
    return facility, fields


def _apply(
    instrument: Instrument, values: dict[str, Any], fields: list[ResearchField] | None
) -> None:
    for name, value in values.items():
        if name == "field_ids":
            continue
        if name in TEXT_LIMITS:
            value = (value or "").strip()
        setattr(instrument, name, value)
    if fields is not None:
        instrument.fields = fields


def create_instrument(actor: User | None, values: dict[str, Any]) -> Instrument:
    """Create an instrument in a facility ``actor`` manages.

    :raises ValidationError: on bad or incoherent values.
    :raises Forbidden: when ``actor`` does not manage the facility.
    """
    _, fields = validate_instrument(actor, values)
    instrument = Instrument()
    _apply(instrument, values, fields)
    db.session.add(instrument)
    db.session.flush()
    audit.record(actor, "instrument.create", instrument, after=audit.snapshot(instrument, AUDITED))
    return instrument


def update_instrument(
    actor: User | None, instrument: Instrument, values: dict[str, Any]
) -> Instrument:
    """Change some attributes; unchanged ones keep their values.

    :raises ValidationError: on bad or incoherent values.
    :raises Forbidden: unless ``actor`` manages the instrument's facility (and the target
        facility, when moving it).
    """
    _, fields = validate_instrument(actor, values, current=instrument)
    before = audit.snapshot(instrument, AUDITED)
    _apply(instrument, values, fields)
    after = audit.snapshot(instrument, AUDITED)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        instrument.updated_at = now_utc()  # also when only the field links changed
    db.session.flush()
    if changed:
        audit.record(
            actor,
            "instrument.update",
            instrument,
            before={k: before[k] for k in sorted(changed)},
            after={k: after[k] for k in sorted(changed)},
        )
    return instrument


def search_instruments(
    query: str | None = None,
    field_id: int | None = None,
    platform_id: int | None = None,
    facility_id: int | None = None,
    category: str | None = None,
    status: str | None = None,
) -> sa.Select:
    """The catalog query with filters; the UI and the API page over it."""
    stmt = sa.select(Instrument).join(Instrument.facility)
    if query and query.strip():
        escaped = (
            query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        )
        like = f"%{escaped}%"
        columns = (
            Instrument.name,
            Instrument.asset_code,
            Instrument.category,
            Instrument.make,
            Instrument.model,
            Instrument.description,
        )
        stmt = stmt.where(sa.or_(*(sa.func.lower(c).like(like, escape="\\") for c in columns)))
    if field_id is not None:
        stmt = stmt.where(Instrument.fields.any(ResearchField.id == field_id))
    if platform_id is not None:
        stmt = stmt.where(Facility.platform_id == platform_id)
    if facility_id is not None:
        stmt = stmt.where(Instrument.facility_id == facility_id)
    if category:
        stmt = stmt.where(Instrument.category == category)
    if status:
        stmt = stmt.where(Instrument.status == status)
    return stmt.order_by(Instrument.name, Instrument.id)


def categories() -> list[str]:
    return list(
        db.session.scalars(sa.select(Instrument.category).distinct().order_by(Instrument.category))
    )
