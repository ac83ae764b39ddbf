"""Team API: the teams a caller can see, with their accounts (SPEC section 8).

Researchers and team leads see the teams they belong to, admins and finance every team
(``teams_visible_to`` holds that rule). Each team says whether the caller is a member or a
lead, and each account whether the caller may charge bookings to it.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.api import ID, bp, json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import PAGE_PROPS, Schema, String, response_schema
from labbook.auth.guards import authorize, get_or_404
from labbook.auth.models import User
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.teams.models import ACCOUNT_KINDS, Account, Team
from labbook.teams.services import teams_visible_to, update_team

TEAM_QUERY = Schema("TeamQuery", PAGE_PROPS)
TEAM_UPDATE = Schema("TeamBillingUpdate", {
    "customer_class": String(min_length=1, max_length=32, description="customer class code"),
    "invoice_title": String(max_length=200, nullable=True),
    "tax_id": String(max_length=64, nullable=True),
})

ACCOUNT = component("Account", response_schema({
    "id": {"type": "integer"},
    "code": {"type": "string"},
    "name": {"type": "string"},
    "kind": {"type": "string", "enum": list(ACCOUNT_KINDS)},
    "valid_from": {"type": "string", "format": "date"},
    "valid_until": {"type": ["string", "null"], "format": "date"},
    "spending_limit": {"type": ["string", "null"], "pattern": r"^[0-9]+\.[0-9]{2}$",
                       "description": "decimal string in the centre's currency; null: none"},
    "active": {"type": "boolean"},
    "is_default": {"type": "boolean"},
    "all_members": {"type": "boolean",
                    "description": "every member may charge it (else only authorised ones)"},
    "may_charge": {"type": "boolean", "description": "the caller may charge bookings to it"},
}))
TEAM = component("Team", response_schema({
    "id": {"type": "integer"},
    "name": {"type": "string"},
    "customer_class": {"type": "string", "description": "customer class code"},
    "invoice_title": {"type": ["string", "null"]},
    "tax_id": {"type": ["string", "null"]},
    "is_member": {"type": "boolean", "description": "the caller belongs to the team"},
    "is_lead": {"type": "boolean", "description": "the caller leads the team"},
    "accounts": {"type": "array", "items": ACCOUNT},
}))


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount.quantize(Decimal("0.01")))


def account_to_dict(account: Account, user: User) -> dict[str, Any]:
    return {
        "id": account.id,
        "code": account.code,
        "name": account.name,
        "kind": account.kind,
        "valid_from": account.valid_from.isoformat(),
        "valid_until": account.valid_until.isoformat() if account.valid_until else None,
        "spending_limit": _money(account.spending_limit),
        "active": account.active,
        "is_default": account.is_default,
        "all_members": account.all_members,
        "may_charge": account.may_be_charged_by(user),
    }


def team_to_dict(team: Team, user: User, leads: dict[int, bool]) -> dict[str, Any]:
    """``leads`` maps the caller's team ids to their lead flag."""
    return {
        "id": team.id,
        "name": team.name,
        "customer_class": team.customer_class_code,
        "invoice_title": team.invoice_title,
        "tax_id": team.tax_id,
        "is_member": team.id in leads,
        "is_lead": leads.get(team.id, False),
        "accounts": [account_to_dict(a, user) for a in team.accounts],
    }


@bp.get("/teams")
@operation("The caller's teams (every team for admins and finance), with their accounts",
           tags=("teams",), query=TEAM_QUERY, response=page_of(TEAM))
def list_teams() -> Response:
    args = TEAM_QUERY.parse_query(request.args)
    user = current_user._get_current_object()
    leads = {m.team_id: m.is_lead for m in user.memberships}
    options = [
        selectinload(Team.memberships),
        selectinload(Team.accounts).selectinload(Account.authorised_users),
    ]
    return jsonify(paginate(teams_visible_to(user), args["page"], args["per_page"],
                            lambda team: team_to_dict(team, user, leads), options=options))


@bp.patch(f"/teams/<{ID}:team_id>")
@operation("Change a team's billing details", tags=("teams",), body=TEAM_UPDATE,
           response=TEAM, errors=(403, 404), description=(
               "Finance and admins only: customer class (it decides the rates and tax of "
               "the open periods' drafts), invoice title and tax id. Audited."))
def patch_team(team_id: int) -> Response:
    """:raises Forbidden: not finance. :raises NotFound: unknown team.
    :raises ValidationError: unknown class or too long text (nothing is written)."""
    user = current_user._get_current_object()
    authorize(user.is_finance, _("Only administrators and finance staff can change a team."))
    team = get_or_404(Team, team_id, _("No such team."))
    values = TEAM_UPDATE.parse(json_body())
    if "customer_class" in values:
        values["customer_class_code"] = values.pop("customer_class")
    try:
        update_team(user, team, values)
    except ValidationError as error:
        fields = {("customer_class" if k == "customer_class_code" else k): v
                  for k, v in error.fields.items()}
        raise ValidationError(error.message, fields) from None
    db.session.commit()
    leads = {m.team_id: m.is_lead for m in user.memberships}
    return jsonify(team_to_dict(team, user, leads))
