"""``flask --app labbook scheduler``: run the scheduler process (see runner.py)."""
from __future__ import annotations

import click


@click.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduler (one elected process runs the timed jobs)."""
    raise click.ClickException("not built yet")
