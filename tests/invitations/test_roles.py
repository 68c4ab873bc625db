"""invitations.roles: the problems of directly attached roles, entry by entry."""

from __future__ import annotations

from portal.access import ALL, Grants
from portal.invitations.roles import direct_role_problems, namespace_problem
from portal.models import Role

SALES = Role(name="sales-inviter", permissions=["invitations:manage"], namespaces=["sales"])
AUDIT = Role(name="auditor", permissions=["audit:view"], namespaces=[])


def test_a_limit_must_lie_within_the_roles_own_namespaces():
    assert namespace_problem(SALES, ["sales.emea", "sales-eu"]) is None
    assert namespace_problem(SALES, ["sales.emea", "hr"]) == (
        "The role “sales-inviter” covers only sales; “hr” is outside it.")
    assert namespace_problem(AUDIT, ["anything"]) is None  # a role for every flow


def test_each_entry_answers_for_itself(app):
    with app.app_context():
        from portal import tenants

        tenant_id = tenants.default_tenant().id
        SALES.tenant_id = AUDIT.tenant_id = tenant_id
        inviter = Grants(scopes={"invitations:manage": ALL})
        problems = direct_role_problems(inviter, [(SALES, ["sales"]), (AUDIT, []), (SALES, ["hr"])])
        assert sorted(problems) == [1, 2]
        assert "grants more than you hold" in problems[1] and "outside it" in problems[2]
        assert direct_role_problems(Grants(superuser=True), [(AUDIT, [])]) == {}
