"""labbook: booking and lab management for shared research infrastructure.

``create_app`` only wires things together: no migrations, no scheduler and no network
work happen here or at import time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from config import CONFIGS, INSTANCE_DIR


def create_app(config: Any = None) -> Flask:
    """Build the application.

    :param config: a config class or object, a mapping of overrides, or ``None`` to pick
        the class named by ``LABBOOK_ENV`` (``development`` by default).
    :raises RuntimeError: in production when ``LABBOOK_SECRET_KEY`` is not set.
    """
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    register_config(app, config)
    register_extensions(app)
    register_i18n(app)
    register_security(app)
    register_blueprints(app)
    register_template_helpers(app)
    register_commands(app)
    register_errors(app)
    return app


def register_config(app: Flask, config: Any) -> None:
    if config is None or isinstance(config, dict):
        env = os.environ.get("LABBOOK_ENV", "development")
        app.config.from_object(CONFIGS.get(env, CONFIGS["development"]))
        if isinstance(config, dict):
            app.config.update(config)
    else:
        app.config.from_object(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)


def _instance_secret(app: Flask) -> str:
    """Development convenience: the key ``make run`` wrote to instance/secret_key."""
    if app.config.get("HSTS"):
        raise RuntimeError("LABBOOK_SECRET_KEY must be set in production")
    path = Path(app.instance_path) / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    app.logger.warning("no LABBOOK_SECRET_KEY and no instance/secret_key: sessions will not "
                       "survive a restart")
    return os.urandom(32).hex()


def register_extensions(app: Flask) -> None:
    from labbook.extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    _import_models()


def _import_models() -> None:
    """Import every model module so the metadata (and Alembic) sees all tables."""
    import labbook.audit  # noqa: F401
    import labbook.auth.models  # noqa: F401
    import labbook.billing.models  # noqa: F401
    import labbook.bookings.models  # noqa: F401
    import labbook.care.models  # noqa: F401
    import labbook.feeds.models  # noqa: F401
    import labbook.instruments.models  # noqa: F401
    import labbook.notifications.models  # noqa: F401
    import labbook.scheduler.models  # noqa: F401
    import labbook.teams.models  # noqa: F401


def register_i18n(app: Flask) -> None:
    from labbook.i18n import init_babel

    init_babel(app)


def register_security(app: Flask) -> None:
    from labbook.auth.security import init_security

    init_security(app)


def register_blueprints(app: Flask) -> None:
    from labbook.admin import bp as admin_bp
    from labbook.api import bp as api_bp
    from labbook.api import load_routes
    from labbook.auth import bp as auth_bp
    from labbook.bookings import bp as bookings_bp
    from labbook.billing import bp as billing_bp
    from labbook.care import bp as care_bp
    from labbook.feeds import bp as feeds_bp
    from labbook.instruments import bp as instruments_bp
    from labbook.notifications import bp as notifications_bp
    from labbook.scheduler import bp as scheduler_bp
    from labbook.teams import bp as teams_bp

    load_routes()
    for blueprint in (
        auth_bp, instruments_bp, teams_bp, admin_bp, bookings_bp, billing_bp,
        notifications_bp, scheduler_bp, feeds_bp, care_bp,
    ):
        app.register_blueprint(blueprint)
    app.register_blueprint(api_bp, url_prefix="/api/v1")


def register_template_helpers(app: Flask) -> None:
    from labbook.templating import init_templating

    init_templating(app)


def register_commands(app: Flask) -> None:
    from labbook.cli import init_cli

    init_cli(app)


def register_errors(app: Flask) -> None:
    from labbook.errors import register_error_handlers

    register_error_handlers(app)
