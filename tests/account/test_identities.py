"""The account page's single sign-on section (portal.account.routes): linked identities, link
another, unlink — never the last way to sign in."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, SourceConnection, User
from portal.sources import service

from ..conftest import csrf_from, path_of, sign_in
from ..oidc_provider import SLUG, log_in


def _link(client, login: str):
    html = client.get("/account/").get_data(as_text=True)
    assert "Link Test IdP" in html
    action = re.search(r'action="(/source/oidc/[^"]+/start)"', html).group(1)
    response = client.post(action, data={"csrf_token": csrf_from(html), "purpose": "link"})
    return client.get(path_of(log_in(response.headers["Location"], login)))


def test_link_then_unlink_an_identity(app, client, auth, admin, sso_source):
    auth.login()
    response = _link(client, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    page = client.get("/account/").get_data(as_text=True)
    assert "Link Test IdP" not in page and ">Unlink</button>" in page
    with app.app_context():
        connection = db.session.scalar(select(SourceConnection))
        assert (connection.user_id, connection.subject) == (admin, "alice")
    action = re.search(r'action="(/account/identities/\d+/unlink)"', page).group(1)
    client.post(action, data={"csrf_token": csrf_from(page)})
    with app.app_context():
        assert db.session.scalar(select(SourceConnection)) is None


def test_the_last_way_to_sign_in_cannot_be_unlinked(app, client, sso_source):
    from portal.auth.service import create_user_directly
    from portal.models import Stage
    from portal.sources import service

    with app.app_context():
        source = db.session.get(service.OIDCSource, sso_source)
        create_user_directly(username="carol", email="carol@example.com", link_for=str,
                             lifetime=None, sso_source=source)
        stage = db.session.scalar(select(Stage).filter_by(
            name="default-authentication-identification"))
        stage.options = {**stage.options, "sources": [sso_source]}
        db.session.commit()
    sign_in_page = "/if/flow/default-authentication-flow/"
    html = client.get(sign_in_page).get_data(as_text=True)
    action = re.search(r'action="(/source/oidc/[^"]+/start)">(.*?)</form>', html, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', action.group(2)))
    response = client.post(action.group(1), data={**fields, "csrf_token": csrf_from(html)})
    client.get(path_of(log_in(response.headers["Location"], "carol")))
    client.get(sign_in_page)
    page = client.get("/account/").get_data(as_text=True)
    assert "your only way to sign in" in page and ">Unlink</button>" not in page
    with app.app_context():
        connection_id = db.session.scalar(select(SourceConnection.id))
    response = client.post(f"/account/identities/{connection_id}/unlink",
                           data={"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "Set a password or link another identity" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(SourceConnection, connection_id) is not None


def test_only_sources_the_person_may_use_are_offered_to_link_and_a_forged_one_is_refused(
        app, client, sso_source):
    """The provider's source owned by beta: dora, a member of alpha only, is not offered "Link
    Test IdP", and pressing a forged "Link" for it is refused (audited, nothing linked); made
    a member of beta, she is offered it and links it."""
    from portal import tenants

    from ..helpers import existing_user

    with app.app_context():
        tenants.create_tenant(name="Alpha", slug="alpha")
        beta = tenants.create_tenant(name="Beta", slug="beta")
        db.session.get(service.OIDCSource, sso_source).tenant_id = beta.id
        db.session.commit()
    dora = existing_user(app, "dora")
    with app.app_context():
        user = db.session.get(User, dora)
        tenants.add_member(user, tenants.by_slug("alpha"))
        db.session.commit()
    sign_in(client, "dora")
    html = client.get("/account/").get_data(as_text=True)
    assert "Link Test IdP" not in html
    response = client.post(f"/source/oidc/{SLUG}/start",
                           data={"csrf_token": csrf_from(html), "purpose": "link"})
    assert response.status_code == 404
    with app.app_context():
        failed = db.session.scalars(select(AuditEvent).filter_by(action="sso.failed")).all()
        assert [e.detail for e in failed] == [{"reason": "source_elsewhere"}]
        assert db.session.scalar(select(func.count()).select_from(SourceConnection)) == 0
        tenants.add_member(db.session.get(User, dora), tenants.by_slug("beta"))
        db.session.commit()
    response = _link(client, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    with app.app_context():
        assert [(c.user_id, c.subject) for c in db.session.scalars(select(SourceConnection))] \
            == [(dora, "alice")]
