"""Administration: users, teams (members, accounts) and facilities (managers, opening
hours). Every view is for administrators only; the rules live in the services, each view
makes one service call and commits once (``submit``). CSRFProtect checks every POST before
these views run.
"""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.admin import bp
from labbook.admin import services as admin_services
from labbook.admin.forms import (
    WEEKDAYS,
    AccountForm,
    FacilityForm,
    HoursForm,
    TeamForm,
    UserCreateForm,
    UserEditForm,
    UserSearchForm,
)
from labbook.auth import services as auth_services
from labbook.auth.forms import EmptyForm
from labbook.auth.guards import get_or_404, require_role
from labbook.auth.models import Role, User
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.instruments import facilities as facility_services
from labbook.instruments.models import Facility
from labbook.teams import services as team_services
from labbook.teams.forms import (
    MemberForm,
    UserEmailForm,
    centre_today,
    status_of,
    submit,
    team_members,
)
from labbook.teams.models import Account, Membership, Team


def _page() -> int:
    return request.args.get("page", 1, type=int) or 1


# -- users -----------------------------------------------------------------------------
@bp.route("/users")
@require_role(Role.ADMIN)
def users():
    form = UserSearchForm(request.args)
    valid = form.validate()
    stmt = admin_services.search_users(form.q.data if valid else None,
                                       form.role.data if valid else None)
    page = db.paginate(stmt, page=_page(), per_page=current_app.config["LABBOOK_PAGE_SIZE"],
                       error_out=False)
    return render_template("admin/users.html", form=form, page=page)


