"""Errors, settings and migrations."""

from __future__ import annotations

import os
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

import config as settings
from config import parse_duration
from portal import create_app
from portal.extensions import db
from portal.models import User
from portal.models.types import include_migration_object

from .conftest import database_url
from .helpers import upgrade


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


def test_the_testing_app_ignores_the_operators_environment(tmp_path, monkeypatch):
    """Every setting the environment may set, set to something else: a testing app sees none."""
    names = settings.environment_settings()
    assert {"BASE_URL", "DATABASE_URL", "SECRET_KEY", "MAIL_SERVER", "MAIL_PORT",
            "RATELIMIT_STORAGE_URI", "INSTANCE_PATH", "TRUSTED_HOSTS"} <= set(names)
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PORTAL_ENV", raising=False)
    clean = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})

    hostile = {name: HOSTILE_ENVIRONMENT.get(name) or _other(kind, getattr(settings.Config, name))
               for name, kind in names.items()}
    for name, value in {**hostile, "PORTAL_ENV": "production"}.items():
        monkeypatch.setenv(name, value)
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})

    for name in (*names, "SQLALCHEMY_DATABASE_URI", "PORTAL_ENV"):
        assert app.config[name] == clean.config[name], name
    assert app.config["BASE_URL"] == "http://portal.test"
    assert app.config["TRUSTED_HOSTS"] == ["portal.test"]
    assert app.config["MAIL_SERVER"] == "" and app.config["MAIL_PORT"] == 25
    assert app.config["SECRET_KEY"] == settings.TestingConfig.SECRET_KEY
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == settings.normalise_database_url(database_url(tmp_path))
    assert app.instance_path == str(settings.BASE_DIR / "instance")
    assert app.config["INVITATION_EXPIRE_AFTER_DELTA"].days == 7
    for app_ in (clean, app):
        with app_.app_context():
            db.engine.dispose()


HOSTILE_ENVIRONMENT = {
    "BASE_URL": "http://elsewhere.invalid", "DATABASE_URL": "sqlite:////nonexistent/x.db",
    "SECRET_KEY": "from-the-shell", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": "9",
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0", "INSTANCE_PATH": "/nonexistent/instance",
    "TRUSTED_HOSTS": "elsewhere.invalid", "INVITATION_EXPIRE_AFTER": "P1D",
    "FLOW_SESSION_LIFETIME": "PT1M", "SETUP_LINK_LIFETIME": "PT1M",
}


def _other(kind: type, default) -> str:
    """An environment value unlike the setting's default."""
    if kind is bool:
        return "false" if default else "true"
    if kind is int:
        return str((default or 0) + 7)
    return "from-the-shell"


def _production_environment(monkeypatch, tmp_path, **values):
    """A shell that sets exactly these settings, everything else left to the defaults."""
    for name in settings.environment_settings():
        monkeypatch.delenv(name, raising=False)
    base = {"INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}", "PORTAL_ENV": "production"}
    for name, value in {**base, **values}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize("base_url", [None, "", "   "])
def test_production_without_base_url_refuses_to_start(tmp_path, monkeypatch, base_url):
    _production_environment(monkeypatch, tmp_path, BASE_URL=base_url)
    with pytest.raises(RuntimeError, match=r"^BASE_URL is not set\. In production every emailed link"):
        create_app()
    assert not (tmp_path / "instance").exists()  # failed before writing anything


def test_production_is_the_default_environment(tmp_path, monkeypatch):
    _production_environment(monkeypatch, tmp_path, PORTAL_ENV=None)
    with pytest.raises(RuntimeError, match=r"^BASE_URL is not set"):
        create_app()


@pytest.mark.parametrize("base_url", ["portal.example.com", "ftp://portal.example.com",
                                      "https://portal.example.com/?x=1", "https://"])
def test_a_base_url_that_is_not_an_address_refuses_to_start(tmp_path, monkeypatch, base_url):
    _production_environment(monkeypatch, tmp_path, BASE_URL=base_url)
    with pytest.raises(RuntimeError, match=r"^BASE_URL=.* must look like https://portal\.example\.com$"):
        create_app()


def test_production_reads_the_environment_and_serves_only_base_urls_host(tmp_path, monkeypatch):
    _production_environment(monkeypatch, tmp_path, BASE_URL="https://Portal.Example.com/",
                            TRUSTED_HOSTS="portal-internal.example", MAIL_SERVER="smtp.example.com",
                            MAIL_PORT="2525", MAIL_USE_TLS="yes", RATELIMIT_ENABLED="false")
    app = create_app()
    assert app.config["PORTAL_ENV"] == "production" and not app.testing
    assert app.config["BASE_URL"] == "https://Portal.Example.com"
    assert app.config["TRUSTED_HOSTS"] == ["portal.example.com", "portal-internal.example"]
    assert (app.config["MAIL_SERVER"], app.config["MAIL_PORT"], app.config["MAIL_USE_TLS"]) == (
        "smtp.example.com", 2525, True)
    assert app.config["RATELIMIT_ENABLED"] is False
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'portal.db'}"
    assert app.instance_path == str(tmp_path / "instance")
    assert (tmp_path / "instance" / "secret_key").read_text().strip() == app.config["SECRET_KEY"]
    client = app.test_client()
    assert client.get("/livez", base_url="https://portal.example.com").status_code == 200
    assert client.get("/livez", base_url="http://portal-internal.example:8000").status_code == 200
    refused = client.get("/livez", base_url="https://evil.example")
    assert refused.status_code == 400 and "Unknown address" in refused.get_data(as_text=True)


