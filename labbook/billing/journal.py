"""A period's journal for the general ledger (SPEC section 6), as CSV.

One balanced entry per statement: the team's funding accounts are debited with what is
charged to them (their lines plus their share of the tax), each facility's revenue
account is credited with its lines, and tax payable is credited with the tax. Why per
statement: finance posts and reconciles statement by statement, and an entry that does
not balance is refused by their ledger, so every entry must balance to the cent.

Accounts come from the configuration: ``LABBOOK_JOURNAL_REVENUE_ACCOUNT`` (default
revenue), ``LABBOOK_JOURNAL_TAX_ACCOUNT`` and ``LABBOOK_JOURNAL_FACILITY_ACCOUNTS``
(``"CODE=ACCOUNT,..."`` overrides per facility code). Lines without an instrument or a
consumable (adjustments) credit the default revenue account. A negative amount (a credit
note) goes to the other column.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import IO, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from labbook.billing.exports import CsvSink, status_of, text_cell
from labbook.billing.models import BillingPeriod, ChargeLine, Consumable
from labbook.billing.money import fmt, quantum
from labbook.billing.periods import next_month
from labbook.billing.statements import statements_for
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Account

JOURNAL_COLUMNS = (
    "status", "date", "entry", "account", "debit", "credit", "description", "statement_number",
)


@dataclass
class Posting:
    account: str
    amount: Decimal  # positive = debit, negative = credit
    description: str


def facility_accounts(raw: str | None) -> dict[str, str]:
    """``"NANO=6002, BIO=6003"`` → ``{"NANO": "6002", "BIO": "6003"}``.

    :raises ValueError: for a part that is not ``CODE=ACCOUNT``.
    """
    mapping: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        code, sep, account = part.partition("=")
        if not sep or not code.strip() or not account.strip():
            raise ValueError(f"LABBOOK_JOURNAL_FACILITY_ACCOUNTS: not CODE=ACCOUNT: {part!r}")
        mapping[code.strip()] = account.strip()
    return mapping


def _revenue_by_team(period: BillingPeriod) -> dict[int, dict[tuple[str, str], Decimal]]:
    """Per team: (account code, facility code or "") → sum of line amounts."""
    instrument, consumable = aliased(Instrument), aliased(Consumable)
    facility_id = sa.func.coalesce(instrument.facility_id, consumable.facility_id)
    rows = db.session.execute(
        sa.select(ChargeLine.team_id, Account.code, Facility.code,
                  sa.func.sum(ChargeLine.amount))
        .join(Account, Account.id == ChargeLine.account_id)
        .outerjoin(instrument, instrument.id == ChargeLine.instrument_id)
        .outerjoin(consumable, consumable.id == ChargeLine.consumable_id)
        .outerjoin(Facility, Facility.id == facility_id)
        .where(ChargeLine.period_id == period.id)
        .group_by(ChargeLine.team_id, Account.code, Facility.code)
    )
    result: dict[int, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    for team_id, account, facility, amount in rows:
        result[team_id][(account, facility or "")] = Decimal(amount)
    return result


def _split_tax(tax: Decimal, by_account: dict[str, Decimal]) -> dict[str, Decimal]:
    """The statement's tax shared over its accounts by their subtotals; the rounding
    remainder goes to the last account, so the shares add up to the tax exactly."""
    accounts = sorted(by_account)
    subtotal = sum(by_account.values(), Decimal(0))
    shares = dict.fromkeys(accounts, Decimal(0))
    if not accounts or tax == 0:
        return shares
    given = Decimal(0)
    for account in accounts[:-1]:
        share = (tax * by_account[account] / subtotal if subtotal else Decimal(0))
        shares[account] = share.quantize(quantum(), rounding=ROUND_HALF_UP)
        given += shares[account]
    shares[accounts[-1]] = tax - given
    return shares


def entry_postings(team_name: str, tax: Decimal, sums: dict[tuple[str, str], Decimal],
                   revenue: dict[str, str]) -> list[Posting]:
    """The balanced postings of one statement (debits positive, credits negative)."""
    config = current_app.config
    by_account: dict[str, Decimal] = defaultdict(Decimal)
    by_revenue: dict[str, Decimal] = defaultdict(Decimal)
    for (account, facility), amount in sums.items():
        by_account[account] += amount
        by_revenue[revenue.get(facility, config["LABBOOK_JOURNAL_REVENUE_ACCOUNT"])] += amount
    shares = _split_tax(tax, dict(by_account))
    postings = [Posting(code, by_account[code] + shares[code], f"{team_name}: charges")
                for code in sorted(by_account)]
    postings += [Posting(code, -amount, f"{team_name}: revenue")
                 for code, amount in sorted(by_revenue.items())]
    if tax:
        postings.append(Posting(config["LABBOOK_JOURNAL_TAX_ACCOUNT"], -tax,
                                f"{team_name}: tax payable"))
    return postings


def journal_rows(period: BillingPeriod) -> list[list[Any]]:
    """Every posting of the period as a row (``JOURNAL_COLUMNS``), entry by entry.

    :raises ValueError: for a malformed ``LABBOOK_JOURNAL_FACILITY_ACCOUNTS``.
    """
    revenue = facility_accounts(current_app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"])
    last_day = (next_month(period.month) - timedelta(days=1)).isoformat()
    sums = _revenue_by_team(period)
    rows: list[list[Any]] = []
    status = status_of(period)
    for entry, view in enumerate(statements_for(period), start=1):
        for posting in entry_postings(view.team_name, view.tax, sums.get(view.team_id, {}),
                                      revenue):
            debit = fmt(posting.amount) if posting.amount > 0 else ""
            credit = fmt(-posting.amount) if posting.amount < 0 else ""
            if not debit and not credit:
                continue
            rows.append([status, last_day, entry, posting.account, debit, credit,
                         text_cell(posting.description), view.number or ""])
    return rows


def write_journal_csv(period: BillingPeriod, out: IO[bytes]) -> int:
    """Write the journal; returns the number of postings.

    :raises ValueError: for a malformed ``LABBOOK_JOURNAL_FACILITY_ACCOUNTS``.
    """
    rows = journal_rows(period)
    sink = CsvSink(out)
    sink.write(list(JOURNAL_COLUMNS))
    for row in rows:
        sink.write(row)
    sink.flush()
    return len(rows)
