"""``flask --app labbook closures ...``: import facility closures from iCalendar."""
from __future__ import annotations

import click
from flask.cli import AppGroup

closures_cli = AppGroup("closures", help="Facility closures (holidays) from iCalendar files.")


@closures_cli.command("import")
def import_command() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
