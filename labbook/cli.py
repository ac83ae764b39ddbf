"""Command-line entry points, registered on ``flask --app labbook``."""
from __future__ import annotations

from flask import Flask


def init_cli(app: Flask) -> None:
    pass
