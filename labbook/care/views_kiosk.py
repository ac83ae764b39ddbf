"""Kiosk pages (labbook/care/kiosk.py): the personal PIN, the managers' kiosk links, the
kiosk screen on the tablet with its three actions, and the web walk-in button.

The kiosk screen is ``@public``: its secret link is the authentication, and an unknown or
revoked link is a 404. Each action asks for email and PIN and acts for that user only; the
tablet's browser keeps a cookie session for the CSRF token, but nobody is logged in there.
"""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from labbook.auth.forms import EmptyForm
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.auth.security import public
from labbook.bookings.forms import chargeable_accounts
from labbook.bookings.views import attempt, load, status_for
from labbook.care import bp, kiosk, walkin
from labbook.care.models import KioskToken
from labbook.db import now_utc, run_with_retry
from labbook.errors import LabbookError
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.instruments.models import Instrument
from labbook.instruments.views import duration

ACTIONS = ("check-in", "check-out", "walk-in")
IDLE_SECONDS = 60  # the idle screen reloads itself to stay current
DONE_SECONDS = 8  # a confirmation shows this long, then the idle screen returns
DURATIONS = (30, 60, 90, 120, 180, 240, 360, 480)


class PinForm(BaseForm):
    pin = PasswordField(_l("New PIN"), validators=[InputRequired(), Length(max=8)],
                        description=_l("4 to 8 digits."))
    confirm = PasswordField(_l("Repeat the PIN"), validators=[InputRequired(), Length(max=8)])


class LinkForm(BaseForm):
    name = StringField(_l("Name (where the tablet is)"), validators=[Optional(), Length(max=80)])


def duration_choices(instrument: Instrument) -> list[SelectChoice]:
    low, high, slot = instrument.min_minutes, instrument.max_minutes, instrument.slot_minutes
    values = sorted({low, *(m for m in DURATIONS if low < m < high and not m % slot), high})
    return [SelectChoice(m, duration(m)) for m in values]


class KioskForm(BaseForm):
    email = EmailField(_l("Email"), validators=[InputRequired(), Length(max=254)])
    pin = PasswordField(_l("PIN"), validators=[InputRequired(), Length(max=8)])
    minutes = SelectField(_l("How long"), coerce=int, validators=[Optional()])


class WalkInForm(BaseForm):
    minutes = SelectField(_l("How long"), coerce=int, validators=[InputRequired()])
    account_id = SelectField(_l("Account to charge"), coerce=int, validators=[InputRequired()])
    purpose = StringField(_l("Purpose"), validators=[Optional(), Length(max=500)])


# -- personal PIN ---------------------------------------------------------------------------


@bp.route("/profile/kiosk-pin", methods=["GET", "POST"])
def kiosk_pin() -> Any:
    """Set or change the logged-in user's kiosk PIN."""
    form = PinForm()
    outcome = attempt(form, lambda: kiosk.set_pin(current_user, form.pin.data,
                                                  form.confirm.data))
    if isinstance(outcome, User):
        flash(_("Your kiosk PIN is set."), "success")
        return redirect(url_for("auth.profile"))
    return render_template("care/kiosk_pin.html", form=form), status_for(form, outcome)


# -- kiosk links (managers) -----------------------------------------------------------------


def _managed(instrument_id: int) -> Instrument:
    """:raises NotFound: unknown. :raises Forbidden: unless a manager of its facility."""
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    authorize(current_user.manages_facility(instrument.facility_id),
              _("Only the facility's managers may set up kiosks."))
    return instrument


def _links_page(instrument: Instrument, form: LinkForm, status: int = 200,
                secret: str | None = None) -> Any:
    base = current_app.config["LABBOOK_BASE_URL"].rstrip("/")
    url = base + url_for("care.kiosk_screen", token=secret) if secret else None
    return render_template("care/kiosk_links.html", instrument=instrument, form=form,
                           links=kiosk.live_links(instrument), new_url=url,
                           action_form=EmptyForm()), status


@bp.route("/instruments/<int:instrument_id>/kiosk-links", methods=["GET", "POST"])
def kiosk_links(instrument_id: int) -> Any:
    """List the instrument's kiosk links; POST creates one and shows its URL once."""
    instrument = _managed(instrument_id)
    form = LinkForm()
    outcome = attempt(form, lambda: kiosk.create_link(current_user, instrument, form.name.data))
    if isinstance(outcome, tuple):
        return _links_page(instrument, LinkForm(formdata=None), 201, secret=outcome[1])
    return _links_page(instrument, form, status_for(form, outcome))


