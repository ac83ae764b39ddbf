"""Billing data (SPEC section 6): prices in ``rates``, charges and periods in ``charges``."""
from labbook.billing.models.charges import (
    ADJUSTMENT_STATES,
    LINE_KINDS,
    Adjustment,
    BillingPeriod,
    ChargeLine,
    LineKind,
    Statement,
    UsageItem,
)
from labbook.billing.models.rates import (
    BILLING_BASES,
    CHARGE_TYPES,
    DEFAULT_CUSTOMER_CLASSES,
    INSTRUMENT_CHARGE_TYPES,
    BillingBasis,
    BillingPolicy,
    ChargeType,
    Consumable,
    CustomerClass,
    Rate,
)

__all__ = [
    "ADJUSTMENT_STATES", "BILLING_BASES", "CHARGE_TYPES", "DEFAULT_CUSTOMER_CLASSES",
    "INSTRUMENT_CHARGE_TYPES", "LINE_KINDS", "Adjustment", "BillingBasis", "BillingPeriod",
    "BillingPolicy", "ChargeLine", "ChargeType", "Consumable", "CustomerClass", "LineKind",
    "Rate", "Statement", "UsageItem",
]
