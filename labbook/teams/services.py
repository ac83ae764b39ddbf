"""Teams, memberships and accounts: the rules shared by the admin pages, the team lead's
page, the API and the CLI. Services flush and audit; the caller commits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import Role, User, UserRole
from labbook.billing.models import CustomerClass
from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db
from labbook.teams.models import ACCOUNT_KINDS, Account, Membership, Team

TEAM_FIELDS = ("name", "customer_class_code", "invoice_title", "tax_id")
ACCOUNT_FIELDS = (
    "code",
    "name",
    "kind",
    "valid_from",
    "valid_until",
    "spending_limit",
    "active",
    "is_default",
    "all_members",
)


def _check_team_values(values: dict[str, Any], current: Team | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    name = values.get("name", current.name if current else None)
    if not isinstance(name, str) or not name.strip():
        errors["name"] = [_("This field is required.")]
    elif len(name) > 120:
        errors["name"] = [_("At most %(n)d characters.", n=120)]
    else:
        clash = db.session.scalar(sa.select(Team.id).where(Team.name == name.strip()))
        if clash is not None and (current is None or clash != current.id):
            errors["name"] = [_("A team with this name already exists.")]
    if "customer_class_code" in values and (
        not isinstance(values["customer_class_code"], str)
        or db.session.get(CustomerClass, values["customer_class_code"]) is None
    ):
        errors["customer_class_code"] = [_("Unknown customer class.")]
    for key, limit in (("invoice_title", 200), ("tax_id", 64)):
        value = values.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors[key] = [_("At most %(n)d characters.", n=limit)]
    return errors


def create_team(
    actor: User | None, values: dict[str, Any], with_default_account: bool = True
) -> Team:
    """Create a team, by default with a default cost-centre account valid from today.

    :raises ValidationError: on a missing or duplicate name or unknown customer class.
    """
    errors = _check_team_values(values, None)
    if errors:
        raise ValidationError(_("The team could not be saved."), errors)
    team = Team(
        name=values["name"].strip(),
        customer_class_code=values.get("customer_class_code") or "internal",
        invoice_title=values.get("invoice_title") or None,
        tax_id=values.get("tax_id") or None,
    )
    db.session.add(team)
    db.session.flush()
    if with_default_account:
        db.session.add(
            Account(
                team=team,
                code=f"T{team.id:05d}-CC",
                name=_("%(team)s cost centre", team=team.name),
                kind="cost_centre",
                valid_from=date.today(),
                is_default=True,
            )
        )
        db.session.flush()
    audit.record(actor, "team.create", team, after=audit.snapshot(team, TEAM_FIELDS))
    return team


def update_team(actor: User, team: Team, values: dict[str, Any]) -> Team:
    """:raises ValidationError: on bad values. :raises Forbidden: unless admin or finance."""
    if not actor.is_finance:
        raise Forbidden(_("Only administrators and finance staff can change a team."))
    unknown = set(values) - set(TEAM_FIELDS)
    errors = _check_team_values(values, team)
    for key in unknown:
        errors[key] = [_("Unknown field.")]
    if errors:
        raise ValidationError(_("The team could not be saved."), errors)
    before = audit.snapshot(team, TEAM_FIELDS)
    for key, value in values.items():
        setattr(team, key, value.strip() if isinstance(value, str) else value)
    audit.record(actor, "team.update", team, before=before, after=audit.snapshot(team, TEAM_FIELDS))
    return team


def find_team(name: str) -> Team | None:
    return db.session.scalar(sa.select(Team).where(Team.name == name.strip()))


def can_manage_members(actor: User, team: Team) -> bool:
    return actor.is_admin or actor.leads_team(team)


def add_member(actor: User | None, team: Team, user: User, is_lead: bool = False) -> Membership:
    """Add ``user`` to ``team`` (or update their lead flag). A lead also gets the team_lead
    role, which is what the lead's scope needs.

    :raises Forbidden: unless ``actor`` is an admin or a lead of the team (``None``: the CLI).
    """
    if actor is not None and not can_manage_members(actor, team):
        raise Forbidden(_("Only the team's leads and administrators can change its members."))
    membership = db.session.get(Membership, (team.id, user.id))
    if membership is None:
        membership = Membership(team=team, user=user, is_lead=is_lead)
        db.session.add(membership)
    else:
        if membership.is_lead and not is_lead:
            _keep_a_lead(actor, team)
        membership.is_lead = is_lead
    if is_lead and Role.TEAM_LEAD.value not in user.roles:
        user.role_rows.append(UserRole(role=Role.TEAM_LEAD.value))
    db.session.flush()
    audit.record(actor, "team.member", team, after={"user_id": user.id, "is_lead": is_lead})
    return membership


def _keep_a_lead(actor: User | None, team: Team) -> None:
    """A lead may not leave the team leaderless; only an administrator (or the CLI) may.

    :raises ValidationError: when the team's last lead would go.
    """
    if len(team.leads) == 1 and actor is not None and not actor.is_admin:
        raise ValidationError(
            _("A team needs at least one lead."),
            {"user": [_("The team's last lead cannot be removed or demoted.")]},
        )


def remove_member(actor: User, team: Team, user: User) -> None:
    """:raises Forbidden: unless admin or lead. :raises NotFound: when not a member.
    :raises ValidationError: when removing the team's last lead."""
    if not can_manage_members(actor, team):
        raise Forbidden(_("Only the team's leads and administrators can change its members."))
    membership = db.session.get(Membership, (team.id, user.id))
    if membership is None:
        raise NotFound(_("This user is not a member of the team."))
    if membership.is_lead:
        _keep_a_lead(actor, team)
    db.session.delete(membership)
    db.session.flush()
    audit.record(actor, "team.member_removed", team, before={"user_id": user.id})


