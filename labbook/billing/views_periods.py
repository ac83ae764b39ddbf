"""A billing period's page (refresh, pre-close checklist, statements, exports, close) and
a team's statement (routes attach to ``labbook.billing.bp``).

Opening an open period's page refreshes its draft lines first, so what finance reads is
what a close would freeze. A close the checklist refuses re-renders the page with the
reason and changes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from labbook.auth.guards import authorize
from labbook.billing import bp
from labbook.billing.closing import checklist, close_period
from labbook.billing.forms import CloseForm
from labbook.billing.models import ChargeLine
from labbook.billing.periods import current_month, find_period, get_period, parse_month
from labbook.billing.statements import refresh_period, statements_for
from labbook.billing.views import led_team_ids, require_finance
from labbook.errors import Conflict, LabbookError, NotFound
from labbook.extensions import db
from labbook.teams.models import Team

EXPORT_FORMATS = ("csv", "xlsx", "summary", "journal", "pdf")


def _fresh_period(month: date) -> Any:
    """The period row, refreshed (and committed) when open: the page shows current drafts."""
    period = get_period(month)
    if period.closed_at is None:
        refresh_period(month)
    db.session.commit()
    return period


@bp.route("/billing/periods/<month>")
def period(month: str, form: CloseForm | None = None, error: LabbookError | None = None,
           status: int = 200) -> Any:
    """The checklist, the statements per team, export links and the close form."""
    require_finance()
    first = parse_month(month)
    row = _fresh_period(first)
    found = checklist(row) if row.closed_at is None else None
    return render_template(
        "billing/period.html", period=row, month=first, found=found,
        views=statements_for(row), form=form or CloseForm(formdata=None), error=error,
        ended=first < current_month(), formats=EXPORT_FORMATS,
    ), status


@bp.route("/billing/periods/<month>/close", methods=["POST"])
def close(month: str) -> Any:
    """Close the period (CSRF checked by the form); refusals re-render the page."""
    require_finance()
    first = parse_month(month)
    form = CloseForm()
    if not form.validate_on_submit():
        return period(month, form, status=400)
    try:
        close_period(current_user, first, force=bool(form.force.data))
    except Conflict as error:
        db.session.rollback()
        return period(month, form, error, 409)
    db.session.commit()
    flash(_("%(month)s is closed; its statements are numbered.", month=month), "success")
    return redirect(url_for("billing.period", month=month))


def _may_read_statement(team_id: int) -> bool:
    """Finance reads every statement, a team lead those of the teams they lead."""
    return current_user.is_finance or team_id in led_team_ids()


@bp.route("/billing/periods/<month>/teams/<int:team_id>")
def statement(month: str, team_id: int) -> Any:
    """One team's statement: header, lines by account with subtotals and explanations."""
    first = parse_month(month)
    authorize(_may_read_statement(team_id), _("Only finance and the team's leads see it."))
    team = db.session.get(Team, team_id)
    row = find_period(first)
    if team is None or row is None:
        raise NotFound(_("No statement for this team and month."))
    views = statements_for(row, {team_id})
    if not views:
        raise NotFound(_("No statement for this team and month."))
    view = views[0]
    by_account: dict[str, list[ChargeLine]] = defaultdict(list)
    for line in view.lines:
        by_account[line.account.code].append(line)
    return render_template("billing/statement.html", view=view, period=row, team=team,
                           by_account=dict(sorted(by_account.items())))
