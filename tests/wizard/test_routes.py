"""portal.wizard.routes, existing accounts: the acceptance of an invitation link while signed in,
and "I already have an account" (sign in through the authentication flow, come back)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from portal.audit import Action
from portal.extensions import db
from portal.models import AuditEvent, Group, Invitation, InvitationUse, User

from ..conftest import csrf_from, path_of, sign_in, submit
from ..helpers import enrol_totp, existing_user, invitation_group, totp_code

FLOW = "/if/flow/default-enrollment-flow/"


def _count(app, model, **where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def _use_count(app, invitation_id: int) -> int:
    with app.app_context():
        return db.session.get(Invitation, invitation_id).use_count


def _groups_of(app, user_id: int) -> list[str]:
    with app.app_context():
        return [g.name for g in db.session.get(User, user_id).groups]


def _invite(app, make_invitation, **options):
    group_id = invitation_group(app)
    with app.app_context():
        group = db.session.get(Group, group_id)
    return make_invitation(name="Join engineering", groups=[group], **options)


def test_a_signed_in_person_is_asked_to_join_with_what_it_grants(app, client, make_invitation):
    existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    sign_in(client, "sam")
    opened = client.get(path_of(link))
    assert opened.status_code == 302 and opened.headers["Location"].endswith(FLOW)  # token gone
    page = client.get(FLOW).get_data(as_text=True)
    assert "Join Invitation portal as Sam?" in page
    assert "engineering" in page and "engineering-editor (in eng)" in page
    assert "Ada Admin" in page  # who invited them
    assert 'value="accept"' in page and 'value="decline"' in page
    assert _use_count(app, invitation_id) == 0  # opening consumes nothing


def test_accept_grants_once_and_makes_no_second_account(app, client, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    users_before = _count(app, User)
    sign_in(client, "sam")
    client.get(path_of(link))
    done = submit(client, FLOW, {"decision": "accept"})
    assert done.request.path == "/account/"
    assert "You accepted the invitation “Join engineering”. You are now in engineering." \
        in done.get_data(as_text=True)
    assert _groups_of(app, sam) == ["engineering"]
    assert (_use_count(app, invitation_id), _count(app, InvitationUse)) == (1, 1)
    assert _count(app, User) == users_before
    assert _count(app, AuditEvent, action=Action.INVITATION_ACCEPTED) == 1
    # The link is used up now, for this account too.
    again = client.get(path_of(link), follow_redirects=True)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    assert (_use_count(app, invitation_id), _count(app, InvitationUse)) == (1, 1)


def test_decline_consumes_nothing(app, client, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    sign_in(client, "sam")
    client.get(path_of(link))
    done = submit(client, FLOW, {"decision": "decline"})
    assert done.request.path == "/account/"
    assert "You declined the invitation" in done.get_data(as_text=True)
    assert _groups_of(app, sam) == []
    assert (_use_count(app, invitation_id), _count(app, InvitationUse)) == (0, 0)
    assert _count(app, AuditEvent, action=Action.INVITATION_DECLINED) == 1


def test_accept_needs_the_csrf_token(app, client, make_invitation):
    existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    sign_in(client, "sam")
    client.get(path_of(link))
    forged = client.post(FLOW, data={"decision": "accept"})
    assert forged.status_code == 400
    assert _use_count(app, invitation_id) == 0


def test_a_recipient_bound_invitation_refuses_another_or_unverified_account(app, make_invitation):
    existing_user(app, "una", email="vera@example.com", verified=False)
    existing_user(app, "oscar")
    invitation_id, link = _invite(app, make_invitation, email="vera@example.com")
    for login in ("una", "oscar"):
        client = app.test_client()
        sign_in(client, login)
        page = client.get(path_of(link), follow_redirects=True)
        assert page.status_code == 403
        assert "This invitation is for another address" in page.get_data(as_text=True)
    assert (_use_count(app, invitation_id), _count(app, InvitationUse)) == (0, 0)


def test_the_owner_of_the_verified_address_accepts_a_recipient_bound_invitation(app, client,
                                                                                make_invitation):
    vera = existing_user(app, "vera", email="VERA@example.com")
    invitation_id, link = _invite(app, make_invitation, email="vera@example.com")
    sign_in(client, "vera")
    client.get(path_of(link))
    submit(client, FLOW, {"decision": "accept"})
    assert _groups_of(app, vera) == ["engineering"]
    assert _use_count(app, invitation_id) == 1


def test_a_revoked_invitation_is_refused_to_a_signed_in_person_too(app, client, make_invitation):
    from portal.invitations import service

    existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation)
    with app.app_context():
        service.revoke_many([db.session.get(Invitation, invitation_id)])
    sign_in(client, "sam")
    page = client.get(path_of(link), follow_redirects=True)
    assert page.status_code == 410 and "This invitation was withdrawn" in page.get_data(as_text=True)


def test_a_signed_in_person_without_an_invitation_is_still_told_to_sign_out(app, client, admin):
    existing_user(app, "sam")
    sign_in(client, "sam")
    page = client.get(FLOW)
    assert page.status_code == 403 and "already signed in" in page.get_data(as_text=True)


# -- "I already have an account" ------------------------------------------------------------------


def _hand_off(client, link: str):
    """Open the link signed out, and choose "I already have an account" on its first page."""
    client.get(path_of(link))
    first = client.get(FLOW).get_data(as_text=True)
    assert "I already have an account" in first
    return client.post(f"{FLOW}existing-account", data={"csrf_token": csrf_from(first)})


def test_i_already_have_an_account_signs_in_and_comes_back_to_accept(app, client, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    users_before = _count(app, User)
    handed = _hand_off(client, link)
    assert handed.status_code == 302
    location = handed.headers["Location"]
    assert location.startswith("/auth/login?next=")
    assert "itoken" not in location and str(invitation_id) not in location.split("resume")[0]
    next_path = re.search(r"next=([^&]+)", location).group(1).replace("%2F", "/")
    signed = sign_in(client, "sam", next=next_path, follow_redirects=False)
    assert signed.headers["Location"] == next_path  # the sign-in flow's noted `next`
    page = client.get(signed.headers["Location"], follow_redirects=True)
    assert page.request.path == FLOW
    assert "Join Invitation portal as Sam?" in page.get_data(as_text=True)
    submit(client, FLOW, {"decision": "accept"})
    assert _groups_of(app, sam) == ["engineering"]
    assert (_use_count(app, invitation_id), _count(app, User)) == (1, users_before)
    # The address that carried the flow over works once.
    assert app.test_client().get(next_path).status_code == 410


def test_the_invitation_survives_a_sign_in_with_an_authenticator(app, client, make_invitation):
    tess = existing_user(app, "tess")
    secret = enrol_totp(app, tess)
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    location = _hand_off(client, link).headers["Location"]
    next_path = re.search(r"next=([^&]+)", location).group(1).replace("%2F", "/")
    asked = sign_in(client, "tess", next=next_path)
    assert "Code from your authenticator app" in asked.get_data(as_text=True)
    signed = submit(client, "/if/flow/default-authentication-flow/", {"code": totp_code(secret, 1)},
                    follow_redirects=False)
    page = client.get(signed.headers["Location"], follow_redirects=True)
    assert "Join Invitation portal as Tess?" in page.get_data(as_text=True)
    submit(client, FLOW, {"decision": "accept"})
    assert _groups_of(app, tess) == ["engineering"]
    assert _use_count(app, invitation_id) == 1


def test_a_made_up_resume_address_opens_nothing(app, client, make_invitation):
    existing_user(app, "sam")
    invitation_id, _link = _invite(app, make_invitation, single_use=True)
    sign_in(client, "sam")
    page = client.get(f"{FLOW}resume/{'a' * 43}")
    assert page.status_code == 410
    assert _use_count(app, invitation_id) == 0


def test_the_sign_in_offer_is_only_on_an_invitations_first_page(app, client, make_invitation):
    _invitation_id, link = _invite(app, make_invitation)
    client.get(path_of(link))
    first = client.get(FLOW).get_data(as_text=True)
    assert "I already have an account" in first
    from ..helpers import NEW_PASSWORD

    second = submit(client, FLOW, {"username": "newbie", "password": NEW_PASSWORD,
                                   "password_repeat": NEW_PASSWORD})
    assert "I already have an account" not in second.get_data(as_text=True)


def test_the_acceptance_shows_what_a_direct_role_covers_its_own_namespaces_narrowed(app, client):
    """The limit typed on the invitation narrows the role's own namespaces (direct_namespaces):
    the pages show what is granted, not what was typed."""
    from portal.invitations import service
    from portal.models import Flow, Role

    existing_user(app, "sam")
    with app.app_context():
        role = Role(name="eng-editor", permissions=["flows:manage"], namespaces=["eng"])
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        service.create_invitation(name="Join eng-web", flow=flow, expires_at=None,
                                  email="sam@example.com", roles=[(role, ["eng-web", "sales"])])
        invitation = service.create_invitation(name="Join eng", flow=flow, expires_at=None,
                                               roles=[(role, [])])
        link = service.invitation_link(invitation, "http://portal.test")
    sign_in(client, "sam")
    client.get(path_of(link))
    page = client.get(FLOW).get_data(as_text=True)
    assert re.search(r"<dt>Roles</dt><dd>eng-editor \(in eng\)</dd>", page), page
    account = client.get("/account/").get_data(as_text=True)
    assert "eng-editor (in eng-web)</dd>" in account and "sales" not in account