@bp.route("/users/new", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def user_create():
    form = UserCreateForm()
    done, user = submit(form, lambda: auth_services.create_user(
        current_user, form.email.data, form.name.data, form.password.data,
        list(form.roles.data or []), form.locale.data), _("User created."))
    if done:
        return redirect(url_for("admin.user_edit", user_id=user.id))
    return render_template("admin/user_new.html", form=form), status_of(form)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def user_edit(user_id: int):
    user = get_or_404(User, user_id)
    form = UserEditForm(obj=user)
    done, _u = submit(form, lambda: admin_services.update_user(
        current_user, user, form.values(), form.new_password.data or None), _("User saved."))
    if done:
        return redirect(url_for("admin.user_edit", user_id=user.id))
    return render_template("admin/user_edit.html", form=form, user=user), status_of(form)


# -- teams -----------------------------------------------------------------------------
@bp.route("/teams")
@require_role(Role.ADMIN)
def teams():
    stmt = team_services.teams_visible_to(current_user).options(
        selectinload(Team.memberships).selectinload(Membership.user),
        selectinload(Team.accounts), selectinload(Team.customer_class))
    page = db.paginate(stmt, page=_page(), per_page=current_app.config["LABBOOK_PAGE_SIZE"],
                       error_out=False)
    return render_template("admin/teams.html", page=page)


@bp.route("/teams/new", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def team_create():
    form = TeamForm()
    done, team = submit(form, lambda: team_services.create_team(current_user, form.values()),
                        _("Team created with a default cost-centre account."))
    if done:
        return redirect(url_for("admin.team_edit", team_id=team.id))
    return render_template("admin/team_new.html", form=form), status_of(form)


def _render_team(team: Team, **forms):  # type: ignore[no-untyped-def]
    status = status_of(*forms.values())
    forms.setdefault("team_form", TeamForm(formdata=None, obj=team))
    forms.setdefault("member_form", MemberForm(formdata=None))
    forms.setdefault("action_form", EmptyForm(formdata=None))
    return render_template("admin/team_edit.html", team=team, members=team_members(team),
                           today=centre_today(), **forms), status


@bp.route("/teams/<int:team_id>", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def team_edit(team_id: int):
    team = get_or_404(Team, team_id)
    form = TeamForm(obj=team)
    done, _t = submit(form, lambda: team_services.update_team(current_user, team, form.values()),
                      _("Team saved."))
    if done:
        return redirect(url_for("admin.team_edit", team_id=team.id))
    return _render_team(team, team_form=form)


@bp.route("/teams/<int:team_id>/members", methods=["POST"])
@require_role(Role.ADMIN)
def team_add_member(team_id: int):
    """Add a member by email, or change an existing member's lead flag."""
    team = get_or_404(Team, team_id)
    form = MemberForm()
    done, _m = submit(form, lambda: team_services.add_member(
        current_user, team, form.user(), form.is_lead.data), _("Membership saved."))
    if done:
        return redirect(url_for("admin.team_edit", team_id=team.id) + "#members")
    return _render_team(team, member_form=form)


@bp.route("/teams/<int:team_id>/members/<int:user_id>/remove", methods=["POST"])
@require_role(Role.ADMIN)
def team_remove_member(team_id: int, user_id: int):
    team = get_or_404(Team, team_id)
    user = get_or_404(User, user_id)
    form = EmptyForm()
    done, _r = submit(form, lambda: team_services.remove_member(current_user, team, user),
                      _("%(name)s is no longer a member.", name=user.name))
    if done:
        return redirect(url_for("admin.team_edit", team_id=team.id) + "#members")
    return _render_team(team, action_form=form)


def _team_account(team_id: int, account_id: int | None) -> tuple[Team, Account | None]:
    """:raises NotFound: when the team, or the account within that team, does not exist."""
    team = get_or_404(Team, team_id)
    account = get_or_404(Account, account_id) if account_id is not None else None
    if account is not None and account.team_id != team.id:
        raise NotFound(_("Not found."))
    return team, account


@bp.route("/teams/<int:team_id>/accounts/new", methods=["GET", "POST"],
          defaults={"account_id": None})
@bp.route("/teams/<int:team_id>/accounts/<int:account_id>", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def account_edit(team_id: int, account_id: int | None):
    team, account = _team_account(team_id, account_id)
    form = AccountForm(obj=account)
    done, _a = submit(form, lambda: team_services.save_account(
        current_user, team, form.values(), account), _("Account saved."))
    if done:
        return redirect(url_for("admin.team_edit", team_id=team.id) + "#accounts")
    return render_template("admin/account_form.html", form=form, team=team,
                           account=account), status_of(form)


# -- facilities ------------------------------------------------------------------------
@bp.route("/facilities")
@require_role(Role.ADMIN)
def facilities():
    stmt = db.select(Facility).options(
        selectinload(Facility.platform), selectinload(Facility.managers),
        selectinload(Facility.opening_hours), selectinload(Facility.instruments),
    ).order_by(Facility.name)
    return render_template("admin/facilities.html", facilities=db.session.scalars(stmt).all())


@bp.route("/facilities/new", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def facility_create():
    form = FacilityForm()
    done, facility = submit(form, lambda: facility_services.create_facility(
        current_user, form.values()), _("Facility created."))
    if done:
        return redirect(url_for("admin.facility_edit", facility_id=facility.id))
    return render_template("admin/facility_new.html", form=form,
                           timezones=facility_services.known_timezones()), status_of(form)


def _render_facility(facility: Facility, **forms):  # type: ignore[no-untyped-def]
    status = status_of(*forms.values())
    hours = facility_services.hours_by_day(facility)
    forms.setdefault("facility_form", FacilityForm(formdata=None, obj=facility))
    forms.setdefault("manager_form", UserEmailForm(formdata=None))
    forms.setdefault("hours_form", HoursForm(formdata=None, data={
        f"day_{d}": spans for d, spans in hours.items()}))
    forms.setdefault("action_form", EmptyForm(formdata=None))
    return render_template("admin/facility_edit.html", facility=facility, weekdays=WEEKDAYS,
                           timezones=facility_services.known_timezones(), **forms), status


@bp.route("/facilities/<int:facility_id>", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def facility_edit(facility_id: int):
    facility = get_or_404(Facility, facility_id)
    form = FacilityForm(obj=facility)
    done, _f = submit(form, lambda: facility_services.update_facility(
        current_user, facility, form.values()), _("Facility saved."))
    if done:
        return redirect(url_for("admin.facility_edit", facility_id=facility.id))
    return _render_facility(facility, facility_form=form)


@bp.route("/facilities/<int:facility_id>/managers", methods=["POST"])
@require_role(Role.ADMIN)
def facility_add_manager(facility_id: int):
    facility = get_or_404(Facility, facility_id)
    form = UserEmailForm()
    done, _m = submit(form, lambda: facility_services.add_manager(
        current_user, facility, form.user()), _("Manager added."))
    if done:
        return redirect(url_for("admin.facility_edit", facility_id=facility.id) + "#managers")
    return _render_facility(facility, manager_form=form)


@bp.route("/facilities/<int:facility_id>/managers/<int:user_id>/remove", methods=["POST"])
@require_role(Role.ADMIN)
def facility_remove_manager(facility_id: int, user_id: int):
    facility = get_or_404(Facility, facility_id)
    user = get_or_404(User, user_id)
    form = EmptyForm()
    done, _m = submit(form, lambda: facility_services.remove_manager(
        current_user, facility, user), _("Manager removed."))
    if done:
        return redirect(url_for("admin.facility_edit", facility_id=facility.id) + "#managers")
    return _render_facility(facility, action_form=form)


@bp.route("/facilities/<int:facility_id>/hours", methods=["POST"])
@require_role(Role.ADMIN)
def facility_hours(facility_id: int):
    facility = get_or_404(Facility, facility_id)
    form = HoursForm()
    done, _h = submit(form, lambda: facility_services.set_opening_hours(
        current_user, facility, form.intervals()), _("Opening hours saved."))
    if done:
        return redirect(url_for("admin.facility_edit", facility_id=facility.id) + "#hours")
    return _render_facility(facility, hours_form=form)
