"""Migration 0018_instance: a 0014_api_tenant database upgrades with its invitations and audit
events kept in their tenant, and can then hold invitations and events of no tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.audit import Action, record_event
from portal.extensions import db
from portal.invitations import search, service
from portal.models import AuditEvent, Flow, Invitation, User, utcnow
from portal.security import tokens

from ..conftest import TEST_PASSWORD
from ..helpers import insert_old_user, old_sql, upgraded_from

CREATED = datetime(2026, 11, 20, tzinfo=UTC)
SALT = "ab" * 16


def _fill(connection) -> None:
    tenant = old_sql(connection, "SELECT id FROM tenants WHERE slug = 'default'").scalar_one()
    admin = insert_old_user(connection, "root", TEST_PASSWORD, superuser=True)
    flow = old_sql(connection, "INSERT INTO flows (slug, name, title, designation, authentication, "
                   "created_at) VALUES ('old-join', 'Old join', 'Join', 'enrollment', "
                   "'require_unauthenticated', :created) RETURNING id", created=CREATED).scalar_one()
    digest = tokens.digest(tokens.derive_token(service.TOKEN_PURPOSE, SALT))
    old_sql(connection, "INSERT INTO invitations (tenant_id, name, token_salt, token_digest, "
            "expires_at, flow_id, attributes, single_use, max_uses, use_count, created_by_id, "
            "created_at, email, cc, bcc, message, allowed_domains) VALUES (:tenant, 'old link', "
            ":salt, :digest, NULL, :flow, :attributes, false, NULL, 2, :admin, :created, NULL, "
            ":cc, :bcc, 'hello', :domains)", tenant=tenant, salt=SALT, digest=digest, flow=flow,
            attributes={"team": "red"}, admin=admin, created=CREATED, cc=[], bcc=[], domains=[])
    old_sql(connection, "INSERT INTO audit_events (tenant_id, action, created_at, actor_id, "
            "actor_name, ip_address, object_type, object_id, object_repr, detail) VALUES "
            "(:tenant, 'sign_in.succeeded', :created, :admin, 'root', '192.0.2.1', 'user', "
            ":admin, 'root', :detail)", tenant=tenant, created=CREATED, admin=admin,
            detail={"old": True})


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrade_keeps_old_invitations_and_events_and_takes_instance_ones(tmp_path):
    with upgraded_from(tmp_path, "0014_api_tenant", _fill) as app, app.app_context():
        old = db.session.scalar(select(Invitation))
        assert (old.name, old.tenant.slug, old.grants_superuser, old.use_count, old.message,
                old.attributes) == ("old link", "default", False, 2, "hello", {"team": "red"})
        assert service.find_by_token(tokens.derive_token(service.TOKEN_PURPOSE, SALT)).id == old.id
        event = db.session.scalar(select(AuditEvent))
        assert (event.action, event.tenant_id, event.detail) == (
            Action.SIGN_IN_SUCCEEDED, old.tenant_id, {"old": True})
        root = db.session.scalar(select(User).filter_by(username="root"))
        flow = db.session.scalar(select(Flow).filter_by(slug="old-join"))
        made = service.create_invitation(name="instance link", flow=flow,
                                         expires_at=utcnow() + timedelta(days=1), created_by=root,
                                         instance=True, grants_superuser=True)
        record_event(Action.SIGN_IN_FAILED, object_type="user", object_repr="nobody", commit=True)
        db.session.expire_all()
        assert (db.session.get(Invitation, made.id).tenant_id,
                db.session.get(Invitation, made.id).grants_superuser) == (None, True)
        assert [e.tenant_id for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))] \
            == [old.tenant_id, None, None]  # the old event, the creation, the failed sign-in
        # The name search still finds both (on SQLite: the FTS triggers were made again).
        found = db.session.scalars(select(Invitation.name).where(search.contains("link"))
                                   .order_by(Invitation.id)).all()
        assert found == ["old link", "instance link"]
