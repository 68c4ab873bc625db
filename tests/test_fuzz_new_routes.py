"""The routes issue 8 added answer every malformed request with a page, never a 500: missing
fields, a wrong CSRF token, NUL bytes, huge values, the wrong method."""

from __future__ import annotations

import pytest

from portal.auth import service as accounts
from portal.extensions import db
from portal.models import User

from .conftest import TEST_PASSWORD, csrf_from, sign_in

HUGE = "9" * 5000
ROUTES = [
    "/account/password",
    "/account/sign-out-everywhere",
    "/admin/users/{sam}/deactivate",
    "/admin/users/{sam}/activate",
    "/if/flow/default-enrollment-flow/verify-email",
    "/admin/invitations/new",
    "/auth/logout",
]
BODIES = [
    {},  # missing every field
    {"csrf_token": "wrong"},
    {"csrf_token": "{csrf}"},
    {"csrf_token": "{csrf}", "current_password": "a\x00b", "password": "x\x00y",
     "password_repeat": "x\x00y"},
    {"csrf_token": "{csrf}", "current_password": "x" * 100_000, "password": "y" * 100_000,
     "password_repeat": "y" * 100_000},
    {"csrf_token": "{csrf}", "kind": HUGE, "name": HUGE, "expires": HUGE, "flow": HUGE,
     "max_uses": HUGE, "to": HUGE, "attributes": HUGE},
    {"csrf_token": ["{csrf}", "{csrf}"], "current_password": [TEST_PASSWORD, "other"]},
]
QUERIES = ["", "?token=", "?token=" + "A" * 5000, "?token=%00", "?mode=%00", "?mode=" + HUGE,
           "?from=" + HUGE, "?token=%ff%fe", "?mode=people&mode=link"]


@pytest.fixture
def fuzz(app, admin):
    with app.app_context():
        sam = accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD).id
    client = app.test_client()
    sign_in(client)
    csrf = csrf_from(client.get("/account/").get_data(as_text=True))
    return client, sam, csrf


def _fill(value, csrf):
    if isinstance(value, list):
        return [_fill(v, csrf) for v in value]
    return value.replace("{csrf}", csrf)


@pytest.mark.parametrize("route", ROUTES)
def test_no_malformed_request_to_a_new_route_is_a_500(app, fuzz, route):
    client, sam, csrf = fuzz
    url = route.format(sam=sam)
    for query in QUERIES:
        for method in ("get", "put", "delete", "patch"):
            response = getattr(client, method)(url + query)
            assert response.status_code < 500, (method, url + query, response.status_code)
        for body in BODIES:
            data = {key: _fill(value, csrf) for key, value in body.items()}
            response = client.post(url + query, data=data)
            assert response.status_code < 500, (url + query, body.keys(), response.status_code)
            assert "Traceback" not in response.get_data(as_text=True)
    with app.app_context():  # nothing above was a valid request that changes anything
        admin = db.session.scalar(db.select(User).filter_by(username="admin"))
        assert accounts.authenticate("admin", TEST_PASSWORD) is admin
