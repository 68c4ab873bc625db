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


def test_the_token_is_made_for_the_chosen_tenant_only_where_you_hold_the_scopes(app, admin):
    from portal import tenants
    from portal.auth import service as accounts
    from portal.models import Group, Role

    from ..conftest import TEST_PASSWORD

    with app.app_context():
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        lead = accounts.create_user(username="lead", email="lead@example.com", password=TEST_PASSWORD)
        lead.groups.append(Group(name="leads", attributes={}, roles=[
            Role(name="auditors", permissions=["audit:view"])]))
        db.session.commit()
        beta_id = beta.id
    client = signed_in(app, "lead")
    page = client.get("/account/").get_data(as_text=True)
    assert 'value="beta"' in page  # the only tenant where the lead holds something
    made = submit(client, "/account/api-tokens", {"name": "beta audit", "scopes": ["audit:view"],
                                                  "tenant": "beta", "lifetime": "30"},
                  page_url="/account/")
    assert made.status_code == 200
    refused = submit(client, "/account/api-tokens", {"name": "home", "scopes": ["audit:view"],
                                                     "tenant": "default", "lifetime": "30"},
                     page_url="/account/")
    assert refused.status_code == 422 and "Choose one of the tenants" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(ApiToken.tenant_id)).all() == [beta_id]


def test_cli_makes_a_token_for_a_tenant(app, admin):
    from portal import tenants

    with app.app_context():
        beta_id = tenants.create_tenant(name="Beta", slug="beta").id
    runner = app.test_cli_runner()
    made = runner.invoke(args=["api-tokens", "create", "--user", "admin", "--name", "cron",
                               "--scope", "superuser", "--tenant", "beta"])
    assert made.exit_code == 0, made.output
    assert "in tenant beta" in made.stderr
    unknown = runner.invoke(args=["api-tokens", "create", "--user", "admin", "--name", "x",
                                  "--scope", "superuser", "--tenant", "nope"])
    assert unknown.exit_code == 2
    with app.app_context():
        assert db.session.scalars(select(ApiToken.tenant_id)).all() == [beta_id]
