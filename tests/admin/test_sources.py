"""Admin pages for SSO sources (portal.admin.sources), and "create user directly" as SSO-only
(portal.admin.users)."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OIDCSource, SourceConnection, User
from portal.sources import service

from ..conftest import submit

GOOD = {"name": "Keycloak", "slug": "keycloak", "enabled": "y",
        "issuer": "https://sso.example.com/realms/staff", "client_id": "portal",
        "client_secret": "kc-secret-value-0f3a", "scopes": "openid email profile",
        "claim_username": "preferred_username", "claim_email": "email", "claim_name": "name",
        "claim_groups": "", "use_userinfo": "y", "matching_mode": "email_link",
        "enrollment_flow_id": "", "authoritative_fields": ["email"], "show_on_login": "y"}


def test_a_source_is_created_with_its_secret_sealed_and_never_shown(app, client, auth, admin):
    auth.login()
    page = submit(client, "/admin/sources/new", GOOD).get_data(as_text=True)
    assert "http://portal.test/source/oidc/keycloak/callback" in page
    assert GOOD["client_secret"] not in page
    with app.app_context():
        source = db.session.scalar(select(OIDCSource))
        assert GOOD["client_secret"] not in source.client_secret_sealed
        assert service.client_secret(source) == GOOD["client_secret"]
        events = db.session.scalars(select(AuditEvent).filter_by(action="source.saved")).all()
        assert len(events) == 1 and GOOD["client_secret"] not in str(events[0].detail)
        source_id = source.id
    edit = client.get(f"/admin/sources/{source_id}").get_data(as_text=True)
    assert GOOD["client_secret"] not in edit
    # a change with the secret left blank keeps it
    submit(client, f"/admin/sources/{source_id}", {**GOOD, "name": "Staff SSO",
                                                   "client_secret": ""})
    with app.app_context():
        source = db.session.get(OIDCSource, source_id)
        assert source.name == "Staff SSO" and service.client_secret(source) == GOOD["client_secret"]


def test_bad_fields_are_refused_and_keep_what_was_typed(app, client, auth, admin):
    auth.login()
    bad = {**GOOD, "slug": "Not A Slug", "issuer": "http://idp.example.com", "scopes": "email",
           "client_secret": ""}
    response = submit(client, "/admin/sources/new", bad)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Lower-case letters, digits and dashes" in page
    assert "Use the provider&#39;s https address" in page or "https address" in page
    assert "The scopes must include openid." in page
    assert "Enter the client secret" in page
    assert 'value="Not A Slug"' in page and 'value="http://idp.example.com"' in page
    with app.app_context():
        assert db.session.scalar(select(OIDCSource)) is None


def test_only_superusers_see_the_sources_pages(app, client, auth, admin):
    from portal.auth.service import create_user

    with app.app_context():
        create_user(username="plain", email="plain@example.com", password="x" * 20)
    auth.login("plain", "x" * 20)
    assert client.get("/admin/sources/").status_code == 403


def test_create_user_directly_as_sso_only_gets_no_password_and_no_link(app, client, auth, admin):
    with app.app_context():
        source = service.save_source(None, {k: v for k, v in GOOD.items()
                                             if k not in ("enabled", "use_userinfo",
                                                          "show_on_login", "enrollment_flow_id")}
                                     | {"enabled": True, "show_on_login": True}, actor=None,
                                     ip=None)
        source_id = source.id
    auth.login()
    response = submit(client, "/admin/users/new", {
        "username": "dana", "email": "dana@example.com", "name": "Dana",
        "sign_in_with": str(source_id)})
    page = response.get_data(as_text=True)
    assert "They sign in with Keycloak as dana@example.com; no password and no link." in page
    assert "/auth/set-password/" not in page
    with app.app_context():
        dana = db.session.scalar(select(User).filter_by(username="dana"))
        assert dana.password_hash is None
        waiting = db.session.scalars(select(SourceConnection).filter_by(user_id=dana.id)).all()
        assert [(c.source_id, c.subject) for c in waiting] == [(source_id, None)]
        from portal.models import ActionToken

        assert db.session.scalar(select(ActionToken).filter_by(user_id=dana.id)) is None
