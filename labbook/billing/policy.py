"""An instrument's billing policy (SPEC section 6), validated the same way for the form and
the API (``PATCH /api/v1/instruments/{id}``). Fields as the API names them."""
from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing.models import BILLING_BASES, BillingPolicy
from labbook.billing.money import parse_money
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

POLICY_API_FIELDS = ("billing_basis", "billing_increment_minutes", "minimum_charge_minutes",
                     "late_cancel_fraction", "no_show_fraction", "session_cap")
HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def policy_of(instrument: Instrument) -> BillingPolicy:
    """The stored policy, or an unsaved one with the defaults."""
    found = db.session.get(BillingPolicy, instrument.id)
    return found or BillingPolicy(instrument_id=instrument.id, basis="booked",
                                  increment_minutes=15, minimum_minutes=0,
                                  late_cancel_fraction=Decimal("0.5"),
                                  no_show_fraction=Decimal("1"))


def policy_to_dict(policy: BillingPolicy) -> dict[str, Any]:
    cap = None
    if policy.cap_max_minutes is not None:
        cap = {"from": f"{policy.cap_from:%H:%M}", "to": f"{policy.cap_to:%H:%M}",
               "max_minutes": policy.cap_max_minutes}
    return {
        "billing_basis": policy.basis,
        "billing_increment_minutes": policy.increment_minutes,
        "minimum_charge_minutes": policy.minimum_minutes,
        "late_cancel_fraction": str(Decimal(policy.late_cancel_fraction).normalize()),
        "no_show_fraction": str(Decimal(policy.no_show_fraction).normalize()),
        "session_cap": cap,
    }


def _fraction(raw: Any) -> Decimal:
    value = parse_money(raw, places=4)
    if value > 1:
        raise ValueError(_("A fraction between 0 and 1, e.g. \"0.5\"."))
    return value


def _cap(raw: Any) -> tuple[time | None, time | None, int | None]:
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict) or set(raw) != {"from", "to", "max_minutes"}:
        raise ValueError(_("Give {\"from\": \"HH:MM\", \"to\": \"HH:MM\", \"max_minutes\": N} "
                           "or null."))
    bounds = []
    for key in ("from", "to"):
        match = HHMM.match(raw[key]) if isinstance(raw[key], str) else None
        if not match:
            raise ValueError(_("%(key)s must be a time HH:MM.", key=key))
        bounds.append(time(int(match.group(1)), int(match.group(2))))
    limit = raw["max_minutes"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1440:
        raise ValueError(_("max_minutes must be a whole number of minutes from 1 to 1440."))
    if bounds[0] == bounds[1]:
        raise ValueError(_("The window needs different from and to times."))
    return bounds[0], bounds[1], limit


def _basis(raw: Any) -> str:
    if raw not in BILLING_BASES:
        raise ValueError(_("Choose one of: %(v)s.", v=", ".join(BILLING_BASES)))
    return raw


def _bounded(low: int, high: int) -> Any:
    def check(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise ValueError(_("A whole number from %(low)d to %(high)d.", low=low, high=high))
        return raw
    return check


# API field -> (model columns, parser returning one value per column)
PARSERS: dict[str, tuple[tuple[str, ...], Any]] = {
    "billing_basis": (("basis",), lambda raw: (_basis(raw),)),
    "billing_increment_minutes": (("increment_minutes",), lambda raw: (_bounded(1, 1440)(raw),)),
    "minimum_charge_minutes": (("minimum_minutes",), lambda raw: (_bounded(0, 10080)(raw),)),
    "late_cancel_fraction": (("late_cancel_fraction",), lambda raw: (_fraction(raw),)),
    "no_show_fraction": (("no_show_fraction",), lambda raw: (_fraction(raw),)),
    "session_cap": (("cap_from", "cap_to", "cap_max_minutes"), _cap),
}


def clean_policy(values: dict[str, Any]) -> dict[str, Any]:
    """The model columns for the API fields present in ``values``.

    :raises ValidationError: naming each bad field.
    """
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name, (columns, parse) in PARSERS.items():
        if name not in values:
            continue
        try:
            clean.update(zip(columns, parse(values[name])))
        except ValueError as error:
            errors[name] = [str(error)]
    if errors:
        raise ValidationError(_("The billing policy was not saved."), errors)
    return clean


def update_policy(actor: User, instrument: Instrument, values: dict[str, Any]) -> BillingPolicy:
    """Apply the API fields in ``values``. Changes reprice the open periods' drafts only:
    closed periods keep their frozen lines.

    :raises ValidationError: see ``clean_policy``.
    """
    clean = clean_policy(values)
    policy = policy_of(instrument)
    before = policy_to_dict(policy)
    for column, value in clean.items():
        setattr(policy, column, value)
    if policy not in db.session:
        db.session.add(policy)
    db.session.flush()
    after = policy_to_dict(policy)
    if after != before:
        audit.record(actor, "instrument.billing_policy", instrument, before=before, after=after)
    return policy