@bp.route("/instruments/<int:instrument_id>/kiosk-links/<int:link_id>/revoke",
          methods=["POST"])
def revoke_kiosk_link(instrument_id: int, link_id: int) -> Any:
    instrument = _managed(instrument_id)
    link = load(KioskToken, link_id, _("No such kiosk link."))
    if link.instrument_id != instrument.id:
        abort(404)
    outcome = attempt(EmptyForm(), lambda: kiosk.revoke_link(current_user, link, now_utc()))
    if isinstance(outcome, KioskToken):
        flash(_("Kiosk link revoked: that tablet no longer works."), "success")
    return redirect(url_for("care.kiosk_links", instrument_id=instrument.id))


# -- the kiosk ------------------------------------------------------------------------------


def _link_or_404(token: str) -> KioskToken:
    link = kiosk.find_link(token)
    if link is None:
        abort(404)
    return link


@bp.get("/kiosk/<token>")
@public
def kiosk_screen(token: str) -> Any:
    """The idle screen: status, the session now, the next bookings today, three buttons."""
    link = _link_or_404(token)
    now = now_utc()
    body = render_template("care/kiosk.html", link=link, token=token, now=now,
                           instrument=link.instrument, screen=kiosk.screen(link.instrument, now),
                           who=kiosk.who)
    return body, 200, {"Refresh": str(IDLE_SECONDS)}


def _perform(action: str, link: KioskToken, form: KioskForm) -> Any:
    """Identify, then act; returns the booking or the refusal. Failed identifications are
    committed (their audit entry must stay); a refused action is rolled back."""
    try:
        user = kiosk.identify(link, form.email.data, form.pin.data)
    except LabbookError as error:
        db.session.commit()
        return error
    now = now_utc()

    def act() -> Any:
        instrument = link.instrument
        if action == "check-in":
            return kiosk.kiosk_check_in(user, instrument, now)
        if action == "check-out":
            return kiosk.kiosk_check_out(user, instrument, now)
        return walkin.start_walk_in(user, instrument, minutes=form.minutes.data, now=now)

    try:
        return run_with_retry(act)  # a deadlock victim or a late clash runs again
    except LabbookError as error:
        db.session.rollback()
        return error


@bp.route("/kiosk/<token>/<action>", methods=["GET", "POST"])
@public
def kiosk_action(token: str, action: str) -> Any:
    """Email + PIN, then check in, check out or walk in; a confirmation, then idle again."""
    link = _link_or_404(token)
    if action not in ACTIONS:
        abort(404)
    form = KioskForm()
    form.minutes.choices = duration_choices(link.instrument)
    outcome = _perform(action, link, form) if form.validate_on_submit() else None
    context = dict(link=link, token=token, action=action, instrument=link.instrument)
    if outcome is None or isinstance(outcome, LabbookError):
        form.pin.data = ""
        return render_template("care/kiosk_action.html", form=form, error=outcome,
                               **context), status_for(form, outcome)
    notice = kiosk.check_out_notice(outcome) if action == "check-out" else None
    idle = url_for("care.kiosk_screen", token=token)
    body = render_template("care/kiosk_done.html", booking=outcome, notice=notice, **context)
    return body, 200, {"Refresh": f"{DONE_SECONDS}; url={idle}"}


# -- walk-in from the web -------------------------------------------------------------------


@bp.route("/instruments/<int:instrument_id>/walk-in", methods=["GET", "POST"])
def walk_in(instrument_id: int) -> Any:
    """Start a walk-in session now (logged-in user standing at the instrument)."""
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    form = WalkInForm()
    form.minutes.choices = duration_choices(instrument)
    accounts = chargeable_accounts(current_user)
    form.account_id.choices = [SelectChoice(a.id, f"{a.code} · {a.name}") for a in accounts]
    outcome = attempt(form, lambda: walkin.start_walk_in(
        current_user, instrument, minutes=form.minutes.data, account_id=form.account_id.data,
        purpose=form.purpose.data, now=now_utc()))
    if outcome is not None and not isinstance(outcome, LabbookError):
        flash(_("Your walk-in session has started. Check out when you are done."), "success")
        return redirect(url_for("bookings.detail", booking_id=outcome.id))
    return render_template("care/kiosk_walkin.html", instrument=instrument, form=form,
                           error=outcome), status_for(form, outcome)
