"""The bench's lean HTTP client walks a real enrollment against gunicorn: the figures it drives
are only worth something if every enrollment it counts really made a signed-in account."""

from __future__ import annotations

from sqlalchemy import select

from bench.__main__ import enroll
from bench.client import Browser
from portal.extensions import db
from portal.models import User

from ..conftest import path_of
from ..live import form_fields, gunicorn


def test_the_bench_invitee_enrolls_and_lands_signed_in(app, make_invitation, tmp_path):
    _, link = make_invitation(max_uses=2)
    with gunicorn(app.config["SQLALCHEMY_DATABASE_URI"], workers=1,
                  secret_key=app.config["SECRET_KEY"], instance_path=tmp_path) as (base, _pid):
        enroll(base, path_of(link), 7)
        browser = Browser(base)  # by hand: the cookie jar carries the wizard across redirects
        page = browser.get(path_of(link))
        assert page.status == 200 and page.path == "/if/flow/default-enrollment-flow/"
        wrong = browser.post(page.path, {**form_fields(page.text), "username": "invitee7",
                                         "password": "x", "password_repeat": "y"})
        assert wrong.status == 200 and 'name="username"' in wrong.text  # refused, shown again
        assert "session" in {name.decode() for name in browser.cookies}
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="invitee7"))
        assert user is not None and user.email == "invitee7@example.com" and user.last_login
