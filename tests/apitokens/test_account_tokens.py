"""API tokens on the account page: made within your permissions, shown once, revoked."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import ApiToken

from ..conftest import submit
from ..helpers import bearer, signed_in


def test_create_shows_the_secret_once_then_revoke(app, admin):
    client = signed_in(app)
    page = submit(client, "/account/api-tokens", {"name": "HR sync", "scopes": ["audit:view"],
                                                  "lifetime": "30"}, page_url="/account/")
    html = page.get_data(as_text=True)
    secret = re.search(r'id="api-token-secret">([^<]+)<', html).group(1)
    assert app.test_client().get("/api/v1/audit-events/", headers=bearer(secret)).status_code == 200
    listing = client.get("/account/").get_data(as_text=True)
    assert "HR sync" in listing and secret not in listing
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    submit(client, f"/account/api-tokens/{token_id}/revoke", {}, page_url="/account/")
    assert app.test_client().get("/api/v1/audit-events/", headers=bearer(secret)).status_code == 401


def test_a_scope_beyond_yours_is_refused(app, admin):
    from ..helpers import make_member

    make_member(app, "nina", permissions=["audit:view"])
    client = signed_in(app, "nina")
    page = submit(client, "/account/api-tokens", {"name": "x", "scopes": ["users:manage"],
                                                  "lifetime": "30"}, page_url="/account/")
    assert page.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(ApiToken.id)) is None
