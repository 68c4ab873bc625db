"""Invitation and enrollment portal."""

from __future__ import annotations

import sqlite3

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

import config as settings

from . import extensions
from .extensions import csrf, db, limiter, login_manager


def create_app(test_config: dict | None = None) -> Flask:
    """With test_config: a testing app that ignores the environment; else PORTAL_ENV's."""
    config = settings.load(test_config)
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_path=config["INSTANCE_PATH"],
        instance_relative_config=True,
    )
    app.config.update(config)
    trust_proxies(app)
    register_converters(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_template_helpers(app)
    register_commands(app)
    return app


def trust_proxies(app: Flask) -> None:
    """Behind N proxies, take the client's address, scheme and host from their X-Forwarded-*."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops, x_prefix=hops)


def register_converters(app: Flask) -> None:
    """Before any route exists: every `<int:...>` is bounded to what the database can hold."""
    from .numbers import BoundedIntConverter

    app.url_map.converters["int"] = BoundedIntConverter


def register_extensions(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Copies: the class-level dict is shared by every app made in this process.
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["connect_args"] = {"timeout": 30, **options.get("connect_args", {})}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    extensions.mail.init_app(app)  # not `mail`: that name is the portal.mail package
    limiter.init_app(app)
    from .security import headers

    headers.init_app(app)

    from . import models  # noqa: F401  (register every table with the metadata)
    from .auth.sessions import load_signed_in_user

    login_manager.user_loader(load_signed_in_user)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"


def register_blueprints(app: Flask) -> None:
    from .account.routes import bp as account_bp
    from .admin import bp as admin_bp
    from .admin.instance import bp as instance_bp
    from .auth.routes import bp as auth_bp
    from .health import bp as health_bp
    from .sources.routes import bp as sources_bp
    from .wizard.routes import bp as wizard_bp

    for blueprint in (auth_bp, admin_bp, instance_bp, wizard_bp, account_bp, health_bp,
                      sources_bp):
        app.register_blueprint(blueprint)
    from . import api

    api.init_app(app)


def register_errorhandlers(app: Flask) -> None:
    from .errors import register

    register(app)


def register_template_helpers(app: Flask) -> None:
    from .templating import register

    register(app)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once; foreign keys are off in SQLite by default."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: no fsync per commit
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
