"""Forms of the team pages (also used by the admin team pages), and the small helper that
runs one service call for a submitted form."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

import sqlalchemy as sa
from flask import flash
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from labbook.auth.models import User
from labbook.auth.services import find_user
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.teams.models import Account, Team
from labbook.templating import zone_for


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes (works without JavaScript)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserEmailForm(BaseForm):
    """Name an existing user by email (adding a member or a facility manager)."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])

    def user(self) -> User:
        """The user the email names: the load step of the views that use this form.

        :raises ValidationError: (key ``email``) when no user has this address.
        """
        user = find_user(self.email.data or "")
        if user is None:
            raise ValidationError(_("No such user."),
                                  {"email": [_("No user has this email address.")]})
        return user


class MemberForm(UserEmailForm):
    """Add a member by email, or change an existing member's lead flag."""

    is_lead = BooleanField(_l("Team lead"))


class AccountUsersForm(BaseForm):
    """The members allowed to charge an account whose ``all_members`` flag is off."""

    users = MultiCheckboxField(_l("Authorised members"), coerce=int)

    def __init__(self, account: Account, submitted: bool = False) -> None:
        """``submitted``: read the request's form data; otherwise show the current choice."""
        initial: dict[str, Any] = {} if submitted else {
            "formdata": None, "users": [u.id for u in account.authorised_users]}
        super().__init__(prefix=f"account{account.id}", **initial)
        self.account = account
        members = sorted((m.user for m in account.team.memberships), key=lambda u: u.name.lower())
        self.users.choices = [SelectChoice(u.id, f"{u.name} <{u.email}>") for u in members]

    def selected_users(self) -> list[User]:
        wanted = set(self.users.data or [])
        if not wanted:
            return []
        stmt = sa.select(User).where(User.id.in_(wanted)).order_by(User.id)
        return list(db.session.scalars(stmt))


def centre_today() -> date:
    """Today's date in the centre's time zone (account validity is in local dates)."""
    return datetime.now(zone_for()).date()


def team_members(team: Team) -> list[Any]:
    """The team's memberships, leads first, then by name."""
    return sorted(team.memberships, key=lambda m: (not m.is_lead, m.user.name.lower()))


def submit(form: BaseForm, action: Callable[[], Any], message: str) -> tuple[bool, Any]:
    """Run one service call for a submitted form: when ``form`` validates, call ``action``,
    commit and flash ``message``. On a service ``ValidationError`` roll back (nothing is
    written) and attach its messages to the form for the re-rendered page (status 422).

    :returns: ``(True, action's result)`` on success, ``(False, None)`` otherwise.
    """
    if not form.validate_on_submit():
        return False, None
    try:
        result = action()
    except ValidationError as error:
        db.session.rollback()
        form.apply_errors(error.fields)
        if not error.fields:
            form.form_errors.append(error.message)
        return False, None
    db.session.commit()
    flash(message, "success")
    return True, result


def status_of(*forms: BaseForm) -> int:
    """422 when a submitted form carries errors, else 200."""
    return 422 if any(f.errors for f in forms) else 200
