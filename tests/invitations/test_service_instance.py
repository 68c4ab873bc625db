"""portal.invitations.service and access.check_instance_invitation, invitations to the whole
instance (tenant_id NULL), without HTTP: who may make them, where they work, what they give."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import tenants
from portal.access import CeilingError, Grants, grants_for, is_superuser
from portal.audit import Action
from portal.extensions import db
from portal.invitations import service
from portal.models import AuditEvent, Flow, Group, Invitation, InvitationUse, User, utcnow

from ..helpers import existing_user, make_member


def _flow(slug: str = "default-enrollment-flow") -> Flow:
    return db.session.scalar(select(Flow).filter_by(slug=slug))


def _instance_invitation(app, admin, **options) -> int:
    with app.app_context():
        invitation = service.create_invitation(
            name=options.pop("name", "to the instance"), flow=_flow(),
            expires_at=utcnow() + timedelta(days=7), created_by=db.session.get(User, admin),
            instance=True, **options)
        return invitation.id


def test_a_superadmin_makes_an_invitation_of_no_tenant_logged_on_the_instance(app, admin):
    invitation_id = _instance_invitation(app, admin, grants_superuser=True)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert (invitation.tenant_id, invitation.grants_superuser) == (None, True)
        event = db.session.scalar(select(AuditEvent).filter_by(action=Action.INVITATION_CREATED))
        assert event.tenant_id is None and event.detail["superuser"] is True
        summary = tenants.grants_summary(invitation)
        assert (summary["instance"], summary["superuser"], summary["invited_by"]) == \
            (True, True, "Ada Admin")


def test_only_a_superadmin_invites_to_the_instance_or_makes_a_superadmin(app, admin):
    make_member(app, "lead", permissions=["invitations:manage", "users:manage", "access:manage"])
    with app.app_context():
        lead = db.session.scalar(select(User).filter_by(username="lead"))
        attempts = [dict(instance=True), dict(grants_superuser=True),
                    dict(instance=True, grants_superuser=True)]
        for options in attempts:
            with pytest.raises(CeilingError, match="Only an instance superadmin"):
                service.create_invitation(name="x", flow=_flow(), expires_at=None,
                                          created_by=lead, **options)
            db.session.rollback()
        # Nobody signed in (a script with no account) is no superadmin either.
        with pytest.raises(CeilingError):
            service.create_invitation(name="x", flow=_flow(), expires_at=None, instance=True)
        db.session.rollback()
        # Grants given explicitly are what count (the API and the pages pass theirs).
        with pytest.raises(CeilingError):
            service.create_invitation(name="x", flow=_flow(), expires_at=None, instance=True,
                                      created_by=db.session.get(User, admin), grants=Grants())
        db.session.rollback()
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_superadmin_only_on_an_instance_invitation_and_no_tenant_groups_or_tenant_flow(app, admin):
    with app.app_context():
        root = db.session.get(User, admin)
        group = Group(name="crew", attributes={})
        tenant_flow = Flow(slug="team-join", name="Team join", title="Join",
                           designation=_flow().designation)
        db.session.add_all([group, tenant_flow])
        db.session.commit()
        assert tenant_flow.tenant_id is not None  # made outside an instance page: the default's
        for options, message in (
                (dict(grants_superuser=True), "Only an invitation to the instance"),
                (dict(instance=True, groups=[group]), "no tenant's groups"),
                (dict(instance=True, flow=tenant_flow), "instance-wide flow")):
            with pytest.raises(CeilingError, match=message):
                service.create_invitation(**{"name": "x", "flow": _flow(), "expires_at": None,
                                             "created_by": root, **options})
            db.session.rollback()
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_an_instance_invitation_is_refused_in_a_tenant_owned_flow(app, admin):
    invitation_id = _instance_invitation(app, admin)
    with app.app_context():
        beta = tenants.create_tenant(name="Beta", slug="beta")
        owned = Flow(slug="beta-join", name="Beta join", title="Join", tenant_id=beta.id,
                     designation=_flow().designation)
        db.session.add(owned)
        db.session.commit()
        invitation = db.session.get(Invitation, invitation_id)
        assert service.refusal_for(invitation, owned, token_supplied=True) is \
            service.REFUSALS["wrong_flow"]
        assert service.refusal_for(invitation, _flow(), token_supplied=True) is None
        # The guarded UPDATE agrees: no use taken on the tenant's flow, one on its own.
        assert service.redeem(invitation_id, owned.id) is False
        assert service.redeem(invitation_id, invitation.flow_id) is True
        db.session.rollback()


def test_accepting_gives_an_account_no_tenant_and_superadmin_exactly_once(app, admin):
    sam = existing_user(app, "sam")
    # A link for five: a second Accept of the same account is refused for being its second.
    invitation_id = _instance_invitation(app, admin, grants_superuser=True, max_uses=5)
    with app.app_context():
        user, invitation = db.session.get(User, sam), db.session.get(Invitation, invitation_id)
        memberships = sorted(t.slug for t in user.tenants)
        assert not is_superuser(user)
        result = service.grant_access(user, invitation, ip="192.0.2.7")
        assert isinstance(result, service.Granted) and result.groups == []
        again = service.grant_access(db.session.get(User, sam), db.session.get(Invitation, invitation_id))
        assert again is service.REFUSALS["already_accepted"]
        db.session.expire_all()
        user = db.session.get(User, sam)
        assert is_superuser(user) and grants_for(user).superuser
        assert sorted(t.slug for t in user.tenants) == memberships  # no tenant joined
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert db.session.scalar(select(func.count(InvitationUse.id))) == 1
        accepted = db.session.scalars(select(AuditEvent).filter_by(
            action=Action.INVITATION_ACCEPTED)).all()
        assert [e.tenant_id for e in accepted] == [None]


def test_pending_instance_invitations_are_listed_for_the_verified_address(app, admin):
    sam = existing_user(app, "sam")
    invitation_id = _instance_invitation(app, admin, email="sam@example.com")
    with app.app_context():
        assert [i.id for i in service.pending_for(db.session.get(User, sam))] == [invitation_id]
