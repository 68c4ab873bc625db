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
