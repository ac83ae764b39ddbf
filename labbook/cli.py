"""Command-line entry points, registered on ``flask --app labbook``.

Each command owns its transaction like a view does: it calls services, commits once at the
end, and on any refusal rolls back, prints a clear message on stderr and exits with status 1,
so nothing is half-written. Feature commands live next to their feature (``auth/cli.py``,
``instruments/cli.py``); this module holds ``seed-demo`` and the shared helpers.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import NoReturn, TypeVar

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from labbook.errors import LabbookError
from labbook.extensions import db

T = TypeVar("T")


def fail(message: str, details: Iterable[str] = ()) -> NoReturn:
    """Undo the transaction, print ``details`` (one per line) then ``Error: message`` on
    stderr, and exit with status 1.

    :raises click.ClickException: always; click turns it into the exit status.
    """
    db.session.rollback()
    for line in details:
        click.echo(line, err=True)
    raise click.ClickException(message)


def error_lines(error: LabbookError) -> list[str]:
    """A service error's field messages as ``field: message`` lines."""
    fields = getattr(error, "fields", None) or {}
    return [f"  {name}: {message}" for name, messages in fields.items() for message in messages]


def fail_with(error: LabbookError) -> NoReturn:
    """:raises click.ClickException: always, after printing the error's field messages."""
    fail(error.message, error_lines(error))


def progressbar(items: Sequence[T], label: str) -> AbstractContextManager[Iterable[T]]:
    """A progress bar on stderr, so stdout keeps only the command's result."""
    return click.progressbar(items, label=label, file=sys.stderr)


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True,
              help="Do nothing when the database already has users (used by `make run`).")
@with_appcontext
def seed_demo_command(if_empty: bool) -> None:
    """Load the demo catalog, teams and one login per role. Safe to run again: only
    missing rows are created."""
    from labbook import demo
    from labbook.auth.models import User

    if if_empty and db.session.scalar(sa.select(User.id).limit(1)) is not None:
        click.echo("The database already has users: no demo data added.")
        return
    try:
        created = demo.seed_demo(progress=progressbar)
    except LabbookError as error:
        fail_with(error)
    db.session.commit()
    if created:
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(created.items()))
        click.echo(f"Demo data created: {summary}.")
    else:
        click.echo("Demo data already present: nothing to add.")
    click.echo(f"Demo logins (password: {demo.DEMO_PASSWORD}):")
    for user in demo.DEMO_USERS:
        click.echo(f"  {user.email:<24} {', '.join(user.roles)}")


def init_cli(app: Flask) -> None:
    """Register every command on the app's ``flask`` CLI."""
    from labbook.auth.cli import tokens_cli, users_cli
    from labbook.billing.cli import billing_cli, usage_cli
    from labbook.feeds.cli import closures_cli
    from labbook.instruments.cli import instruments_cli
    from labbook.scheduler.cli import scheduler_command

    app.cli.add_command(seed_demo_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(instruments_cli)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(closures_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(usage_cli)
