"""Helpers shared by the tests: one home, so no test module imports from another.

Shared fixtures live in conftest.py.
"""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import flask_migrate
from flask import current_app
from sqlalchemy import JSON, DateTime, bindparam, select, text

from portal import create_app
from portal.auth import service as accounts
from portal.auth.service import create_user
from portal.extensions import bind_migrations, db
from portal.invitations import service
from portal.models import Flow, Group, Role

from .conftest import TEST_PASSWORD, csrf_from, database_url, numbers_in, path_of, submit
from .flowkit import make_flow
from .mailserver import SmtpServer, text_of


def flow_option_id(html: str) -> str:
    return re.search(r'<option [^>]*value="(\d+)"', html).group(1)


def future_input(days=3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


IMPORT = "/admin/flows/import"


def upload_blueprint(client, *, text: str | None = None, filename: str = "blueprint.yaml", content=None):
    page = client.get(IMPORT).get_data(as_text=True)
    data: dict = {"csrf_token": csrf_from(page)}
    if content is not None:
        data["file"] = (io.BytesIO(content), filename)
    if text is not None:
        data["text"] = text
    return client.post(IMPORT, data=data, content_type="multipart/form-data")


NEW_PASSWORD = "violet-kettle-harbour-42"


def complete_wizard(client, link_path, *, username="newbie", name="Nia Newbie",
                    email="nia@example.com"):
    """Open the link and fill both prompt pages; returns the last response."""
    page = client.get(link_path, follow_redirects=True)
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (1, 2)
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": username, "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (2, 2), page.get_data(as_text=True)
    return submit(client, "/if/flow/default-enrollment-flow/", {"name": name, "email": email})


def make_member(app, username: str, *, permissions=(), namespaces=(), superuser_group=False) -> None:
    """A user whose only access is one group with one role."""
    with app.app_context():
        user = create_user(username=username, email=f"{username}@example.com", password=TEST_PASSWORD)
        group = Group(name=f"{username}-group", attributes={}, is_superuser=superuser_group)
        if permissions:
            group.roles.append(Role(name=f"{username}-role", permissions=list(permissions),
                                    namespaces=list(namespaces)))
        user.groups.append(group)
        db.session.commit()


def one_prompt_flow(app, **prompt) -> str:
    prompt.setdefault("field_key", "answer")
    return make_flow(app, "probe", [{"type": "prompt", "name": "probe-page", "prompts": [prompt]}])


def post(client, url, data, *, files=None):
    """Open the page (starting the flow), then post it as the browser would."""
    html = client.get(url).get_data(as_text=True)
    binding = re.search(r'name="binding" value="(\d+)"', html).group(1)
    payload = {"csrf_token": csrf_from(html), "binding": binding, **data, **(files or {})}
    return client.post(url, data=payload, follow_redirects=True,
                       content_type="multipart/form-data" if files else None)


def file_flow(app, **options):
    return one_prompt_flow(app, type="file", required=True,
                           options={"max_size": 1024, "allowed_types": [".pdf", "image/*"], **options})


def upload(name: str, content: bytes):
    return {"answer": (io.BytesIO(content), name)}


def signed_in(app, login="admin", password=TEST_PASSWORD):
    from .conftest import sign_in

    client = app.test_client()
    response = sign_in(client, login, password, follow_redirects=False)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def replaying_client(client):
    """A thief's browser holding a copy of the cookie (it keeps what the server sends back)."""
    thief = client.application.test_client()
    thief.set_cookie("session", client.get_cookie("session", domain="portal.test").value,
                     domain="portal.test")
    return thief


ENROLLMENT_URL = "/if/flow/default-enrollment-flow/"


class Inbox(SmtpServer):
    """The shared test SMTP server, read as a list of messages with their verification link."""

    @property
    def messages(self):
        return [message for _, message in super().messages]

    def link(self, index=-1) -> str:
        text = text_of(self.messages[index])
        return re.search(r"http://\S+/stage/\d+/verify\?token=\S+", text).group(0)


def reach_email_stage(app, client):
    client.get(path_of(app.config["TEST_LINK"]))
    submit(client, ENROLLMENT_URL, {"username": "verifier", "password": NEW_PASSWORD,
                                    "password_repeat": NEW_PASSWORD})
    return submit(client, ENROLLMENT_URL, {"name": "Vera", "email": "vera@example.com"})


def invitation_flow_id(client) -> str:
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    return re.search(r'<select[^>]*name="flow".*?<option [^>]*value="(\d+)"', html, re.S).group(1)


def add_invitations(app, count: int) -> None:
    """Invitations by different creators, so a lazy load per row would show."""
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        for n in range(count):
            creator = accounts.create_user(username=f"creator{n}-{count}", email=f"c{n}@example.com",
                                           password=TEST_PASSWORD) if n % 2 else None
            service.create_invitation(name=f"inv {count}-{n}", flow=flow, expires_at=None,
                                      created_by=creator)


# -- existing accounts and invitations (accepting) ------------------------------------------------


def existing_user(app, username: str, *, email: str | None = None, verified: bool = True) -> int:
    """An account that exists before the invitation; `verified`: its address is proven."""
    with app.app_context():
        user = create_user(username=username, email=email or f"{username}@example.com",
                           password=TEST_PASSWORD, name=username.capitalize())
        if verified:
            accounts.mark_email_verified(user, user.email)
            db.session.commit()
        return user.id


def invitation_group(app, name: str = "engineering", *, role_namespaces=("eng",)) -> int:
    """A group with one namespace-limited role, for invitations to give."""
    with app.app_context():
        group = Group(name=name, attributes={}, roles=[Role(
            name=f"{name}-editor", permissions=["flows:manage"], namespaces=list(role_namespaces))])
        db.session.add(group)
        db.session.commit()
        return group.id


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    import pyotp

    from portal.models import utcnow

    return pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30 * steps_ahead))


