"""Errors, settings and migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy.exc import IntegrityError

from config import parse_duration
from portal import create_app
from portal.extensions import db
from portal.models import User
from portal.models.types import include_migration_object

from .conftest import database_url


def test_error_pages_use_the_portal_look(app, client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Invitation portal" in response.get_data(as_text=True)


def test_unexpected_errors_are_a_500_page_without_traceback(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in html and "secret internals" not in html
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("value,days", [("P7D", 7), ("P30D", 30), ("PT36H", 1.5)])
def test_iso_durations(value, days):
    assert parse_duration("X", value).total_seconds() == days * 86400


@pytest.mark.parametrize("value", ["7 days", "P-1D", "PT0S"])
def test_bad_durations_fail_loudly(value):
    with pytest.raises(RuntimeError):
        parse_duration("INVITATION_EXPIRE_AFTER", value)


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrations_build_the_schema_the_models_describe(tmp_path):
    """From empty to head, then no difference between the database and the models."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_migration_object})
            diff = compare_metadata(context, db.metadata)
        assert diff == []
        # The case-insensitive username index (written by hand in the migration) is there.
        db.session.add(User(username="Sam", attributes={}))
        db.session.commit()
        db.session.add(User(username="sAM", attributes={}))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migration_0007_keeps_existing_users_signing_in(tmp_path):
    """Users from before session generations start at 0 and sign in as before."""
    from sqlalchemy import text

    from portal.security.passwords import hash_password

    from .conftest import TEST_PASSWORD, submit

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0006")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO users (username, name, email, password_hash, attributes, active, "
                "is_superuser, type, path, created_at) VALUES ('old', '', 'old@example.com', :h, "
                "'{}', true, false, 'internal', 'users', CURRENT_TIMESTAMP)"),
                {"h": hash_password(TEST_PASSWORD)})
        upgrade()
        try:
            user = db.session.scalar(db.select(User).filter_by(username="old"))
            assert user.session_generation == 0
            client = app.test_client()
            response = submit(client, "/auth/login", {"login": "old", "password": TEST_PASSWORD},
                              follow_redirects=False)
            assert response.status_code == 302
            assert client.get("/account/").status_code == 200
        finally:
            db.session.remove()
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()
