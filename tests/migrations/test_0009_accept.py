"""migrations/versions/0009_accept: existing rows keep working, and the new rules hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from portal import create_app
from portal.auth.service import verified_email
from portal.extensions import db
from portal.flows.defaults import ensure_default_enrollment_flow
from portal.invitations import service
from portal.models import InvitationUse, User
from portal.security.passwords import hash_password

from ..conftest import TEST_PASSWORD, database_url, sign_in
from ..helpers import downgrade, upgrade

# SQLite's batch copies in earlier revisions reflect the users table (see 0007).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index")


@pytest.fixture
def app_at_0008(tmp_path):
    """A database of the previous version with one account in it."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0008")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO users (username, name, email, password_hash, attributes, active, "
                "is_superuser, type, path, created_at, session_generation) VALUES ('old', '', "
                "'old@example.com', :hash, '{}', true, false, 'internal', 'users', :now, 0)"),
                {"hash": hash_password(TEST_PASSWORD), "now": datetime.now(UTC)})
        db.session.remove()
        try:
            yield app
        finally:
            db.session.remove()
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS invitation_declines")
                connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()


def test_upgrading_keeps_accounts_who_sign_in_and_accept_as_before(app_at_0008):
    app = app_at_0008
    with app.app_context():
        upgrade()
        old = db.session.scalar(db.select(User).filter_by(username="old"))
        assert old.verified_email is None and verified_email(old) is None  # nothing proven yet
        flow = ensure_default_enrollment_flow()
        invitation = service.create_invitation(name="open", flow=flow, max_uses=3,
                                               expires_at=datetime.now(UTC) + timedelta(days=1))
        assert isinstance(service.grant_access(old, invitation), service.Granted)
        # One use per account, kept by the new unique index.
        db.session.add(InvitationUse(invitation_id=invitation.id, user_id=old.id))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
    client = app.test_client()
    assert sign_in(client, "old", TEST_PASSWORD, follow_redirects=False).status_code == 302
    assert client.get("/account/").status_code == 200


def test_downgrading_and_upgrading_again_keeps_the_account(app_at_0008):
    app = app_at_0008
    with app.app_context():
        upgrade()
        downgrade(revision="0008")
        upgrade()
        assert db.session.scalar(db.select(User).filter_by(username="old")).email == "old@example.com"
