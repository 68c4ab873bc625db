"""Unbound extensions; the app factory binds them with init_app."""

import os

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints so Alembic migrations are stable across SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def bind_migrations(app: Flask):
    """Flask-Migrate, bound to `app` on first use and returned (its config in
    app.extensions["migrate"]). Importing it imports Alembic (about 10 MiB per process), which
    only `flask db` and the tests' upgrades need, never a worker serving requests."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        from .models.types import include_migration_object, render_migration_item

        Migrate(app, db, directory=os.path.join(app.root_path, "..", "migrations"),
                render_as_batch=True, render_item=render_migration_item,
                include_object=include_migration_object)
    return app.extensions["migrate"]
