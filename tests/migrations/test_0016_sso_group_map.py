"""migrations/versions/0016_sso_group_map: a source saved before the group map keeps working,
with an empty map (granting nothing, as before), and takes a map afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Group, OIDCSource
from portal.sources import service

from ..helpers import old_sql, upgraded_from


def _fill(connection) -> None:
    old_sql(connection,
            "INSERT INTO oidc_sources (name, slug, enabled, issuer, client_id, "
            "client_secret_sealed, scopes, claim_username, claim_email, claim_name, claim_groups, "
            "use_userinfo, matching_mode, authoritative_fields, show_on_login, created_at) VALUES "
            "('Old IdP', 'old', true, 'https://idp.example.com', 'portal', 'sealed', "
            "'openid email', 'preferred_username', 'email', 'name', 'groups', true, 'email_link', "
            ":fields, true, :now)", fields=["email"], now=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_an_old_source_upgrades_with_an_empty_map_and_takes_one(tmp_path):
    with upgraded_from(tmp_path, "0014_api_tenant", _fill) as app, app.app_context():
        source = db.session.scalar(select(OIDCSource))
        assert (source.slug, source.group_map, source.authoritative_fields) == (
            "old", [], ["email"])
        db.session.add(Group(name="Staff", attributes={}))
        db.session.commit()
        service.save_source(source, {"group_map": "staff → Staff"}, actor=None, ip=None)
        db.session.expire_all()
        assert db.session.scalar(select(OIDCSource)).group_map == [["staff", "Staff"]]
