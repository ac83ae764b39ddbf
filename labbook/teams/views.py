"""Team pages: the teams a user belongs to (all of them for finance and admins), a team's
members and accounts, and the team lead's tools: add or remove members, toggle the lead
flag, choose who may charge a restricted account.

CSRFProtect checks every POST before these views run.
"""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.auth.forms import EmptyForm
from labbook.auth.guards import authorize, get_or_404
from labbook.auth.models import User
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.teams import bp, services
from labbook.teams.forms import (
    AccountUsersForm,
    MemberForm,
    centre_today,
    status_of,
    submit,
    team_members,
)
from labbook.teams.models import Account, Membership, Team


def _visible_team(team_id: int) -> Team:
    """:raises NotFound: no such team. :raises Forbidden: when the user may not see it."""
    team = get_or_404(Team, team_id)
    authorize(current_user.can_see_team(team), _("You are not a member of this team."))
    return team


def _led_team(team_id: int) -> Team:
    """:raises NotFound: no such team. :raises Forbidden: unless a lead of it or admin."""
    team = get_or_404(Team, team_id)
    authorize(current_user.leads_team(team),
              _("Only the team's leads and administrators can change its members."))
    return team


def _balances(team: Team, is_lead: bool) -> dict[int, Any]:
    """Each account's committed charges and what is left of its limit, for the team's
    leads and finance only (members do not see the team's spending)."""
    # Imported here: billing imports the bookings package, which imports this module.
    from labbook.billing.accounts import balance

    if not (is_lead or current_user.is_finance):
        return {}
    return {account.id: balance(account) for account in team.accounts}


def _render_detail(team: Team, member_form: MemberForm | None = None,
                   users_form: AccountUsersForm | None = None,
                   action_form: EmptyForm | None = None):  # type: ignore[no-untyped-def]
    can_manage = current_user.leads_team(team)
    users_forms = {a.id: AccountUsersForm(a) for a in team.accounts
                   if can_manage and not a.all_members}
    if users_form is not None:
        users_forms[users_form.account.id] = users_form
    forms = [f for f in (member_form, users_form, action_form) if f is not None]
    return render_template(
        "teams/detail.html", team=team, members=team_members(team), can_manage=can_manage,
        balances=_balances(team, can_manage),
        member_form=member_form or MemberForm(formdata=None), users_forms=users_forms,
        action_form=action_form or EmptyForm(formdata=None), today=centre_today(),
    ), status_of(*forms)


@bp.route("/teams")
def mine():
    stmt = services.teams_visible_to(current_user).options(
        selectinload(Team.memberships).selectinload(Membership.user),
        selectinload(Team.accounts), selectinload(Team.customer_class),
    )
    return render_template("teams/mine.html", teams=db.session.scalars(stmt).all())


@bp.route("/teams/<int:team_id>")
def detail(team_id: int):
    return _render_detail(_visible_team(team_id))


@bp.route("/teams/<int:team_id>/members", methods=["POST"])
def add_member(team_id: int):
    """Add a member by email, or change an existing member's lead flag."""
    team = _led_team(team_id)
    form = MemberForm()
    done, _m = submit(
        form, lambda: services.add_member(current_user, team, form.user(), form.is_lead.data),
        _("Membership saved."),
    )
    if done:
        return redirect(url_for("teams.detail", team_id=team.id))
    return _render_detail(team, member_form=form)


@bp.route("/teams/<int:team_id>/members/<int:user_id>/remove", methods=["POST"])
def remove_member(team_id: int, user_id: int):
    team = _led_team(team_id)
    user = get_or_404(User, user_id)
    form = EmptyForm()
    done, _r = submit(form, lambda: services.remove_member(current_user, team, user),
                      _("%(name)s is no longer a member.", name=user.name))
    if not done:
        return _render_detail(team, action_form=form)
    if user.id == current_user.id and not current_user.can_see_team(team):
        return redirect(url_for("teams.mine"))
    return redirect(url_for("teams.detail", team_id=team.id))


@bp.route("/teams/<int:team_id>/accounts/<int:account_id>/users", methods=["POST"])
def account_users(team_id: int, account_id: int):
    """Choose the members who may charge an account restricted to named members."""
    team = _led_team(team_id)
    account = get_or_404(Account, account_id)
    if account.team_id != team.id:
        raise NotFound(_("Not found."))
    form = AccountUsersForm(account, submitted=True)
    done, _r = submit(
        form, lambda: services.set_account_users(current_user, account, form.selected_users()),
        _("Authorised members saved."),
    )
    if done:
        return redirect(url_for("teams.detail", team_id=team.id))
    return _render_detail(team, users_form=form)
