"""Migration 0009_api: a 0008 database upgrades, keeps its users, and can hold tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_migrate import upgrade

from portal import apitokens, create_app
from portal.auth.service import authenticate, create_user
from portal.extensions import db
from portal.models import utcnow

from ..conftest import TEST_PASSWORD, database_url


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrade_from_0008_keeps_users_and_adds_tokens(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0008")
        create_user(username="old", email="old@example.com", password=TEST_PASSWORD,
                    superuser=True)
        db.session.remove()
        upgrade()
        try:
            old = authenticate("old", TEST_PASSWORD)
            assert old is not None
            token, secret = apitokens.issue(old, name="after upgrade", scopes=["superuser"],
                                            expires_at=utcnow() + timedelta(days=1))
            assert apitokens.authenticate(secret).id == token.id
        finally:
            db.session.remove()
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()
