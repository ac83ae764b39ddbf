"""Adjustments (SPEC section 6): a credit (negative) or debit correcting one charge line,
requested with a reason, approved by finance or a manager of the line's facility (never
by the person who asked). Approved, it becomes a charge line: in the corrected line's own
period while that is open, else in the first open period after it, linked to the
original either way."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from labbook import audit
from labbook.auth.models import User
from labbook.billing.lines import adjustment_line
from labbook.billing.lock import PeriodClosed
from labbook.billing.models import Adjustment, ChargeLine, Consumable
from labbook.billing.money import parse_money
from labbook.billing.periods import first_open_month, get_period, next_month
from labbook.billing.statements import digest_of
from labbook.db import now_utc
from labbook.errors import Conflict, Forbidden, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

STATE_LABELS = {"pending": _l("Awaiting decision"), "approved": _l("Approved"),
                "rejected": _l("Rejected")}


def state_label(state: str) -> str:
    """An adjustment's state in the reader's language."""
    return str(STATE_LABELS.get(state, state))


def _facility_of(line: ChargeLine) -> int | None:
    if line.instrument_id is not None:
        return db.session.scalar(
            sa.select(Instrument.facility_id).where(Instrument.id == line.instrument_id))
    if line.consumable_id is not None:
        return db.session.scalar(
            sa.select(Consumable.facility_id).where(Consumable.id == line.consumable_id))
    return None


def may_decide(user: User, line: ChargeLine) -> bool:
    return user.is_finance or user.manages_facility(_facility_of(line))


def may_request(user: User, line: ChargeLine) -> bool:
    return may_decide(user, line) or user.leads_team(line.team_id)


def _clean(amount: object, reason: object) -> tuple[Decimal, str]:
    fields: dict[str, list[str]] = {}
    value = Decimal(0)
    try:
        value = parse_money(amount, allow_negative=True)
        if value == 0:
            fields["amount"] = [_("An adjustment of 0.00 changes nothing.")]
    except ValueError as error:
        fields["amount"] = [str(error)]
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        fields["reason"] = [_("Say why the charge is corrected.")]
    elif len(text) > 500:
        fields["reason"] = [_("At most %(n)d characters.", n=500)]
    if fields:
        raise ValidationError(_("The adjustment was not saved."), fields)
    return value, text


def request_adjustment(actor: User, line: ChargeLine, amount: object, reason: object,
                       now: datetime | None = None) -> Adjustment:
    """:raises Forbidden: not finance, a manager of the line's facility or a lead of its
    team. :raises ValidationError: bad amount or reason, an adjustment line, or a credit
    larger than what is left of the charge."""
    if not may_request(actor, line):
        raise Forbidden(_("You may not adjust this charge."))
    value, text = _clean(amount, reason)
    if line.kind == "adjustment":
        raise ValidationError(_("Adjust the original charge, not an adjustment."),
                              {"line_id": [_("This line is an adjustment.")]})
    committed = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Adjustment.amount), 0))
                                  .where(Adjustment.line_id == line.id,
                                         Adjustment.state != "rejected"))
    if line.amount + Decimal(committed) + value < 0:
        message = _("A credit may not exceed what is left of the charge (%(left)s).",
                    left=str(line.amount + Decimal(committed)))
        raise ValidationError(message, {"amount": [message]})
    adjustment = Adjustment(line_id=line.id, amount=value, reason=text,
                            requested_by_id=actor.id, requested_at=now or now_utc())
    db.session.add(adjustment)
    db.session.flush()
    audit.record(actor, "adjustment.request", adjustment,
                 after={"line_id": line.id, "amount": value, "reason": text})
    return adjustment


def _decide(actor: User, adjustment: Adjustment) -> None:
    if not may_decide(actor, adjustment.line):
        raise Forbidden(_("Only finance or a manager of the facility may decide adjustments."))
    if adjustment.state != "pending":
        raise Conflict(_("This adjustment is already decided: “%(state)s”.",
                         state=state_label(adjustment.state)), reason="decided")
    if adjustment.requested_by_id == actor.id and not actor.is_admin:
        raise Forbidden(_("Someone other than the requester must decide an adjustment."))


def approve_adjustment(actor: User, adjustment: Adjustment,
                       now: datetime | None = None) -> Adjustment:
    """Approve and book it as a line of its landing period.

    :raises Forbidden, Conflict: see ``_decide``.
    """
    _decide(actor, adjustment)
    now = now or now_utc()
    original = adjustment.line
    month = original.period.month
    if original.period.closed_at is not None:
        month = first_open_month(next_month(month))
    period = get_period(month, lock=True)
    if period.closed_at is not None:  # closed meanwhile
        raise PeriodClosed(month)
    adjustment.state = "approved"
    adjustment.decided_by_id = actor.id
    adjustment.decided_at = now
    adjustment.period_id = period.id
    db.session.flush()
    spec = {**adjustment_line(adjustment, original, month), "period_id": period.id}
    db.session.add(ChargeLine(**spec, digest=digest_of(spec)))
    db.session.flush()
    audit.record(actor, "adjustment.approve", adjustment,
                 after={"period": f"{month:%Y-%m}", "amount": adjustment.amount})
    return adjustment


def reject_adjustment(actor: User, adjustment: Adjustment, note: object,
                      now: datetime | None = None) -> Adjustment:
    """:raises ValidationError: without a note. :raises Forbidden, Conflict: as approve."""
    _decide(actor, adjustment)
    text = note.strip() if isinstance(note, str) else ""
    if not text or len(text) > 500:
        message = _("Say why the adjustment is rejected (at most 500 characters).")
        raise ValidationError(message, {"note": [message]})
    adjustment.state = "rejected"
    adjustment.decided_by_id = actor.id
    adjustment.decided_at = now or now_utc()
    adjustment.decision_note = text
    db.session.flush()
    audit.record(actor, "adjustment.reject", adjustment, after={"note": text})
    return adjustment
