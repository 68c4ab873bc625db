"""Admin pages for SSO sources (portal.admin.sources), and "create user directly" as SSO-only
(portal.admin.users)."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OIDCSource, SourceConnection, User
from portal.sources import service

from ..conftest import submit

GOOD = {"name": "Keycloak", "slug": "keycloak", "enabled": "y",
        "issuer": "https://sso.example.com/realms/staff", "client_id": "portal",
        "client_secret": "kc-secret-value-0f3a", "scopes": "openid email profile",
        "claim_username": "preferred_username", "claim_email": "email", "claim_name": "name",
        "claim_groups": "", "use_userinfo": "y", "matching_mode": "email_link",
        "enrollment_flow_id": "", "authoritative_fields": ["email"], "show_on_login": "y"}


def test_a_source_is_created_with_its_secret_sealed_and_never_shown(app, client, auth, admin):
    auth.login()
    page = submit(client, "/admin/sources/new", GOOD).get_data(as_text=True)
    assert "http://portal.test/source/oidc/keycloak/callback" in page
    assert GOOD["client_secret"] not in page
    with app.app_context():
        source = db.session.scalar(select(OIDCSource))
        assert GOOD["client_secret"] not in source.client_secret_sealed
        assert service.client_secret(source) == GOOD["client_secret"]
        events = db.session.scalars(select(AuditEvent).filter_by(action="source.saved")).all()
        assert len(events) == 1 and GOOD["client_secret"] not in str(events[0].detail)
        source_id = source.id
    edit = client.get(f"/admin/sources/{source_id}").get_data(as_text=True)
    assert GOOD["client_secret"] not in edit
    # a change with the secret left blank keeps it
    submit(client, f"/admin/sources/{source_id}", {**GOOD, "name": "Staff SSO",
                                                   "client_secret": ""})
    with app.app_context():
        source = db.session.get(OIDCSource, source_id)
        assert source.name == "Staff SSO" and service.client_secret(source) == GOOD["client_secret"]


def test_bad_fields_are_refused_and_keep_what_was_typed(app, client, auth, admin):
    auth.login()
    bad = {**GOOD, "slug": "Not A Slug", "issuer": "http://idp.example.com", "scopes": "email",
           "client_secret": ""}
    response = submit(client, "/admin/sources/new", bad)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Lower-case letters, digits and dashes" in page
    assert "Use the provider&#39;s https address" in page or "https address" in page
    assert "The scopes must include openid." in page
    assert "Enter the client secret" in page
    assert 'value="Not A Slug"' in page and 'value="http://idp.example.com"' in page
    with app.app_context():
        assert db.session.scalar(select(OIDCSource)) is None


def test_only_superusers_see_the_sources_pages(app, client, auth, admin):
    from portal.auth.service import create_user

    with app.app_context():
        create_user(username="plain", email="plain@example.com", password="x" * 20)
    auth.login("plain", "x" * 20)
    assert client.get("/admin/sources/").status_code == 403


def test_create_user_directly_as_sso_only_gets_no_password_and_no_link(app, client, auth, admin):
    with app.app_context():
        source = service.save_source(None, {k: v for k, v in GOOD.items()
                                             if k not in ("enabled", "use_userinfo",
                                                          "show_on_login", "enrollment_flow_id")}
                                     | {"enabled": True, "show_on_login": True}, actor=None,
                                     ip=None)
        source_id = source.id
    auth.login()
    response = submit(client, "/admin/users/new", {
        "username": "dana", "email": "dana@example.com", "name": "Dana",
        "sign_in_with": str(source_id)})
    page = response.get_data(as_text=True)
    assert "They sign in with Keycloak as dana@example.com; no password and no link." in page
    assert "/auth/set-password/" not in page
    with app.app_context():
        dana = db.session.scalar(select(User).filter_by(username="dana"))
        assert dana.password_hash is None
        waiting = db.session.scalars(select(SourceConnection).filter_by(user_id=dana.id)).all()
        assert [(c.source_id, c.subject) for c in waiting] == [(source_id, None)]
        from portal.models import ActionToken

        assert db.session.scalar(select(ActionToken).filter_by(user_id=dana.id)) is None


# -- the group map and the privilege ceiling ----------------------------------------------------


def _ceiling_groups(app) -> None:
    """ "Staff" grants nothing (any access admin may give it); "Builders" grants flows: manage,
    which the keeper below does not hold."""
    from portal.models import Group, Role

    with app.app_context():
        db.session.add_all([Group(name="Staff", attributes={}), Group(name="Builders", attributes={},
                            roles=[Role(name="builder", permissions=["flows:manage"])])])
        db.session.commit()


MAPPED = {**GOOD, "claim_groups": "groups", "instance_wide": ""}


def test_a_tenant_admin_maps_groups_only_within_their_ceiling(app, client, auth, admin):
    """keeper holds "access: manage" (enough for the sources page) but not flows: manage: a map
    to "Builders" is refused on the field, what was typed kept, nothing saved; a group that does
    not exist is named; "Staff" is saved, and shown again as typed."""
    from ..helpers import make_member

    _ceiling_groups(app)
    make_member(app, "keeper", permissions=["access:manage"])
    auth.login("keeper")
    page = submit(client, "/admin/sources/new", {
        **MAPPED, "group_map": "staff → Staff\nbuild -> Builders"}).get_data(as_text=True)
    assert "can put people in the group “Builders”, which grants more than you may give" in page
    assert "build -&gt; Builders" in page
    page = submit(client, "/admin/sources/new", {**MAPPED, "group_map": "x → Nobody"}
                  ).get_data(as_text=True)
    assert "No group named “Nobody” in this tenant." in page
    page = submit(client, "/admin/sources/new", {**MAPPED, "group_map": "staff"}
                  ).get_data(as_text=True)
    assert "Line 1: write “provider group → portal group”." in page
    page = submit(client, "/admin/sources/new", {**MAPPED, "claim_groups": "",
                                                 "group_map": "staff → Staff"}
                  ).get_data(as_text=True)
    assert "Name the groups claim first" in page
    with app.app_context():
        assert db.session.scalar(select(OIDCSource)) is None
    submit(client, "/admin/sources/new", {**MAPPED, "group_map": "staff → Staff\n\n"})
    with app.app_context():
        source = db.session.scalar(select(OIDCSource))
        assert source.group_map == [["staff", "Staff"]] and source.tenant_id is not None
        source_id = source.id
        saved = db.session.scalars(select(AuditEvent).filter_by(action="source.saved")).all()
        assert [e.detail["group_map"] for e in saved] == [[["staff", "Staff"]]]
    assert "staff → Staff</textarea>" in client.get(f"/admin/sources/{source_id}").get_data(
        as_text=True)


def test_a_map_beyond_the_admin_is_read_only_to_them(app, client, auth, admin):
    """A superadmin mapped keeper's tenant source to "Builders": keeper may not change that
    source at all (not even to take the line away), like a flow beyond their ceiling; the
    service refuses the same change (CeilingError) whoever calls it."""
    from portal.access import CeilingError, grants_for
    from portal.models import User
    from portal.tenants import default_tenant

    from ..helpers import make_member

    _ceiling_groups(app)
    make_member(app, "keeper", permissions=["access:manage"])
    with app.app_context():
        source = service.save_source(None, {
            **{k: v for k, v in GOOD.items() if k in service.FIELDS}, "enabled": True,
            "use_userinfo": True, "show_on_login": True, "client_secret": "s" * 20,
            "enrollment_flow_id": None, "claim_groups": "groups",
            "group_map": "build → Builders", "tenant_id": default_tenant().id},
            actor=None, ip=None)
        source_id = source.id
    auth.login("keeper")
    page = submit(client, f"/admin/sources/{source_id}", {
        **MAPPED, "client_secret": "", "group_map": ""}).get_data(as_text=True)
    assert "can put people in the group “Builders”" in page
    with app.app_context():
        source = db.session.get(OIDCSource, source_id)
        assert source.group_map == [["build", "Builders"]]
        keeper = db.session.scalar(select(User).filter_by(username="keeper"))
        try:
            service.save_source(source, {"group_map": ""}, actor=keeper, ip=None,
                                grants=grants_for(keeper))
        except CeilingError as error:
            assert "Builders" in str(error)
        else:
            raise AssertionError("the service saved a map beyond the admin's ceiling")
        assert db.session.get(OIDCSource, source_id).group_map == [["build", "Builders"]]
