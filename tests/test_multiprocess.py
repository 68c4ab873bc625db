"""Several processes, one truth: gunicorn with 4 workers on PostgreSQL, invitees racing."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from config import TestingConfig
from portal.auth.service import create_user
from portal.extensions import db
from portal.models import Invitation, InvitationUse, User

from .conftest import TEST_PASSWORD, path_of
from .live import Invitee, Member, gunicorn

INVITEES = 50
pytestmark = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgres"),
    reason="needs PostgreSQL: set TEST_DATABASE_URL (CI does) to race 4 gunicorn workers",
)


def race(base: str, link: str) -> list[str]:
    """50 invitees fill the wizard, then all press Finish at the same moment."""
    invitees = [Invitee(base, n, TEST_PASSWORD) for n in range(INVITEES)]
    barrier = threading.Barrier(INVITEES, timeout=120)

    def walk(invitee: Invitee) -> str:
        try:
            assert invitee.open(path_of(link)).status_code == 200
            step = invitee.first_step()
            assert step.status_code == 200 and 'name="email"' in step.text, step.text[:500]
            barrier.wait()
            final = invitee.last_step()
            if final.url.path == "/account/" and final.status_code == 200:
                return "account"
            if final.status_code == 410 and "already been used" in final.text:
                return "used up"
            return f"unexpected {final.status_code} at {final.url.path}"
        finally:
            invitee.close()

    with ThreadPoolExecutor(INVITEES) as pool:
        return list(pool.map(walk, invitees))


def outcome(app, invitation_id: int) -> tuple[int, int, int]:
    with app.app_context():
        users = db.session.scalar(select(func.count(User.id)).where(User.username.like("invitee%")))
        uses = db.session.scalar(
            select(func.count(InvitationUse.id)).filter_by(invitation_id=invitation_id))
        use_count = db.session.get(Invitation, invitation_id).use_count
        return users, uses, use_count


@pytest.mark.parametrize("limit", [1, 10], ids=["single-use", "10-use"])
def test_concurrent_completions_across_workers_respect_the_use_limit(app, make_invitation, tmp_path,
                                                                     limit):
    options = {"single_use": True} if limit == 1 else {"max_uses": limit}
    invitation_id, link = make_invitation(**options)
    with gunicorn(app.config["SQLALCHEMY_DATABASE_URI"], workers=4,
                  secret_key=TestingConfig.SECRET_KEY, instance_path=tmp_path,
                  log_path=tmp_path / "gunicorn.log") as (base, _pid):
        results = race(base, link)
    assert results.count("account") == limit, results
    assert results.count("used up") == INVITEES - limit, results
    assert outcome(app, invitation_id) == (limit, limit, limit)


MEMBERS = 20


def race_to_accept(base: str, link: str, logins: list[str]) -> list[str]:
    """Existing accounts, each signed in in its own browser, open one link and all press Accept
    at the same moment (one login may appear twice: the same account in two browsers)."""
    members = [Member(base, n, TEST_PASSWORD) for n in range(len(logins))]
    barrier = threading.Barrier(len(members), timeout=120)

    def walk(pair) -> str:
        member, login = pair
        try:
            signed = member.sign_in(login)
            assert signed.url.path == "/account/", (signed.url.path, signed.text[:300])
            page = member.open(path_of(link))
            assert page.status_code == 200 and 'value="accept"' in page.text, page.text[:500]
            barrier.wait()
            final = member.accept()
            if final.url.path == "/account/" and "You accepted the invitation" in final.text:
                return "accepted"
            if final.status_code == 410 and "already been used" in final.text:
                return "used up"
            if final.status_code == 409 and "already accepted" in final.text:
                return "already accepted"
            return f"unexpected {final.status_code} at {final.url.path}"
        finally:
            member.close()

    with ThreadPoolExecutor(len(members)) as pool:
        return list(pool.map(walk, zip(members, logins, strict=True)))


def _members(app, count: int) -> list[str]:
    with app.app_context():
        for n in range(count):
            create_user(username=f"member{n}", email=f"member{n}@example.com", password=TEST_PASSWORD)
    return [f"member{n}" for n in range(count)]


def _accepted(app, invitation_id: int) -> tuple[int, int]:
    with app.app_context():
        uses = db.session.scalar(
            select(func.count(InvitationUse.id)).filter_by(invitation_id=invitation_id))
        return uses, db.session.get(Invitation, invitation_id).use_count


def test_concurrent_accepts_of_a_single_use_invitation_grant_it_once(app, make_invitation, tmp_path):
    logins = _members(app, MEMBERS)
    invitation_id, link = make_invitation(single_use=True)
    with gunicorn(app.config["SQLALCHEMY_DATABASE_URI"], workers=4,
                  secret_key=TestingConfig.SECRET_KEY, instance_path=tmp_path,
                  log_path=tmp_path / "gunicorn.log") as (base, _pid):
        results = race_to_accept(base, link, logins)
    assert results.count("accepted") == 1, results
    assert results.count("used up") == MEMBERS - 1, results
    assert _accepted(app, invitation_id) == (1, 1)


def test_one_account_accepting_in_many_browsers_at_once_takes_one_use(app, make_invitation,
                                                                      tmp_path):
    """The same account, ten browsers, a ten-use link: one use taken, the others told."""
    _members(app, 1)
    invitation_id, link = make_invitation(max_uses=10)
    with gunicorn(app.config["SQLALCHEMY_DATABASE_URI"], workers=4,
                  secret_key=TestingConfig.SECRET_KEY, instance_path=tmp_path,
                  log_path=tmp_path / "gunicorn.log") as (base, _pid):
        results = race_to_accept(base, link, ["member0"] * 10)
    assert results.count("accepted") == 1, results
    assert results.count("already accepted") == 9, results
    assert _accepted(app, invitation_id) == (1, 1)
