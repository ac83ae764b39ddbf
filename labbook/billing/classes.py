"""Customer classes: a code, names and a tax rate (a fraction). Editing a class's tax
rate reprices the drafts of open periods; closed statements keep the rate they froze."""
from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing.models import CustomerClass
from labbook.billing.money import parse_money
from labbook.errors import ValidationError
from labbook.extensions import db

CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def all_classes() -> list[CustomerClass]:
    return list(db.session.scalars(sa.select(CustomerClass).order_by(CustomerClass.code)))


def _code(values: dict[str, Any], errors: dict[str, list[str]]) -> Any:
    code = values.get("code")
    if not isinstance(code, str) or not CODE.match(code):
        errors["code"] = [_("Lower-case letters, digits and '_', 2 to 32, e.g. 'government'.")]
    elif db.session.get(CustomerClass, code) is not None:
        errors["code"] = [_("This code is taken.")]
    return code


def _text(raw: Any, limit: int, required: bool) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise ValueError
    text = (raw or "").strip()
    if (required and not text) or len(text) > limit:
        raise ValueError
    return text or None


def _clean(values: dict[str, Any], *, new: bool) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {"code": _code(values, errors)} if new else {}
    for name, required in (("name", True), ("name_zh", False)):
        if name in values or (required and new):
            try:
                clean[name] = _text(values.get(name), 80, required)
            except ValueError:
                errors[name] = [_("Text of at most %(n)d characters.", n=80)]
    if "tax_rate" in values or new:
        try:
            rate = parse_money(values.get("tax_rate"), places=4)
            if rate >= 1:
                raise ValueError(_("A fraction below 1, e.g. \"0.06\" for 6 %."))
            clean["tax_rate"] = rate
        except ValueError as error:
            errors["tax_rate"] = [str(error)]
    if errors:
        raise ValidationError(_("The customer class was not saved."), errors)
    return clean


def create_class(actor: User, values: dict[str, Any]) -> CustomerClass:
    """:raises ValidationError: bad or taken code, missing name, bad tax rate."""
    klass = CustomerClass(**_clean(values, new=True))
    db.session.add(klass)
    db.session.flush()
    audit.record(actor, "customer_class.create", klass,
                 after={"code": klass.code, "tax_rate": klass.tax_rate})
    return klass


def update_class(actor: User, klass: CustomerClass, values: dict[str, Any]) -> CustomerClass:
    """:raises ValidationError: as ``create_class``."""
    clean = _clean(values, new=False)
    before = {k: getattr(klass, k) for k in clean}
    for key, value in clean.items():
        setattr(klass, key, value)
    db.session.flush()
    audit.record(actor, "customer_class.update", klass, before=before, after=clean)
    return klass
