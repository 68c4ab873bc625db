"""portal.invitations.service, existing accounts: grant_access, decline, pending_for and the
admin's note (account_notes), without HTTP."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.audit import Action
from portal.auth.service import mark_email_verified, verified_email
from portal.extensions import db
from portal.invitations import service
from portal.models import AuditEvent, Group, Invitation, InvitationUse, User, utcnow

from ..helpers import existing_user, invitation_group


def _count(model, **where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def _events(action: str) -> int:
    return _count(AuditEvent, action=action)


def _invitation(make_invitation, app, *, groups=(), **options) -> Invitation:
    with app.app_context():
        chosen = [db.session.get(Group, g) for g in groups]
    invitation_id, _link = make_invitation(groups=chosen, **options)
    return invitation_id


def test_grant_access_adds_the_groups_records_the_use_and_consumes_one(app, make_invitation):
    group_id = invitation_group(app)
    sam = existing_user(app, "sam")
    invitation_id = _invitation(make_invitation, app, groups=[group_id], max_uses=5)
    with app.app_context():
        users_before = _count(User)
        user, invitation = db.session.get(User, sam), db.session.get(Invitation, invitation_id)
        result = service.grant_access(user, invitation, ip="192.0.2.7")
        assert isinstance(result, service.Granted)
        assert [g.name for g in result.groups] == ["engineering"]
        assert [g.name for g in db.session.get(User, sam).groups] == ["engineering"]
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert _count(InvitationUse, invitation_id=invitation_id, user_id=sam) == 1
        assert _events(Action.INVITATION_ACCEPTED) == 1
        assert _count(User) == users_before  # no second account


def test_an_account_accepts_an_invitation_once(app, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id = _invitation(make_invitation, app, max_uses=5)
    with app.app_context():
        user, invitation = db.session.get(User, sam), db.session.get(Invitation, invitation_id)
        assert isinstance(service.grant_access(user, invitation), service.Granted)
        again = service.grant_access(user, invitation)
        assert again is service.REFUSALS["already_accepted"]
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert _count(InvitationUse, invitation_id=invitation_id) == 1


def test_a_used_single_use_invitation_is_refused_as_enrollment_refuses_it(app, make_invitation):
    group_id = invitation_group(app)
    sam, pat = existing_user(app, "sam"), existing_user(app, "pat")
    invitation_id = _invitation(make_invitation, app, groups=[group_id], single_use=True)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert isinstance(service.grant_access(db.session.get(User, sam), invitation), service.Granted)
        refused = service.grant_access(db.session.get(User, pat), invitation)
        assert refused is service.REFUSALS["used up"]
        assert db.session.get(User, pat).groups == []
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_revoked_and_expired_invitations_are_refused_with_the_enrollment_refusals(app, make_invitation):
    sam = existing_user(app, "sam")
    revoked_id = _invitation(make_invitation, app, name="revoked")
    expired_id = _invitation(make_invitation, app, name="expired", expires_in=timedelta(seconds=-1))
    with app.app_context():
        user = db.session.get(User, sam)
        service.revoke_many([db.session.get(Invitation, revoked_id)])
        for invitation_id, reason in ((revoked_id, "revoked"), (expired_id, "expired")):
            invitation = db.session.get(Invitation, invitation_id)
            assert service.grant_access(user, invitation) is service.REFUSALS[reason]
            assert service.refusal_for(invitation, invitation.flow, token_supplied=True) \
                is service.REFUSALS[reason]  # the one rule enrollment uses
            assert db.session.get(Invitation, invitation_id).use_count == 0
        assert _count(InvitationUse) == 0


def test_a_recipient_bound_invitation_needs_that_verified_address(app, make_invitation):
    unverified = existing_user(app, "una", email="una@example.com", verified=False)
    other = existing_user(app, "oscar", email="oscar@example.com")
    owner = existing_user(app, "vera", email="Vera@Example.com")
    invitation_id = _invitation(make_invitation, app, email="vera@example.com")
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        for user_id in (unverified, other):
            refused = service.grant_access(db.session.get(User, user_id), invitation)
            assert refused is service.REFUSALS["not_your_address"]
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert isinstance(service.grant_access(db.session.get(User, owner), invitation),
                          service.Granted)  # the same address, whatever its case
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_the_address_is_compared_in_nfkc_form(app, make_invitation):
    """A fullwidth ＠ reads as @: the account's address counts for the invitation's."""
    owner = existing_user(app, "wide", email="wide＠example.com")
    invitation_id = _invitation(make_invitation, app, email="WIDE@example.com")
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert service.acceptance_refusal(invitation, db.session.get(User, owner)) is None


def test_a_verification_holds_only_for_the_address_it_proved(app):
    sam = existing_user(app, "sam")
    with app.app_context():
        user = db.session.get(User, sam)
        assert verified_email(user) == "sam@example.com"
        user.email = "sam@elsewhere.example"
        assert verified_email(user) is None
        mark_email_verified(user, "someone@else.example")  # a proof of another address
        assert verified_email(user) is None


def test_decline_consumes_nothing_and_leaves_the_list(app, make_invitation):
    sam = existing_user(app, "sam")
    invitation_id = _invitation(make_invitation, app, email="sam@example.com")
    with app.app_context():
        user, invitation = db.session.get(User, sam), db.session.get(Invitation, invitation_id)
        assert [i.id for i in service.pending_for(user)] == [invitation_id]
        service.decline(user, invitation, ip="192.0.2.7")
        service.decline(user, invitation)  # twice: one decline is kept
        assert service.pending_for(user) == []
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert _count(InvitationUse) == 0
        assert _events(Action.INVITATION_DECLINED) == 2
        # They change their mind: the link still works, and the decline is gone.
        assert isinstance(service.grant_access(user, invitation), service.Granted)
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_pending_for_lists_only_open_invitations_to_the_verified_address(app, make_invitation):
    sam = existing_user(app, "sam")
    una = existing_user(app, "una", verified=False)
    mine = _invitation(make_invitation, app, name="mine", email="SAM@example.com")
    _invitation(make_invitation, app, name="someone else's", email="pat@example.com")
    _invitation(make_invitation, app, name="open link")  # no address: not listed
    expired = _invitation(make_invitation, app, name="expired", email="sam@example.com",
                          expires_in=timedelta(seconds=-1))
    revoked = _invitation(make_invitation, app, name="revoked", email="sam@example.com")
    _invitation(make_invitation, app, name="una's", email="una@example.com")
    with app.app_context():
        service.revoke_many([db.session.get(Invitation, revoked)])
        user = db.session.get(User, sam)
        assert [i.name for i in service.pending_for(user)] == ["mine"]
        assert service.pending_invitation(user, mine).id == mine
        assert service.pending_invitation(user, expired) is None
        assert service.pending_for(db.session.get(User, una)) == []  # not verified: none
        service.grant_access(user, db.session.get(Invitation, mine))
        assert service.pending_for(user) == []  # accepted: no longer pending


def test_account_notes_match_whatever_the_case(app, admin):
    from portal.access import grants_for

    existing_user(app, "sam")
    with app.app_context():
        grants = grants_for(db.session.get(User, admin))
        found = service.account_notes(["SAM@example.com", "new@example.com", ""], grants)
        assert found == {"SAM@example.com": service.MEMBER}
        assert service.account_notes([], grants) == {}


def test_an_accepted_invitation_consumes_uses_like_enrollment_does(app, make_invitation):
    """Two existing accounts and a two-use link: both accept, the third is refused, and the
    counts match exactly."""
    people = [existing_user(app, name) for name in ("ann", "ben", "cat")]
    invitation_id = _invitation(make_invitation, app, max_uses=2)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        results = [service.grant_access(db.session.get(User, p), invitation) for p in people]
        assert [type(r).__name__ for r in results] == ["Granted", "Granted", "Refusal"]
        assert results[2] is service.REFUSALS["used up"]
        assert db.session.get(Invitation, invitation_id).use_count == 2
        assert _count(InvitationUse, invitation_id=invitation_id) == 2
        assert invitation.expires_at > utcnow()
