"""Money: ``Decimal`` only, rounded half-up to the currency's minor unit (SPEC section 6).

Half-up, not Python's default half-even: 117.225 becomes 117.23, as finance expects.
"""
from __future__ import annotations

import re
from functools import lru_cache
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import current_app, has_app_context
from flask_babel import gettext

# ISO 4217 minor units of the currencies a centre is likely to use; others have two.
PLAIN_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")  # no exponents, NaN or spaces
MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def currency() -> str:
    return current_app.config["LABBOOK_CURRENCY"] if has_app_context() else "CNY"


def quantum(code: str | None = None) -> Decimal:
    """``Decimal("0.01")`` for CNY: the smallest amount of the currency."""
    return _quantum(code or currency())


@lru_cache(maxsize=32)
def _quantum(code: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS.get(code, 2))


def money(amount: Decimal, code: str | None = None) -> Decimal:
    """``amount`` rounded half-up to the currency's minor unit."""
    return amount.quantize(quantum(code), rounding=ROUND_HALF_UP)


def tax_on(subtotal: Decimal, rate: Decimal, code: str | None = None) -> Decimal:
    """Tax once on a statement's subtotal, half-up."""
    return money(subtotal * rate, code)


def fmt(amount: Decimal | None, code: str | None = None) -> str | None:
    """A fixed-decimals string for the API and exports (``"1234.50"``); None stays None."""
    if amount is None:
        return None
    return str(amount.quantize(quantum(code), rounding=ROUND_HALF_UP))


def _t(message: str, **params: object) -> str:
    """Translated inside a request or job, plain English outside (pure unit tests)."""
    return gettext(message, **params) if has_app_context() else message % params


def parse_money(raw: object, *, allow_negative: bool = False, places: int = 2) -> Decimal:
    """A decimal string (or number) as entered by a person or an API client.

    :raises ValueError: with a message for anything else: not a number, NaN or infinite,
        negative when not allowed, or more decimals than ``places``.
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise ValueError(_t("Give the amount as a decimal string, e.g. \"120.50\"."))
    text = str(raw).strip()
    if not PLAIN_DECIMAL.match(text):
        raise ValueError(_t("Not a decimal number."))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(_t("Not a decimal number.")) from None
    if not value.is_finite():
        raise ValueError(_t("Not a decimal number."))
    if value < 0 and not allow_negative:
        raise ValueError(_t("Must not be negative."))
    if value.as_tuple().exponent < -places:  # type: ignore[operator]
        raise ValueError(_t("At most %(n)d decimal places.", n=places))
    return value
