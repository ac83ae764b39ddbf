"""``flask --app labbook scheduler``: run the scheduler process (see runner.py).

Start one or several (for failover) beside the web workers, under a process manager; see
docs/scheduler.md. ``--list`` prints the job table, ``--run JOB_ID`` runs one job once in
this process (no election: the jobs are safe to run beside a running scheduler).
"""
from __future__ import annotations

import logging
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from flask.logging import default_handler

from labbook.scheduler.registry import JOB_IDS, IntervalError, JobSpec, job_table

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """One handler (stderr, where process managers collect it) for every logger, unless
    logging is configured already; Flask's own handler removed so that lines are not
    written twice."""
    current_app.logger.removeHandler(default_handler)
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    # APScheduler says "Adding job ..." and "Running job ..." at INFO for every job and
    # every run; runner.py logs what matters. Its warnings (misfires) always show.
    if level != "debug":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _print_jobs(jobs: tuple[JobSpec, ...]) -> None:
    for job in jobs:
        click.echo(f"{job.id:<22} every {job.seconds:g} s  {job.target}")


@click.command("scheduler")
@click.option("--list", "list_jobs", is_flag=True, help="Print the job table and exit.")
@click.option("--run", "run_once", metavar="JOB_ID", type=click.Choice(JOB_IDS),
              help="Run one job once in this process, print its result and exit.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@with_appcontext
def scheduler_command(list_jobs: bool, run_once: str | None, log_level: str) -> None:
    """Run the scheduler (one elected process runs the timed jobs; run several for
    failover). Stops cleanly on SIGTERM or Ctrl-C."""
    from labbook.scheduler.runner import Runner, execute, install_signal_handlers

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        jobs = job_table(app.config)
    except IntervalError as error:
        raise click.ClickException(str(error)) from error
    if list_jobs:
        _print_jobs(jobs)
        return
    configure_logging(log_level)
    if run_once:
        outcome = execute(app, run_once)
        if not outcome.ok:
            raise click.ClickException(f"{run_once} failed: {outcome.error}")
        click.echo(f"{run_once}: {outcome.result}")
        return
    try:
        runner = Runner.for_app(app, jobs)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    install_signal_handlers(runner.stop)
    runner.run()
