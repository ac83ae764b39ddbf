"""Fixtures shared by the API tests: a small catalog, bearer headers per role, and a
counter of SQL statements (to catch N+1 queries)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from labbook.audit import AuditEntry
from labbook.auth.services import revoke_token
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories

ROLES = (
    "anonymous", "revoked", "inactive", "researcher", "team_lead", "facility_manager",
    "other_manager", "finance", "admin",
)


@pytest.fixture
def catalog(app):  # type: ignore[no-untyped-def]
    """Two facilities on one platform, two research fields, one instrument in ``facility``."""
    platform = factories.make_platform()
    fields = [factories.make_field(), factories.make_field()]
    facility = factories.make_facility(platform)
    other = factories.make_facility(platform)
    instrument = factories.make_instrument(facility, fields=[fields[0]], name="Alpha SEM",
                                           category="SEM")
    db.session.commit()
    return SimpleNamespace(platform=platform, fields=fields, facility=facility, other=other,
                           instrument=instrument)


@pytest.fixture
def headers_for(app, api_token, catalog):  # type: ignore[no-untyped-def]
    """``headers_for(role)``: bearer headers of a new user in ``role``. ``facility_manager``
    manages the catalog's facility, ``other_manager`` the other one; ``revoked`` and
    ``inactive`` carry tokens that must be refused; ``anonymous`` carries none."""

    def _headers(role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        if role == "revoked":
            user = factories.make_user()
            headers = api_token(user)
            revoke_token(user, user.tokens[0].id)
            db.session.commit()
            return headers
        if role == "inactive":
            user = factories.make_user()
            headers = api_token(user)
            user.active = False
            db.session.commit()
            return headers
        if role == "other_manager":
            user = factories.make_user_with_role("facility_manager", facility=catalog.other)
        elif role == "facility_manager":
            user = factories.make_user_with_role(role, facility=catalog.facility)
        else:
            user = factories.make_user_with_role(role)
        return api_token(user)

    return _headers


def snapshot_db() -> dict[str, Any]:
    """Row counts and every instrument's values: equal before and after a refused request
    means nothing was written."""
    db.session.rollback()  # drop anything uncommitted: only what the request committed counts
    instruments = db.session.scalars(sa.select(Instrument).order_by(Instrument.id)).all()
    return {
        "audit": db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)),
        "instruments": [
            {c.name: getattr(i, c.name) for c in Instrument.__table__.columns} | {
                "field_ids": i.field_ids}
            for i in instruments
        ],
    }


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """Collect the SQL statements run inside the block."""
    statements: list[str] = []

    def _record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", _record)


def valid_instrument(catalog: SimpleNamespace, **overrides: Any) -> dict[str, Any]:
    """A complete, valid POST body for the catalog's facility."""
    body = {
        "name": "Beta XRD",
        "asset_code": "XRD-0001",
        "category": "XRD",
        "facility_id": catalog.facility.id,
        "field_ids": [catalog.fields[1].id],
    }
    body.update(overrides)
    return body


def api_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(path under /api/v1 with ``{name}`` parameters, lower-case method) of every API route,
    read from the URL map itself."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:>]*:)?(\w+)>", r"{\1}", rule.rule)[len("/api/v1"):]
            routes.update((path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes
