"""Helpers shared by the administration page tests (tests/admin/test_views*.py): counting
rows, reading audit entries by action, and posting a form with a CSRF token taken from a
page. The ``admin`` fixture (logged in as an administrator) is in tests/admin/conftest.py."""
from __future__ import annotations

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from tests.conftest import csrf_token


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _audits(action: str) -> list[AuditEntry]:
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)).all()


def _post(client, path, data, page="/teams"):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})
