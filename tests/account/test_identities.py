"""The account page's single sign-on section (portal.account.routes): linked identities, link
another, unlink — never the last way to sign in."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import SourceConnection

from ..conftest import csrf_from, path_of
from ..oidc_provider import log_in


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
