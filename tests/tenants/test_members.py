"""portal.tenants members: an existing account added to a tenant with groups and direct roles,
and removed from it (never the last superadmin, never yourself out of admin); one service for
the users page (tests/admin/test_users.py) and `flask tenants add-member / remove-member`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import tenants
from portal.access import grants_for
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import AuditEvent, Group, MemberRole, Role, Tenant, User, tenant_members

from ..conftest import TEST_PASSWORD
from ..helpers import limited_lead


def _beta(app) -> None:
    limited_lead(app)
    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))
        db.session.add_all([Group(name="crew", attributes={}),
                            Group(name="beta-root", attributes={}, is_superuser=True)])
        db.session.commit()
        tenants.use_tenant(None)  # sam is of the default tenant only
        accounts.create_user(username="sam", email="Sam@Example.com", password=TEST_PASSWORD)
        db.session.commit()


def _state(username: str) -> tuple:
    """(tenant slugs, group names, direct roles in beta) of an account."""
    user = db.session.scalar(select(User).filter_by(username=username))
    db.session.refresh(user)
    beta = db.session.scalar(select(Tenant).filter_by(slug="beta"))
    direct = sorted((d.role.name, d.namespaces) for d in db.session.scalars(
        select(MemberRole).filter_by(user_id=user.id, tenant_id=beta.id)))
    return [t.slug for t in user.tenants], sorted(g.name for g in user.groups), direct


def _in_beta():
    tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))


def test_an_existing_account_joins_with_groups_and_roles_and_leaves(app, admin):
    _beta(app)
    with app.app_context():
        _in_beta()
        sam = tenants.find_account("sam@example.com")  # by email, any case
        assert sam is not None and tenants.find_account("SAM") is sam
        assert tenants.find_account("nobody") is None
        crew = db.session.scalar(select(Group).filter_by(name="crew"))
        auditor = db.session.scalar(select(Role).filter_by(name="auditor"))
        tenants.add_existing_member(sam, groups=[crew], roles=[(auditor, ["sales"])],
                                    actor=db.session.get(User, admin), ip="192.0.2.1")
        assert _state("sam") == (["beta", "default"], ["crew"], [("auditor", ["sales"])])
        beta = db.session.scalar(select(Tenant).filter_by(slug="beta"))
        assert grants_for(sam, beta).scopes == {"audit:view": {"sales"}}
        event = db.session.scalar(select(AuditEvent).filter_by(action="tenant.member_added"))
        assert (event.tenant_id, event.object_id, event.actor_name, event.detail) == (
            beta.id, sam.id, "admin", {"groups": ["crew"], "roles": [["auditor", ["sales"]]]})
        with pytest.raises(tenants.TenantError, match="sam is already a member of Beta."):
            tenants.add_existing_member(sam)
        _in_beta()
        tenants.remove_member(sam, actor=db.session.get(User, admin))
        assert _state("sam") == (["default"], [], [])
        assert grants_for(sam, beta).scopes == {}
        event = db.session.scalar(select(AuditEvent).filter_by(action="tenant.member_removed"))
        assert event.detail == {"groups": ["crew"], "roles": ["auditor"]}
        _in_beta()
        with pytest.raises(tenants.TenantError, match="sam is not a member of Beta."):
            tenants.remove_member(sam)


def test_adding_refuses_other_tenants_groups_and_bad_role_limits(app, admin):
    _beta(app)
    with app.app_context():
        default_group = Group(name="elsewhere", attributes={})
        tenants.use_tenant(tenants.default_tenant())
        db.session.add(default_group)
        db.session.commit()
        _in_beta()
        sam = tenants.find_account("sam")
        with pytest.raises(tenants.TenantError, match="The group “elsewhere” is not one of Beta's."):
            tenants.add_existing_member(sam, groups=[default_group])
        sales_auditor = db.session.scalar(select(Role).filter_by(name="sales-auditor"))
        with pytest.raises(tenants.TenantError) as refused:
            tenants.add_existing_member(sam, roles=[(sales_auditor, ["hr"])])
        assert str(refused.value) == ("The role “sales-auditor”: “hr” is outside the role's own "
                                      "namespaces (sales); a limit can only narrow the role.")
        assert _state("sam") == (["default"], [], [])


def test_the_last_superadmin_and_yourself_are_not_removed(app):
    _beta(app)
    with app.app_context():
        _in_beta()
        root = db.session.scalar(select(Group).filter_by(name="beta-root"))
        boss = accounts.create_user(username="boss", email="boss@example.com", password=TEST_PASSWORD)
        boss.groups.append(root)  # the only superadmin: through beta's group
        tenants.add_member(boss)
        db.session.commit()
        with pytest.raises(tenants.TenantError, match=r"boss is the last superadmin \(through the "
                                                       r"group “beta-root”\)"):
            tenants.remove_member(boss)
        second = accounts.create_user(username="second", email="second@example.com",
                                      password=TEST_PASSWORD)
        second.groups.append(root)
        tenants.add_member(second)
        db.session.commit()
        with pytest.raises(tenants.TenantError, match="You cannot remove yourself"):
            tenants.remove_member(boss, actor=boss)
        tenants.remove_member(boss, actor=second)  # another superadmin stays
        assert _state("boss") == ([], [], [])


def test_the_cli_adds_and_removes_a_member(app, admin, runner):
    _beta(app)
    added = runner.invoke(args=["tenants", "add-member", "sam@example.com", "--tenant", "beta",
                                "--group", "crew", "--role", "auditor:sales,hr",
                                "--role", "sales-auditor"])
    assert added.exit_code == 0, added.output
    assert added.output == "sam is now a member of beta with 1 group(s) and 2 direct role(s).\n"
    with app.app_context():
        assert _state("sam") == (["beta", "default"], ["crew"],
                                 [("auditor", ["sales", "hr"]), ("sales-auditor", [])])
    again = runner.invoke(args=["tenants", "add-member", "sam", "--tenant", "beta"])
    assert again.exit_code == 1 and "sam is already a member of Beta." in again.output
    unsaid = runner.invoke(args=["tenants", "remove-member", "sam"])  # two tenants: say which
    assert unsaid.exit_code == 1 and "--tenant SLUG" in unsaid.output
    unknown = runner.invoke(args=["tenants", "remove-member", "nobody", "--tenant", "beta"])
    assert unknown.exit_code == 2 and "no account has the username or email 'nobody'" in unknown.output
    bad_role = runner.invoke(args=["tenants", "add-member", "admin", "--tenant", "beta",
                                   "--role", "sales-auditor:Sales!"])
    assert bad_role.exit_code == 1 and "“Sales!” is not a namespace" in bad_role.output
    removed = runner.invoke(args=["tenants", "remove-member", "sam", "--tenant", "beta"])
    assert removed.exit_code == 0 and removed.output == "sam is no longer a member of beta.\n"
    with app.app_context():
        assert _state("sam") == (["default"], [], [])
        beta_id = db.session.scalar(select(Tenant.id).filter_by(slug="beta"))
        assert db.session.scalars(select(User.username).join(
            tenant_members, tenant_members.c.user_id == User.id).where(
            tenant_members.c.tenant_id == beta_id)).all() == ["lead"]