def enrol_totp(app, user_id: int) -> str:
    """A confirmed authenticator for the person (its first code used now); its secret."""
    from portal import mfa
    from portal.models import User

    with app.app_context():
        enrolment = mfa.begin_totp(db.session.get(User, user_id))
        assert mfa.confirm_totp(enrolment.device, totp_code(enrolment.secret))
        return enrolment.secret


# -- upgrades: a database built by an older revision, filled with that schema's SQL --------------


def _empty_database() -> None:
    db.session.remove()
    db.drop_all()
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def upgrade(revision: str = "head") -> None:
    """`flask db upgrade` in the current app (which binds Flask-Migrate only on first use)."""
    bind_migrations(current_app)
    flask_migrate.upgrade(revision=revision)


def downgrade(revision: str) -> None:
    bind_migrations(current_app)
    flask_migrate.downgrade(revision=revision)


def stamp(revision: str = "head") -> None:
    bind_migrations(current_app)
    flask_migrate.stamp(revision=revision)


@contextmanager
def upgraded_from(tmp_path, revision: str, fill):
    """An app whose database `flask db upgrade <revision>` built, `fill(connection)` filled with
    raw SQL of that revision's schema (see old_sql), and `flask db upgrade` then brought to head.
    No app context is left pushed (requests would share its `g`); the database is emptied
    afterwards, on SQLite and PostgreSQL alike."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    try:
        with app.app_context():
            _empty_database()
            upgrade(revision=revision)
            with db.engine.begin() as connection:
                fill(connection)
            upgrade()
        yield app
    finally:
        with app.app_context():
            _empty_database()
            db.engine.dispose()

def old_sql(connection, statement: str, **values):
    """Run one statement of an old schema; datetimes and JSON values are bound as the columns
    store them (a JSON column takes a dict or list, a datetime column an aware datetime)."""
    query = text(statement).bindparams(*(
        bindparam(name, type_=DateTime(timezone=True) if isinstance(value, datetime) else JSON)
        for name, value in values.items() if isinstance(value, datetime | dict | list)))
    return connection.execute(query, values)


def insert_old_user(connection, username: str, password_hash: str, *, superuser=False) -> int:
    """A user row as every revision since 0001 has it (later columns take their defaults)."""
    return old_sql(connection,
                   "INSERT INTO users (username, name, email, password_hash, attributes, active, "
                   "is_superuser, type, path, created_at) VALUES (:username, :name, :email, :hash, "
                   ":attributes, true, :superuser, 'internal', 'users', :created) RETURNING id",
                   username=username, name=username.title(), email=f"{username}@example.com",
                   hash=password_hash, attributes={}, superuser=superuser,
                   created=datetime(2026, 11, 1, tzinfo=UTC)).scalar_one()



def api_token(app, username: str = "admin", scopes=("superuser",), name: str = "script",
              days: int = 30, tenant: str | None = None) -> str:
    """An API token's secret for this user (through the service, as the account page makes it),
    in the tenant with slug `tenant` (default: the default tenant)."""
    from portal import apitokens
    from portal.models import Tenant, User, utcnow

    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        where = db.session.scalar(select(Tenant).filter_by(slug=tenant)) if tenant else None
        _token, secret = apitokens.issue(user, name=name, scopes=list(scopes), tenant=where,
                                         expires_at=utcnow() + timedelta(days=days))
        return secret


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def limited_lead(app) -> int:
    """Tenant Beta: "lead" may invite everywhere but read the audit log only in sales; roles
    auditor (audit:view anywhere), sales-auditor (in sales), flows-boss (flows:manage)."""
    with app.app_context():
        from portal import tenants as _tenants

        beta = _tenants.create_tenant(name="Beta", slug="beta")
        _tenants.use_tenant(beta)
        lead = accounts.create_user(username="lead", email="lead@example.com", password=TEST_PASSWORD)
        lead.groups.append(Group(name="leads", attributes={}, roles=[
            Role(name="inviter", permissions=["invitations:manage"]),
            Role(name="sales-reader", permissions=["audit:view"], namespaces=["sales"])]))
        db.session.add_all([Role(name="auditor", permissions=["audit:view"]),
                            Role(name="sales-auditor", permissions=["audit:view"], namespaces=["sales"]),
                            Role(name="flows-boss", permissions=["flows:manage"])])
        db.session.commit()
        return beta.id
