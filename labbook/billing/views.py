"""Finance pages (SPEC section 6; routes attach to ``labbook.billing.bp``): the periods
list, team leads' statements list, a team's statement, and the adjustment queue.

Finance (and admins) read every statement; a team lead reads the statements of the teams
they lead and may request adjustments on them. Money is shown with the currency's
decimals and code; times on the centre's wall clock (``LABBOOK_TIMEZONE``).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from labbook.auth.guards import authorize
from labbook.billing import bp
from labbook.billing.adjustments import (
    approve_adjustment, may_decide, may_request, reject_adjustment, request_adjustment,
)
from labbook.billing.closing import period_totals
from labbook.billing.forms import AdjustmentForm, DecisionForm
from labbook.billing.models import (
    Adjustment, BillingPeriod, ChargeLine, CustomerClass, Statement,
)
from labbook.billing.money import currency, fmt
from labbook.billing.periods import current_month, listed_periods, previous_month
from labbook.bookings.views import load
from labbook.errors import LabbookError, ValidationError
from labbook.extensions import db
from labbook.teams.models import Team
from labbook.templating import localtime


@bp.app_template_global("billing_money")
def billing_money(amount: Decimal | None, code: str | None = None) -> str:
    """``"1,234.50 CNY"``: the currency's decimals, half-up, and its code."""
    if amount is None:
        return "—"
    code = code or currency()
    text = fmt(Decimal(amount), code) or ""
    whole, _sep, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-')):,}"
    return f"{sign}{grouped}{'.' + cents if cents else ''} {code}"


@bp.app_template_global("adjustment_state")
def adjustment_state(state: str) -> str:
    """An adjustment's state in the reader's language."""
    from labbook.billing.adjustments import state_label

    return state_label(state)


@bp.app_template_global("billing_instant")
def billing_instant(iso: str | None) -> str:
    """An ISO instant stored in a line's explanation, on the centre's wall clock."""
    if not iso:
        return "—"
    try:
        return localtime(datetime.fromisoformat(iso))
    except ValueError:
        return iso


@bp.app_template_global("billing_class")
def billing_class(code: str | None) -> str:
    """A customer class's name in the viewer's language (its code if unknown)."""
    klass = db.session.get(CustomerClass, code) if code else None
    return klass.display_name(str(get_locale() or "en")) if klass else (code or "—")


def require_finance() -> None:
    """:raises Forbidden: unless finance or an admin."""
    authorize(current_user.is_finance, _("Only finance may see this page."))


def led_team_ids() -> set[int]:
    """The teams the current user leads (their statements are theirs to read); the same
    rule as ``User.leads_team``: the team_lead role and a lead membership."""
    if not current_user.has_role("team_lead"):
        return set()
    return {m.team_id for m in current_user.memberships if m.is_lead}


# -- periods and statements lists ---------------------------------------------------------------


@bp.route("/billing/")
def index() -> str:
    """Months with their state and totals; the current and previous month always appear."""
    require_finance()
    periods = {p.month: p for p in listed_periods()}
    this = current_month()
    months = sorted(set(periods) | {this, previous_month(this)}, reverse=True)
    rows = [{"month": month, "period": periods.get(month),
             "totals": _stored_totals(periods.get(month))} for month in months]
    return render_template("billing/index.html", rows=rows, current=this)


def _stored_totals(period: BillingPeriod | None) -> dict[str, Decimal] | None:
    """Totals of a closed period from its statements; of an open one from its lines as last
    refreshed (the period page refreshes)."""
    if period is None:
        return None
    if period.closed_at is not None:
        row = db.session.execute(sa.select(
            sa.func.coalesce(sa.func.sum(Statement.subtotal), 0),
            sa.func.coalesce(sa.func.sum(Statement.tax), 0),
            sa.func.coalesce(sa.func.sum(Statement.total), 0),
        ).where(Statement.period_id == period.id)).one()
        return {"subtotal": Decimal(row[0]), "tax": Decimal(row[1]), "total": Decimal(row[2])}
    return period_totals(period)


