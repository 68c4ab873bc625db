"""Migration 0009: a populated 0008 database moves into the default tenant with nothing lost."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from portal import create_app
from portal.access import grants_for
from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.defaults import ensure_default_authentication_flow, ensure_default_enrollment_flow
from portal.invitations import service
from portal.models import AuditEvent, Flow, Group, Invitation, Role, Tenant, User, tenant_members, utcnow

from ..conftest import TEST_PASSWORD, database_url, path_of, sign_in
from ..helpers import complete_wizard, downgrade, make_member, stamp, upgrade


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_an_0008_database_upgrades_into_the_default_tenant_and_keeps_working(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        try:
            # A populated install at 0008: built with today's models, then taken back to 0008
            # (the downgrade drops exactly what 0009 adds).
            db.create_all()
            ensure_default_enrollment_flow()
            ensure_default_authentication_flow()
            admin = accounts.create_user(username="admin", email="admin@example.com",
                                         password=TEST_PASSWORD, superuser=True)
            make_member(app, "inviter", permissions=["invitations:manage"], namespaces=["default"])
            flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
            staff = Group(name="staff", attributes={})
            db.session.add(staff)
            invitation = service.create_invitation(name="old link", flow=flow, created_by=admin,
                                                   expires_at=None, groups=[staff])
            link = path_of(service.invitation_link(invitation, "http://portal.test"))
            db.session.remove()  # no transaction of ours may hold a lock the migration needs
            stamp()
            downgrade(revision="0008")
            assert "tenants" not in inspect(db.engine).get_table_names()
            assert "tenant_id" not in {c["name"] for c in inspect(db.engine).get_columns("groups")}

            upgrade()

            default = db.session.scalar(select(Tenant))
            assert (default.slug, default.active) == ("default", True)
            assert db.session.scalar(select(db.func.count(Tenant.id))) == 1
            users = db.session.scalars(select(User.id)).all()
            members = db.session.scalars(select(tenant_members.c.user_id).where(
                tenant_members.c.tenant_id == default.id)).all()
            assert sorted(members) == sorted(users) and len(users) == 2
            for model in (Group, Role, Invitation, AuditEvent):
                tenants = set(db.session.scalars(select(model.tenant_id)))
                assert tenants == {default.id}, model
            assert set(db.session.scalars(select(Flow.tenant_id))) == {None}  # instance-wide
            inviter = db.session.scalar(select(User).filter_by(username="inviter"))
            assert grants_for(inviter, default).scopes == {"invitations:manage": {"default"}}

            db.session.remove()
        except BaseException:
            _drop(app)
            raise
    # Requests outside the test's app context, so each has its own `g` (its signed-in user).
    try:
        client = app.test_client()
        assert sign_in(client, "admin", TEST_PASSWORD, follow_redirects=False).status_code == 302
        page = client.get("/admin/invitations/", follow_redirects=True)
        assert page.status_code == 200 and "old link" in page.get_data(as_text=True)
        done = complete_wizard(app.test_client(), link, username="late", email="late@example.com")
        assert done.status_code == 200
        with app.app_context():
            late = db.session.scalar(select(User).filter_by(username="late"))
            assert [g.name for g in late.groups] == ["staff"]
            assert [t.slug for t in late.tenants] == ["default"]
            # Names stay unique per tenant, not across tenants.
            other = Tenant(name="Other", slug="other", active=True, created_at=utcnow())
            db.session.add(other)
            db.session.flush()
            db.session.add(Group(name="staff", attributes={}, tenant_id=other.id))
            db.session.commit()
    finally:
        _drop(app)


def _drop(app) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()