def _parse_account_text(values: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, limit in (("code", 64), ("name", 200)):
        if key not in values:
            continue
        value = values[key]
        if not isinstance(value, str) or not value.strip():
            errors[key] = [_("This field is required.")]
        elif len(value) > limit:
            errors[key] = [_("At most %(n)d characters.", n=limit)]
        else:
            clean[key] = value.strip()
    if "kind" in values:
        if values["kind"] not in ACCOUNT_KINDS:
            errors["kind"] = [_("Choose cost centre, grant or purchase order.")]
        else:
            clean["kind"] = values["kind"]
    return clean


def _parse_account_typed(values: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key in ("valid_from", "valid_until"):
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, date) or (value is None and key == "valid_until"):
            clean[key] = value
        else:
            errors[key] = [_("Enter a date (YYYY-MM-DD).")]
    if "spending_limit" in values:
        clean["spending_limit"] = _parse_money(values["spending_limit"], errors)
    for key in ("active", "is_default", "all_members"):
        if key in values:
            if isinstance(values[key], bool):
                clean[key] = values[key]
            else:
                errors[key] = [_("Must be true or false.")]
    return clean


def _parse_money(value: Any, errors: dict[str, list[str]]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value)) if not isinstance(value, float) else None
    except InvalidOperation:
        amount = None
    if (
        amount is None
        or not amount.is_finite()
        or amount < 0
        or amount != amount.quantize(Decimal("0.01"))
    ):
        errors["spending_limit"] = [_("Enter an amount of at least 0 with at most two decimals.")]
        return None
    return amount


def _account_changes(values: dict[str, Any], account: Account | None) -> dict[str, Any]:
    """The validated, typed changes. :raises ValidationError: listing every problem."""
    errors: dict[str, list[str]] = {}
    if account is None:
        for key in ("code", "name", "valid_from"):
            if key not in values:
                errors[key] = [_("This field is required.")]
    clean = {**_parse_account_text(values, errors), **_parse_account_typed(values, errors)}
    if "code" in clean:
        clash = db.session.scalar(sa.select(Account.id).where(Account.code == clean["code"]))
        if clash is not None and (account is None or clash != account.id):
            errors["code"] = [_("Another account already has this code.")]
    start = clean.get("valid_from", account.valid_from if account else None)
    end = clean.get("valid_until", account.valid_until if account else None)
    if start and end and end < start and "valid_until" not in errors:
        errors["valid_until"] = [_("The end date must not be before the start date.")]
    if errors:
        raise ValidationError(_("The account could not be saved."), errors)
    return clean


def save_account(
    actor: User | None, team: Team, values: dict[str, Any], account: Account | None = None
) -> Account:
    """Create (``account`` is None) or update an account of ``team``. Making an account the
    default clears the flag on the team's other accounts in the same transaction.

    :raises ValidationError: on bad values, a duplicate code or dates out of order.
    """
    clean = _account_changes(values, account)
    before = audit.snapshot(account, ACCOUNT_FIELDS) if account else None
    if clean.get("is_default"):
        for other in team.accounts:
            if other is not account and other.is_default:
                other.is_default = False
        db.session.flush()
    if account is None:
        account = Account(team=team)
        db.session.add(account)
    for key, value in clean.items():
        setattr(account, key, value)
    db.session.flush()
    audit.record(
        actor, "account.save", account, before=before, after=audit.snapshot(account, ACCOUNT_FIELDS)
    )
    return account


def set_account_users(actor: User, account: Account, users: list[User]) -> None:
    """Restrict who may charge ``account`` (``all_members`` off) to ``users``.

    :raises Forbidden: unless admin or a lead of the account's team.
    :raises ValidationError: when a user is not a member of the team.
    """
    if not can_manage_members(actor, account.team):
        raise Forbidden(_("Only the team's leads and administrators can change this."))
    member_ids = {m.user_id for m in account.team.memberships}
    outsiders = [u.email for u in users if u.id not in member_ids]
    if outsiders:
        raise ValidationError(
            _("Only team members can be authorised."),
            {"users": [_("Not a member: %(who)s", who=", ".join(outsiders))]},
        )
    before = sorted(u.id for u in account.authorised_users)
    account.authorised_users = list(users)
    db.session.flush()
    audit.record(
        actor,
        "account.users",
        account,
        before={"user_ids": before},
        after={"user_ids": sorted(u.id for u in users)},
    )


def teams_visible_to(user: User) -> sa.Select:
    """Admins and finance see every team; everyone else the teams they belong to."""
    stmt = sa.select(Team).order_by(Team.name)
    if not user.is_finance:
        stmt = stmt.where(
            Team.id.in_(sa.select(Membership.team_id).where(Membership.user_id == user.id))
        )
    return stmt
