"""Billing (SPEC section 6): customer classes, consumables, rate cards, billing policies,
charge lines, draft and closed statements, adjustments, exports, usage import."""

from flask import Blueprint

bp = Blueprint("billing", __name__, template_folder="templates")

from labbook.billing import views, views_exports, views_periods, views_rates  # noqa: E402,F401,I001
