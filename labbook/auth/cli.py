"""``flask users create`` and ``flask tokens create``: accounts and API tokens from the shell,
for the first administrator and for scripts. The rules are the services'; these commands
only parse options, call them, and commit once."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from labbook.auth import services
from labbook.auth.models import LOCALES, ROLE_VALUES, Role, User
from labbook.cli import error_lines, fail, fail_with
from labbook.errors import LabbookError
from labbook.extensions import db

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")


def _default_name(email: str) -> str:
    """``jane.doe@example.org`` -> ``Jane Doe``: a readable name until the user sets one."""
    local = email.strip().split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part)


def _join_team(user: User, team_name: str, lead: bool) -> str:
    """Add ``user`` to the team named ``team_name``, creating it (with its default account)
    when it does not exist yet. Returns what happened, for the summary.

    :raises ValidationError: when the team name is not acceptable.
    """
    from labbook.teams.services import add_member, create_team, find_team

    team = find_team(team_name)
    created = team is None
    if team is None:
        team = create_team(None, {"name": team_name})
    add_member(None, team, user, is_lead=lead)
    role = "lead" if lead else "member"
    return f"{'created team' if created else 'joined team'} {team.name!r} as {role}"


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Initial password (at least 8 characters); prompted for when omitted.")
@click.option("--role", "roles", multiple=True, default=(Role.RESEARCHER.value,),
              show_default=True, metavar="ROLE",
              help=f"A role to grant; repeat for several. One of: {', '.join(ROLE_VALUES)}.")
@click.option("--name", default=None, help="Display name (default: from the email address).")
@click.option("--team", "team_name", default=None,
              help="Join this team, creating it with a default account if it is new. "
                   "A user with the team_lead role becomes a lead of the team.")
@click.option("--locale", type=click.Choice(LOCALES), default="en", show_default=True,
              help="Interface language.")
def create_user_command(email: str, password: str, roles: tuple[str, ...], name: str | None,
                        team_name: str | None, locale: str) -> None:
    """Create a local account EMAIL. Nothing is written when any part fails."""
    try:
        user = services.create_user(None, email, name or _default_name(email), password,
                                    list(roles), locale=locale)
        joined = _join_team(user, team_name, Role.TEAM_LEAD.value in roles) if team_name else ""
    except LabbookError as error:
        if any(name == "roles" for name in getattr(error, "fields", {})):
            fail(error.message, [*error_lines(error), f"  valid roles: {', '.join(ROLE_VALUES)}"])
        fail_with(error)
    db.session.commit()
    summary = f"Created user {user.email} ({', '.join(sorted(user.roles))})"
    click.echo(f"{summary}; {joined}." if joined else f"{summary}.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label to recognise the token by.")
def create_token_command(email: str, name: str) -> None:
    """Create an API token for EMAIL and print it on the last line. It is shown only once:
    only its hash is stored."""
    user = services.find_user(email)
    if user is None:
        fail(f"No user with the email address {email!r}.")
    if not user.active:
        fail(f"The account {user.email} is deactivated; its tokens would not work.")
    try:
        _, secret = services.create_token(user, name)
    except LabbookError as error:
        fail_with(error)
    db.session.commit()
    click.echo(f"API token {name!r} for {user.email}. Store it now; it cannot be shown again:")
    click.echo(secret)
