"""portal.account.routes: the account page's pending invitations, with Accept and Decline."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Group, Invitation, InvitationUse, User

from ..conftest import csrf_from, sign_in
from ..helpers import existing_user, invitation_group


def _invite(app, make_invitation, email: str, name: str = "Join engineering"):
    group_id = invitation_group(app, name=f"group-{name.split()[-1]}")
    with app.app_context():
        group = db.session.get(Group, group_id)
    invitation_id, _link = make_invitation(name=name, email=email, groups=[group])
    return invitation_id


def _answer(client, invitation_id: int, decision: str):
    token = csrf_from(client.get("/account/").get_data(as_text=True))
    return client.post(f"/account/invitations/{invitation_id}/{decision}",
                       data={"csrf_token": token}, follow_redirects=True)


def test_the_account_page_lists_invitations_to_the_verified_address(app, client, make_invitation):
    existing_user(app, "sam")
    _invite(app, make_invitation, "sam@example.com", "Join engineering")
    _invite(app, make_invitation, "pat@example.com", "Join sales")
    sign_in(client, "sam")
    page = client.get("/account/").get_data(as_text=True)
    assert "Join engineering" in page and "group-engineering" in page
    assert "Join sales" not in page
    assert page.count('class="pending-invitation"') == 1


def test_an_unverified_address_lists_nothing(app, client, make_invitation):
    existing_user(app, "sam", verified=False)
    _invite(app, make_invitation, "sam@example.com")
    sign_in(client, "sam")
    page = client.get("/account/").get_data(as_text=True)
    assert 'class="pending-invitation"' not in page
    assert "once it is verified" in page


def test_accept_from_the_account_page(app, client, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id = _invite(app, make_invitation, "sam@example.com")
    sign_in(client, "sam")
    page = _answer(client, invitation_id, "accept").get_data(as_text=True)
    assert "You are now in group-engineering." in page
    assert 'class="pending-invitation"' not in page
    with app.app_context():
        assert [g.name for g in db.session.get(User, sam).groups] == ["group-engineering"]
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_decline_from_the_account_page_consumes_nothing(app, client, make_invitation):
    existing_user(app, "sam")
    invitation_id = _invite(app, make_invitation, "sam@example.com")
    sign_in(client, "sam")
    page = _answer(client, invitation_id, "decline").get_data(as_text=True)
    assert "You declined" in page and 'class="pending-invitation"' not in page
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert db.session.scalar(select(func.count(InvitationUse.id))) == 0


def test_another_persons_invitation_cannot_be_answered_by_id(app, client, make_invitation):
    existing_user(app, "sam")
    theirs = _invite(app, make_invitation, "pat@example.com")
    sign_in(client, "sam")
    for decision in ("accept", "decline"):
        assert _answer(client, theirs, decision).status_code == 404
    with app.app_context():
        assert db.session.get(Invitation, theirs).use_count == 0


def test_answering_needs_the_csrf_token(app, client, make_invitation):
    existing_user(app, "sam")
    invitation_id = _invite(app, make_invitation, "sam@example.com")
    sign_in(client, "sam")
    assert client.post(f"/account/invitations/{invitation_id}/accept").status_code == 400
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
