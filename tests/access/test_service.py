"""access.service without HTTP: the commands the access pages and the API share."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.access import ALL, Grants
from portal.access import service as access_service
from portal.extensions import db
from portal.models import AuditEvent, Group, Role

INVITER = Grants(scopes={"access:manage": ALL, "invitations:manage": {"sales"}})


def test_a_new_group_is_bound_to_a_role_within_the_ceiling(app):
    with app.app_context():
        mine = Role(name="sales-inviter", permissions=["invitations:manage"], namespaces=["sales"])
        db.session.add(mine)
        db.session.commit()
        group = access_service.save_group(INVITER, None, name=" sales ", is_superuser=False,
                                          roles=[mine], actor=None, ip=None)
        assert (group.name, [r.name for r in group.roles]) == ("sales", ["sales-inviter"])
        event = db.session.scalar(select(AuditEvent).filter_by(action="group.saved"))
        assert event.detail == {"superuser": False, "roles": ["sales-inviter"]}


def test_refusals_name_their_field_and_change_nothing(app):
    with app.app_context():
        wide = Role(name="everything", permissions=["invitations:manage"])  # every namespace
        db.session.add_all([wide, Group(name="staff", attributes={})])
        db.session.commit()
        with pytest.raises(access_service.AccessError) as refused:
            access_service.save_group(INVITER, None, name="new", is_superuser=False,
                                      roles=[wide], actor=None, ip=None)
        assert refused.value.field == "roles"
        with pytest.raises(access_service.AccessError) as refused:
            access_service.delete_role(INVITER, wide, actor=None, ip=None)
        assert refused.value.field == "permissions"
        with pytest.raises(access_service.AccessError) as refused:
            access_service.save_role(INVITER, None, name="hr", permissions=["invitations:manage"],
                                     namespaces=["hr"], groups=[], actor=None, ip=None)
        assert refused.value.field == "permissions"
        with pytest.raises(access_service.AccessError) as refused:
            access_service.save_group(INVITER, None, name="staff ", is_superuser=False,
                                      actor=None, ip=None)
        assert (refused.value.field, str(refused.value)) == ("name", "A group with this name exists.")
        assert sorted(db.session.scalars(select(Group.name))) == ["staff"]
        assert sorted(db.session.scalars(select(Role.name))) == ["everything"]
        assert db.session.scalar(select(AuditEvent.id)) is None