@bp.route("/billing/statements")
def statements() -> str:
    """A team lead's statements: each period with lines of their teams x those teams."""
    teams = led_team_ids()
    authorize(bool(teams) or current_user.is_finance,
              _("Only team leads and finance see statements."))
    if current_user.is_finance and not teams:
        return redirect(url_for("billing.index"))  # type: ignore[return-value]
    pairs = (sa.select(ChargeLine.period_id, ChargeLine.team_id)
             .where(ChargeLine.team_id.in_(teams)).distinct().subquery())
    rows = db.session.execute(
        sa.select(BillingPeriod, Team).join(pairs, pairs.c.period_id == BillingPeriod.id)
        .join(Team, Team.id == pairs.c.team_id)
        .order_by(BillingPeriod.month.desc(), Team.name)).all()
    return render_template("billing/statements.html", rows=rows,
                           led=db.session.scalars(sa.select(Team).where(Team.id.in_(teams))))


# -- adjustments --------------------------------------------------------------------------------


def _decidable_query() -> sa.Select:
    """Adjustments the current user may decide (finance: all; managers: their facilities)."""
    stmt = sa.select(Adjustment).join(Adjustment.line).order_by(
        sa.case((Adjustment.state == "pending", 0), else_=1), Adjustment.requested_at.desc(),
        Adjustment.id.desc())
    return stmt


@bp.route("/billing/adjustments")
def adjustments(form: DecisionForm | None = None, failed_id: int | None = None,
                error: LabbookError | None = None, status: int = 200) -> Any:
    """The queue: pending first, then decided (the latest 200)."""
    authorize(current_user.is_finance or current_user.manages_any_facility(),
              _("Only finance and facility managers decide adjustments."))
    rows = [a for a in db.session.scalars(_decidable_query().limit(500))
            if may_decide(current_user, a.line)][:200]
    return render_template("billing/adjustments.html", rows=rows, form=form,
                           failed_id=failed_id, error=error), status


def _load_adjustment(adjustment_id: int) -> Adjustment:
    """:raises NotFound: unknown. :raises Forbidden: unless the user may decide it."""
    adjustment = load(Adjustment, adjustment_id, _("No such adjustment."))
    authorize(may_decide(current_user, adjustment.line),
              _("Only finance or a manager of the facility may decide adjustments."))
    return adjustment


@bp.route("/billing/adjustments/<int:adjustment_id>/approve", methods=["POST"])
def approve(adjustment_id: int) -> Any:
    """Approve: booked in the line's open period or the next open one; refusals (decided
    already, own request, closed meanwhile) re-render the queue with the reason."""
    adjustment = _load_adjustment(adjustment_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        return adjustments(form, adjustment.id, status=422)
    try:
        approve_adjustment(current_user, adjustment)
    except LabbookError as error:
        db.session.rollback()
        return adjustments(form, adjustment_id, error, error.status)
    db.session.commit()
    flash(_("Adjustment approved: it is booked in %(month)s.",
            month=adjustment.period.label if adjustment.period else ""), "success")
    return redirect(url_for("billing.adjustments"))


@bp.route("/billing/adjustments/<int:adjustment_id>/reject", methods=["POST"])
def reject(adjustment_id: int) -> Any:
    """Reject with a note; without one the queue re-renders with the field's message."""
    adjustment = _load_adjustment(adjustment_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        return adjustments(form, adjustment.id, status=422)
    try:
        reject_adjustment(current_user, adjustment, form.note.data)
    except ValidationError as error:
        db.session.rollback()
        form.apply_errors(error.fields)
        return adjustments(form, adjustment_id, error, 422)
    except LabbookError as error:
        db.session.rollback()
        return adjustments(form, adjustment_id, error, error.status)
    db.session.commit()
    flash(_("Adjustment rejected."), "success")
    return redirect(url_for("billing.adjustments"))


@bp.route("/billing/lines/<int:line_id>/adjust", methods=["GET", "POST"])
def adjust(line_id: int) -> Any:
    """Request an adjustment of a line (finance, the facility's managers, the team's leads)."""
    line = load(ChargeLine, line_id, _("No such charge line."))
    authorize(may_request(current_user, line), _("You may not adjust this charge."))
    form = AdjustmentForm()
    status = 200
    if form.validate_on_submit():
        try:
            request_adjustment(current_user, line, form.amount.data, form.reason.data)
        except ValidationError as error:
            db.session.rollback()
            form.apply_errors(error.fields)
            status = 422
        else:
            db.session.commit()
            flash(_("Adjustment requested; finance or the facility will decide."), "success")
            return redirect(url_for("billing.statement", month=line.period.label,
                                    team_id=line.team_id))
    elif form.is_submitted():
        status = 422
    return render_template("billing/adjust.html", line=line, form=form), status