def test_a_setting_that_is_not_a_number_refuses_to_start(tmp_path, monkeypatch):
    _production_environment(monkeypatch, tmp_path, BASE_URL="https://portal.example.com",
                            MAIL_PORT="twenty-five")
    with pytest.raises(RuntimeError, match=r"^MAIL_PORT='twenty-five' is not a whole number$"):
        create_app()


def test_development_links_point_at_make_runs_port(tmp_path, monkeypatch):
    """`make run` sets PORTAL_ENV=development and PORT; nothing else is needed."""
    _production_environment(monkeypatch, tmp_path, PORTAL_ENV="development", PORT="5077")
    app = create_app()
    assert app.config["BASE_URL"] == "http://127.0.0.1:5077"
    assert app.config["TRUSTED_HOSTS"] == ["127.0.0.1", "localhost"]
    with app.app_context():
        db.create_all()
    result = app.test_cli_runner().invoke(args=["setup-link"])
    assert result.exit_code == 0, result.output
    link = re.search(r"^  (http://\S+)$", result.output, re.M).group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:5077/auth/setup\?token=\S+", link), link
    client = app.test_client()
    assert client.get("/livez", base_url="http://localhost:5077").status_code == 200
    assert client.get("/livez", base_url="http://evil.example:5077").status_code == 400
    with app.app_context():
        db.engine.dispose()


def test_an_unknown_portal_env_refuses_to_start(tmp_path, monkeypatch):
    _production_environment(monkeypatch, tmp_path, PORTAL_ENV="staging")
    with pytest.raises(RuntimeError, match=r"^PORTAL_ENV='staging': use one of development, production$"):
        create_app()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migration_0007_keeps_existing_users_signing_in(tmp_path):
    """Users from before session generations start at 0 and sign in as before."""
    from portal.security.passwords import hash_password

    from .conftest import TEST_PASSWORD
    from .helpers import insert_old_user, signed_in, upgraded_from

    with upgraded_from(tmp_path, "0006",
                       lambda c: insert_old_user(c, "old", hash_password(TEST_PASSWORD))) as app:
        with app.app_context():
            user = db.session.scalar(db.select(User).filter_by(username="old"))
            assert user.session_generation == 0
        assert signed_in(app, "old").get("/account/").status_code == 200


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migration_0009_perf_makes_existing_invitations_searchable(tmp_path):
    """Invitations from before the FTS5 table are found after the upgrade (SQLite), and the
    list works as before on both databases; a downgrade removes the table and its triggers."""
    from sqlalchemy import text

    from .helpers import downgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0008")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO flows (slug, name, title, designation, authentication, created_at) "
                "VALUES ('f', 'f', 'f', 'enrollment', 'none', CURRENT_TIMESTAMP)"))
            connection.execute(text(
                "INSERT INTO invitations (name, token_salt, token_digest, flow_id, attributes, "
                "single_use, use_count, created_at, email, cc, bcc, message, allowed_domains) "
                "SELECT 'Before the upgrade', 's', 'd', id, '{}', false, 0, CURRENT_TIMESTAMP, "
                "'early@example.com', '[]', '[]', '', '[]' FROM flows"))
        upgrade()
        try:
            from portal.invitations import search, service

            search.forget_fts()
            found = db.session.scalars(service.list_query(search="the upgrade")).all()
            assert [i.name for i in found] == ["Before the upgrade"]
            assert db.session.scalars(service.list_query(search="early@")).all() == found
            if db.engine.dialect.name == "sqlite":
                assert "invitations_fts" in str(service.list_query(search="the upgrade")
                                                .compile(db.engine))
                db.session.remove()
                downgrade(revision="0008")
                with db.engine.connect() as connection:
                    left = connection.exec_driver_sql(
                        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'invitations_fts%'"
                    ).scalar()
                assert left == 0
        finally:
            search.forget_fts()
            db.session.remove()
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()


def test_a_serving_app_leaves_migrations_and_sso_libraries_unimported(tmp_path):
    """Steady worker memory (issue 10): Alembic, Authlib/requests/joserfc and cryptography are
    imported when first needed (`flask db`, an SSO sign-in, sealing a value), not with the app;
    together about 28 MiB per worker."""
    import subprocess
    import sys

    script = (
        "import sys; from portal import create_app; "
        f"create_app({{'SQLALCHEMY_DATABASE_URI': 'sqlite:///{tmp_path / 'x.db'}'}}); "
        "print(sorted(m for m in ('alembic', 'flask_migrate', 'authlib', 'requests', 'joserfc',"
        " 'cryptography', 'segno', 'zxcvbn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,  # noqa: S603
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)),
                         env={**os.environ, "PORTAL_ENV": "testing"})
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_flask_db_commands_bind_migrations_when_asked(tmp_path):
    from alembic.script import ScriptDirectory

    from .helpers import _empty_database

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    assert "migrate" not in app.extensions
    try:
        with app.app_context():
            _empty_database()
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert app.extensions["migrate"].directory.endswith("migrations")
        head = ScriptDirectory(app.extensions["migrate"].directory).get_current_head()
        with app.app_context():
            assert db.session.scalar(db.text("SELECT version_num FROM alembic_version")) == head
    finally:
        with app.app_context():  # no connection left for the garbage collector to find open
            db.session.remove()
            _empty_database()
            db.engine.dispose()
