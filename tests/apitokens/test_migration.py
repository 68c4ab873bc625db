"""Migration 0009_api: a 0008 database upgrades, keeps its users, and can hold tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import apitokens
from portal.auth.service import authenticate
from portal.models import utcnow
from portal.security.passwords import hash_password

from ..conftest import TEST_PASSWORD
from ..helpers import insert_old_user, upgraded_from


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrade_from_0008_keeps_users_and_adds_tokens(tmp_path):
    old_install = upgraded_from(tmp_path, "0008", lambda c: insert_old_user(
        c, "old", hash_password(TEST_PASSWORD), superuser=True))
    with old_install as app, app.app_context():
        old = authenticate("old", TEST_PASSWORD)
        assert old is not None
        token, secret = apitokens.issue(old, name="after upgrade", scopes=["superuser"],
                                        expires_at=utcnow() + timedelta(days=1))
        assert apitokens.authenticate(secret).id == token.id


def _old_token(connection, user_id: int, secret: str) -> None:
    from portal.security.tokens import digest

    from ..helpers import old_sql

    old_sql(connection, "INSERT INTO api_tokens (user_id, name, prefix, digest, scopes, created_at, "
                        "expires_at, last_used_ip) VALUES (:user, 'old script', 'ptk_old', :digest, "
                        ":scopes, :created, :expires, '')",
            user=user_id, digest=digest(secret), scopes=["superuser"], created=utcnow(),
            expires=utcnow() + timedelta(days=30))


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrade_from_0009_tenants_puts_existing_tokens_in_the_default_tenant(tmp_path):
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import ApiToken
    from portal.tenants import default_tenant

    secret = "ptk_" + "o" * 43
    old_install = upgraded_from(tmp_path, "0009_tenants", lambda c: _old_token(
        c, insert_old_user(c, "old", hash_password(TEST_PASSWORD), superuser=True), secret))
    with old_install as app:
        with app.app_context():
            token = db.session.scalar(select(ApiToken))
            assert token.tenant_id == default_tenant().id
            assert apitokens.tenant_of(token).slug == "default"
        listed = app.test_client().get("/api/v1/invitations/",
                                       headers={"Authorization": f"Bearer {secret}"})
        assert listed.status_code == 200 and listed.get_json()["total"] == 0
