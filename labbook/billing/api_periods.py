"""Billing periods API (routes attach to ``labbook.api.bp``): the months with their state
and totals, the statements of a month, the pre-close checklist and the close itself.

Who: finance and admins see every period, checklist and statement and close periods; team
leads read the statements of the teams they lead (a ``team`` filter on another team is a
403; other teams are simply not listed); everyone else 403. Reading an open period's
statements or checklist first refreshes its draft lines (idempotent) and commits.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import bp, optional_json_body
from labbook.api.openapi import component, list_of, operation
from labbook.api.schema import MAX_ID, Boolean, Integer, Schema, response_schema
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.billing.api import DECIMAL, NULL_DECIMAL, NULL_TIME, TIME, decimal_text
from labbook.billing.closing import checklist, close_period, period_totals
from labbook.billing.models import LINE_KINDS, BillingPeriod, ChargeLine
from labbook.billing.money import fmt
from labbook.billing.periods import centre_zone, get_period, listed_periods, parse_month
from labbook.billing.statements import StatementView, refresh_period, statements_for
from labbook.bookings.api import body_optional
from labbook.db import run_with_retry
from labbook.extensions import db

TAGS = ("billing",)
STATES = ("draft", "closed")

STATEMENT_QUERY = Schema("StatementQuery", {
    "team": Integer(minimum=1, maximum=MAX_ID, description="only this team's statement"),
})
CLOSE = Schema("PeriodClose", {
    "force": Boolean(default=False, description=(
        "close although the checklist lists warnings (never with unsettled sessions)")),
})
PERIOD = component("BillingPeriod", response_schema({
    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    "state": {"type": "string", "enum": list(STATES)},
    "closed_at": NULL_TIME,
    "closed_by_id": {"type": ["integer", "null"]},
    "refreshed_at": NULL_TIME,
    "forced": {"type": "boolean", "description": "closed over checklist warnings"},
    "subtotal": DECIMAL, "tax": DECIMAL, "total": DECIMAL,
}))
LINE = component("ChargeLine", response_schema({
    "id": {"type": "integer"},
    "kind": {"type": "string", "enum": list(LINE_KINDS)},
    "charge_type": {"type": ["string", "null"]},
    "description": {"type": "string"},
    "occurred_at": TIME,
    "account": {"type": "string", "description": "account code"},
    "quantity": DECIMAL,
    "unit_amount": NULL_DECIMAL,
    "amount": DECIMAL,
    "missing_rate": {"type": "boolean"},
    "explanation": {"type": "object", "description": "how the amount was computed"},
}))
STATEMENT = component("Statement", response_schema({
    "month": {"type": "string"},
    "team": response_schema({"id": {"type": "integer"}, "name": {"type": "string"}}),
    "customer_class": {"type": "string"},
    "tax_rate": DECIMAL,
    "currency": {"type": "string"},
    "number": {"type": ["string", "null"], "description": "null while draft"},
    "state": {"type": "string", "enum": list(STATES)},
    "invoice_title": {"type": ["string", "null"]},
    "tax_id": {"type": ["string", "null"]},
    "lines": {"type": "array", "items": LINE},
    "accounts": {"type": "object", "additionalProperties": DECIMAL,
                 "description": "subtotal per account code"},
    "subtotal": DECIMAL, "tax": DECIMAL, "total": DECIMAL,
}))
CHECK_ITEMS = {"type": "array", "items": {"type": "object"}}
CHECKLIST = component("PeriodChecklist", response_schema({
    "month": {"type": "string"},
    "state": {"type": "string", "enum": list(STATES)},
    "blocking": {"type": "boolean", "description": "unsettled sessions: cannot close"},
    "warnings": {"type": "boolean", "description": "closing needs force"},
    **{name: CHECK_ITEMS for name in ("unsettled", "needs_review", "missing_rates",
                                      "invalid_accounts", "pending_adjustments")},
}))


def _at(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def period_to_dict(period: BillingPeriod) -> dict[str, Any]:
    """Totals: the frozen statements' once closed, the current lines' while open."""
    totals = period_totals(period)
    return {
        "month": period.label, "state": "closed" if period.is_closed else "draft",
        "closed_at": _at(period.closed_at), "closed_by_id": period.closed_by_id,
        "refreshed_at": _at(period.refreshed_at), "forced": bool(period.close_warnings),
        **{key: fmt(value) for key, value in totals.items()},
    }


def line_to_dict(line: ChargeLine) -> dict[str, Any]:
    return {
        "id": line.id, "kind": line.kind, "charge_type": line.charge_type,
        "description": line.description,
        "occurred_at": line.occurred_at.astimezone(centre_zone()).isoformat(),
        "account": line.account.code, "quantity": decimal_text(line.quantity),
        "unit_amount": decimal_text(line.unit_amount), "amount": fmt(line.amount),
        "missing_rate": line.missing_rate, "explanation": line.explanation,
    }


def statement_to_dict(view: StatementView) -> dict[str, Any]:
    return {
        "month": f"{view.month:%Y-%m}", "team": {"id": view.team_id, "name": view.team_name},
        "customer_class": view.customer_class, "tax_rate": decimal_text(view.tax_rate),
        "currency": view.currency, "number": view.number,
        "state": "closed" if view.closed else "draft", "invoice_title": view.invoice_title,
        "tax_id": view.tax_id, "lines": [line_to_dict(line) for line in view.lines],
        "accounts": {code: fmt(amount) for code, amount in view.accounts.items()},
        "subtotal": fmt(view.subtotal), "tax": fmt(view.tax), "total": fmt(view.total),
    }


def _finance_only() -> None:
    authorize(current_user.is_finance, _("Only finance can manage billing periods."))


def _refreshed(month: date) -> BillingPeriod:
    """The period of ``month``, its draft lines brought up to date (and committed) while
    it is open, so that what is read is what closing would freeze."""

    def unit() -> int:
        period = get_period(month, lock=True)
        if not period.is_closed:
            refresh_period(month)
        return period.id

    period_id = run_with_retry(unit)
    return db.session.get(BillingPeriod, period_id)


def _statement_teams(user: User, team: int | None) -> set[int] | None:
    """The team ids whose statements ``user`` may read (None: all).

    :raises Forbidden: neither finance nor a lead of the requested (or any) team.
    """
    if user.is_finance:
        return None if team is None else {team}
    led = {m.team_id for m in user.memberships if m.is_lead} if user.has_role(
        "team_lead") else set()
    authorize(bool(led), _("Only finance and team leads see statements."))
    if team is not None:
        authorize(team in led, _("You see only the statements of teams you lead."))
        return {team}
    return led


@bp.get("/billing/periods")
@operation("Billing periods, newest first, with their state and totals", tags=TAGS,
           response=list_of(PERIOD), errors=(403,), description=(
               "Finance and admins only. Closed periods, periods with charge lines, and the "
               "current and previous month (when their row exists): like the billing page."))
def list_periods() -> Response:
    """:raises Forbidden: not finance."""
    _finance_only()
    return jsonify({"items": [period_to_dict(p) for p in listed_periods()]})


@bp.get("/billing/periods/<month>/statements")
@operation("A month's statements, one per team, with their lines", tags=TAGS,
           query=STATEMENT_QUERY, response=list_of(STATEMENT), errors=(403, 404),
           description=(
               "Finance and admins: every team; team leads: the teams they lead (a `team` "
               "filter on another team is 403); others 403. An open month is refreshed "
               "first; its statements are drafts (`number` null)."))
def list_statements(month: str) -> Response:
    """Authorization comes before the refresh, so a refused caller writes nothing.

    :raises NotFound: malformed month. :raises Forbidden: see ``_statement_teams``."""
    first = parse_month(month)
    args = STATEMENT_QUERY.parse_query(request.args)
    team_ids = _statement_teams(current_user._get_current_object(), args.get("team"))
    period = _refreshed(first)
    views = statements_for(period, team_ids)
    return jsonify({"month": period.label, "state": "closed" if period.is_closed else "draft",
                    "items": [statement_to_dict(v) for v in views]})


@bp.get("/billing/periods/<month>/checklist")
@operation("The pre-close checklist of a month", tags=TAGS, response=CHECKLIST,
           errors=(403, 404), description=(
               "Finance and admins only. Unsettled sessions block the close; the other "
               "lists are warnings that `force` overrides."))
def get_checklist(month: str) -> Response:
    """:raises Forbidden: not finance. :raises NotFound: malformed month."""
    _finance_only()
    period = _refreshed(parse_month(month))
    found = checklist(period)
    return jsonify({"month": period.label, "state": "closed" if period.is_closed else "draft",
                    "blocking": found.blocking, "warnings": found.warnings,
                    **found.as_dict()})


@bp.post("/billing/periods/<month>/close")
@body_optional
@operation("Close a month: number and freeze its statements", tags=TAGS, body=CLOSE,
           response=PERIOD, errors=(403, 404, 409), description=(
               "Finance and admins only; the body is optional. 409 with `reason`: "
               "`not_ended` (the month is not over), `already_closed`, or `checklist` (with "
               "the `checklist` and whether `force` would do). Afterwards nothing in the "
               "month can change (409 `period_closed`)."))
def post_close(month: str) -> Response:
    """:raises Forbidden: not finance. :raises Conflict: see the description."""
    _finance_only()
    first = parse_month(month)
    force = CLOSE.parse(optional_json_body()).get("force", False)
    user = current_user._get_current_object()
    period = run_with_retry(lambda: close_period(user, first, force=force))
    return jsonify(period_to_dict(period))
