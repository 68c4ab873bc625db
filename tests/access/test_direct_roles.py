"""The one rule for a role attached directly (portal.access.ceiling.direct_role_problem): each
namespace well-formed and within the role's own, nothing beyond the admin, this tenant's roles
only. Every form, the member commands and check_invitation ask it."""

from __future__ import annotations

from sqlalchemy import select

from portal import tenants
from portal.access import Grants, givable_roles, grants_for
from portal.access.ceiling import CeilingError, check_invitation, direct_role_problem
from portal.extensions import db
from portal.models import Role, Tenant, User

from ..helpers import limited_lead


def _role(name: str) -> Role:
    return db.session.scalar(select(Role).filter_by(name=name))


def test_each_namespace_is_well_formed_within_the_role_and_within_the_admin(app, admin):
    beta_id = limited_lead(app)
    with app.app_context():
        beta = db.session.get(Tenant, beta_id)
        tenants.use_tenant(beta)
        lead = grants_for(db.session.scalar(select(User).filter_by(username="lead")), beta)
        auditor, sales_auditor, boss = _role("auditor"), _role("sales-auditor"), _role("flows-boss")
        # Within: narrowed to the lead's own namespace, or inside the role's.
        assert direct_role_problem(lead, auditor, ["sales"]) is None
        assert direct_role_problem(lead, auditor, ["sales.emea", "sales-eu"]) is None
        assert direct_role_problem(lead, sales_auditor, []) is None
        assert direct_role_problem(lead, sales_auditor, ["sales.emea"]) is None
        # Syntax.
        assert direct_role_problem(lead, auditor, ["Sales!"]) == (
            "“Sales!” is not a namespace: use lower-case letters, digits and . - _ (at most 100), "
            "like “sales” or “sales.emea”.")
        # Outside the role's own: a limit only narrows.
        assert direct_role_problem(lead, sales_auditor, ["hr"]) == (
            "“hr” is outside the role's own namespaces (sales); a limit can only narrow the role.")
        # Outside the admin's ceiling: unlimited, or limited beyond what the lead holds.
        beyond = ("The role “auditor” grants more than you hold there; you can only give "
                  "permissions you hold yourself, in your own namespaces (limit it to yours: sales).")
        assert direct_role_problem(lead, auditor, []) == beyond
        assert direct_role_problem(lead, auditor, ["sales", "hr"]) == beyond
        assert direct_role_problem(lead, boss, ["sales"]) == (
            "The role “flows-boss” grants more than you hold there; you can only give permissions "
            "you hold yourself, in your own namespaces.")
        # A superadmin: syntax and the role's own still hold, the ceiling does not.
        root = Grants(superuser=True)
        assert direct_role_problem(root, boss, []) is None
        assert direct_role_problem(root, sales_auditor, ["hr"]) is not None
        # The form offers what can be given at least narrowed: not flows-boss.
        assert [r.name for r in givable_roles(lead)] == ["auditor", "inviter", "sales-auditor",
                                                          "sales-reader"]
        # Another tenant's role, whoever asks.
        tenants.use_tenant(tenants.default_tenant())
        assert direct_role_problem(root, auditor, []) == "Only roles of this tenant can be given."


def test_check_invitation_refuses_a_new_bad_limit_but_weighs_a_stored_one_by_the_ceiling_only(app, admin):
    beta_id = limited_lead(app)
    with app.app_context():
        beta = db.session.get(Tenant, beta_id)
        tenants.use_tenant(beta)
        lead = grants_for(db.session.scalar(select(User).filter_by(username="lead")), beta)
        sales_auditor = _role("sales-auditor")
        try:
            check_invitation(lead, roles=[(sales_auditor, ["hr"])])
        except CeilingError as exc:
            assert str(exc) == ("The role “sales-auditor”: “hr” is outside the role's own namespaces "
                                "(sales); a limit can only narrow the role.")
        else:
            raise AssertionError("a limit outside the role's own was accepted")
        from portal.invitations import service

        flow = db.session.scalar(select(tenants.Flow).filter_by(slug="default-enrollment-flow"))
        # Saved before the rule (the old single list for every role): still manageable.
        old = service.create_invitation(name="old", flow=flow, expires_at=None,
                                        roles=[(sales_auditor, ["hr"])])
        check_invitation(lead, old)
        # It grants nothing there, and its page says so rather than showing the marker.
        assert tenants.grants_summary(old)["roles"] == [
            ("sales-auditor", ["none (limited outside the role's own)"])]
