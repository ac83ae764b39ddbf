"""Rate cards and customer classes (routes attach to ``labbook.billing.bp``): the current
rate per item, class and charge type with its history, the new-rate form (a draft unless
published now), the preview of a month under the drafts, publish and delete-draft, and
the customer classes. Finance and admins only; a refusal re-renders the form.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from labbook.billing import bp
from labbook.billing.classes import all_classes, create_class, update_class
from labbook.billing.forms import ClassForm, RateForm
from labbook.billing.lock import PeriodClosed
from labbook.billing.models import INSTRUMENT_CHARGE_TYPES, Consumable, CustomerClass, Rate
from labbook.billing.periods import current_month, next_month, parse_month, previous_month
from labbook.billing.rates import create_rate, delete_draft, preview, publish_rate, rate_history
from labbook.billing.views import require_finance
from labbook.bookings.views import load
from labbook.errors import LabbookError, NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument


def _current_rates() -> dict[tuple[str, int], dict[tuple[str, str], Rate]]:
    """The latest published rate effective today per (target, class, charge type)."""
    today = date.today()
    found: dict[tuple[str, int], dict[tuple[str, str], Rate]] = {}
    rows = db.session.scalars(sa.select(Rate).where(
        Rate.published_at.is_not(None), Rate.effective_from <= today,
    ).order_by(Rate.effective_from, Rate.id))
    for rate in rows:
        key = ("i", rate.instrument_id) if rate.instrument_id else ("c", rate.consumable_id)
        found.setdefault(key, {})[(rate.customer_class_code, rate.charge_type)] = rate
    return found  # type: ignore[return-value]


@bp.route("/billing/rates")
def rates() -> str:
    """Current published rates per instrument and consumable, and the drafts."""
    require_finance()
    instruments = db.session.scalars(sa.select(Instrument).order_by(Instrument.name)).all()
    consumables = db.session.scalars(sa.select(Consumable).order_by(Consumable.name)).all()
    drafts = db.session.scalars(sa.select(Rate).where(Rate.published_at.is_(None))
                                .order_by(Rate.effective_from, Rate.id)).all()
    return render_template("billing/rates.html", instruments=instruments,
                           consumables=consumables, current=_current_rates(), drafts=drafts,
                           preview_month=f"{previous_month(current_month()):%Y-%m}",
                           preview_day=drafts[0].effective_from.isoformat() if drafts else None)


@bp.route("/billing/rates/instrument/<int:instrument_id>")
def instrument_rates(instrument_id: int) -> str:
    """Every rate row of an instrument, newest first per class and type.

    :raises NotFound: unknown instrument. :raises Forbidden: unless finance."""
    require_finance()
    target = load(Instrument, instrument_id, _("No such instrument."))
    return render_template("billing/rate_history.html", target=target,
                           history=rate_history(instrument_id=target.id))


@bp.route("/billing/rates/consumable/<int:consumable_id>")
def consumable_rates(consumable_id: int) -> str:
    """Every rate row of a consumable.

    :raises NotFound: unknown consumable. :raises Forbidden: unless finance."""
    require_finance()
    target = load(Consumable, consumable_id, _("No such consumable."))
    return render_template("billing/rate_history.html", target=target,
                           history=rate_history(consumable_id=target.id))


def _rate_choices(form: RateForm) -> None:
    """Fill the select lists (choices are validated against them)."""
    instruments = db.session.scalars(sa.select(Instrument).order_by(Instrument.name))
    consumables = db.session.scalars(sa.select(Consumable).order_by(Consumable.name))
    form.target.choices = ([SelectChoice(f"i:{i.id}", i.name) for i in instruments]
                           + [SelectChoice(f"c:{c.id}", f"{c.name} ({c.unit})")
                              for c in consumables])
    form.customer_class.choices = [SelectChoice(c.code, c.name) for c in all_classes()]
    form.charge_type.choices = [SelectChoice(t, t.replace("_", " "))
                                for t in (*INSTRUMENT_CHARGE_TYPES, "unit")]


@bp.route("/billing/rates/new", methods=["GET", "POST"])
def new_rate() -> Any:
    """Add a rate: a draft by default; ``publish`` publishes it at once."""
    require_finance()
    form = RateForm()
    _rate_choices(form)
    if not form.is_submitted():
        form.target.data = request.args.get("target")
        return render_template("billing/rate_form.html", form=form)
    if not form.validate():
        return render_template("billing/rate_form.html", form=form), 422
    try:
        rate = create_rate(current_user, form.values(), publish=bool(form.publish.data))
    except (ValidationError, PeriodClosed) as error:
        db.session.rollback()
        form.apply_errors(getattr(error, "fields", None) or {"effective_from": [error.message]})
        return render_template("billing/rate_form.html", form=form), error.status
    db.session.commit()
    flash(_("Rate saved (%(state)s).", state=_("draft") if rate.is_draft else _("published")),
          "success")
    return redirect(url_for("billing.rates"))


@bp.route("/billing/rates/<int:rate_id>/publish", methods=["POST"])
def publish(rate_id: int) -> Any:
    """Publish a draft; one that would take effect in a closed period is refused."""
    return _rate_action(rate_id, publish_rate, _("Rate published."))


@bp.route("/billing/rates/<int:rate_id>/delete", methods=["POST"])
def delete(rate_id: int) -> Any:
    """Delete a draft; a published rate is history and stays."""
    return _rate_action(rate_id, delete_draft, _("Draft deleted."))


def _rate_action(rate_id: int, action: Any, done: str) -> Any:
    """Publish or delete a draft (CSRFProtect checks the token); a refusal is flashed."""
    require_finance()
    rate = load(Rate, rate_id, _("No such rate."))
    try:
        action(current_user, rate)
    except LabbookError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("billing.rates"))
    db.session.commit()
    flash(done, "success")
    return redirect(url_for("billing.rates"))


@bp.route("/billing/rates/preview")
def rate_preview() -> str:
    """A month's charges now against the same sessions at the rates (drafts included) in
    effect on the day after it."""
    require_finance()
    raw = request.args.get("month") or f"{current_month():%Y-%m}"
    try:
        month = parse_month(raw)
    except NotFound:
        month = current_month()
    try:
        day = date.fromisoformat(request.args.get("day") or "")
    except ValueError:
        day = next_month(month)
    return render_template("billing/rate_preview.html", month=month, day=day,
                           diffs=preview(month, day))


# -- customer classes ---------------------------------------------------------------------------


@bp.route("/billing/classes", methods=["GET", "POST"])
def classes() -> Any:
    """List and add customer classes."""
    require_finance()
    form = ClassForm()
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                create_class(current_user, {k: form[k].data for k in
                                            ("code", "name", "name_zh", "tax_rate")})
            except ValidationError as error:
                db.session.rollback()
                form.apply_errors(error.fields)
            else:
                db.session.commit()
                flash(_("Customer class added."), "success")
                return redirect(url_for("billing.classes"))
    return render_template("billing/classes.html", form=form, classes=all_classes()), status


@bp.route("/billing/classes/<code>", methods=["GET", "POST"])
def edit_class(code: str) -> Any:
    """Rename a class or change its tax rate (reprices open periods' drafts only)."""
    require_finance()
    klass = db.session.get(CustomerClass, code)
    if klass is None:
        raise NotFound(_("No such customer class."))
    form = ClassForm(obj=klass if request.method == "GET" else None)
    if request.method == "GET":
        form.tax_rate.data = str(klass.tax_rate)
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                update_class(current_user, klass, {k: form[k].data for k in
                                                   ("name", "name_zh", "tax_rate")})
            except ValidationError as error:
                db.session.rollback()
                form.apply_errors(error.fields)
            else:
                db.session.commit()
                flash(_("Customer class saved."), "success")
                return redirect(url_for("billing.classes"))
    return render_template("billing/class_form.html", form=form, klass=klass), status


from labbook.billing import views_catalog  # noqa: E402,F401  (consumables, items, policy)
