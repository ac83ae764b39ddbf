"""The JSON API under ``/api/v1``.

Every request needs ``Authorization: Bearer <token>``; session cookies are ignored here, so
the API is exempt from CSRF without opening a cross-site hole. Errors use the body of SPEC
section 8, produced by ``labbook.errors``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, g, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from labbook.api.schema import MAX_ID
from labbook.errors import LabbookError, Unauthorized, ValidationError
from labbook.extensions import csrf, db

bp = Blueprint("api", __name__)
csrf.exempt(bp)

# URL converter for row ids: larger numbers do not match (404) instead of overflowing the
# database driver (SQLite refuses integers beyond 64 bits with an OverflowError).
ID = f"int(max={MAX_ID})"


class UnsupportedMediaType(LabbookError):
    status = 415
    code = "unsupported_media_type"


class BadRequest(LabbookError):
    status = 400
    code = "bad_request"


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token to a user; anything else is a 401.

    :raises Unauthorized: without a valid, unrevoked token of an active user.
    """
    from labbook.auth.services import user_for_token

    scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
    user = user_for_token(secret.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Unauthorized(_("A valid API token is required (Authorization: Bearer <token>)."))
    g._login_user = user  # Flask-Login's current_user for this request only


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    :raises UnsupportedMediaType: when the body is not declared as JSON.
    :raises BadRequest: when it is not parseable JSON.
    :raises ValidationError: when it is JSON but not an object.
    """
    if not request.is_json:
        raise UnsupportedMediaType(_("Send a JSON body with Content-Type: application/json."))
    try:
        data = request.get_json()
    except (HTTPException, RecursionError):  # malformed, or nested too deep to parse
        raise BadRequest(_("The body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ValidationError(_("The body must be a JSON object."))
    return data


def paginate(
    stmt: sa.Select,
    page: int,
    per_page: int,
    serialize: Callable[[Any], dict[str, Any]],
    options: Sequence[Any] = (),
) -> dict[str, Any]:
    """One page of ``stmt``'s rows as the list answer of SPEC section 8. ``options`` (e.g.
    ``selectinload``) apply to the page query only, not to the count."""
    count = sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    rows = db.session.scalars(
        stmt.options(*options).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return {
        "items": [serialize(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": db.session.scalar(count),
    }


def check_window(start: Any, end: Any) -> None:
    """A ``from``/``to`` query window must not be empty (either bound may be absent).

    :raises ValidationError: ``to`` not after ``from``.
    """
    if start is not None and end is not None and end <= start:
        raise ValidationError(_("The request has invalid parameters."),
                              {"to": [_("Must be after from.")]})


def optional_json_body() -> dict[str, Any]:
    """The request's JSON object, or ``{}`` when the request has no body at all (for
    actions whose properties are all optional).

    :raises UnsupportedMediaType, BadRequest, ValidationError: as ``json_body``.
    """
    if not request.get_data(cache=True):
        return {}
    return json_body()


def load_routes() -> None:
    """Import the modules whose routes attach to ``bp`` (before it is registered)."""
    from labbook.api import openapi  # noqa: F401
    from labbook.billing import api as billing_api  # noqa: F401
    from labbook.billing import api_items, api_periods, api_rates  # noqa: F401
    from labbook.bookings import api as bookings_api  # noqa: F401
    from labbook.bookings import api_availability, api_qualifications  # noqa: F401
    from labbook.care import api_faults, api_outages, api_usage  # noqa: F401
    from labbook.feeds import api as feeds_api  # noqa: F401
    from labbook.instruments import api as instruments_api  # noqa: F401
    from labbook.notifications import api as notifications_api  # noqa: F401
    from labbook.teams import api as teams_api  # noqa: F401
