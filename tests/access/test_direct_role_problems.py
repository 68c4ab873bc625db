"""access.ceiling.direct_role_problems: the one rule for directly attached roles
(direct_role_problem), entry by entry, as the API names each entry's problem."""

from __future__ import annotations

from portal.access import ALL, Grants
from portal.access.ceiling import direct_role_problems
from portal.models import Role

SALES = Role(name="sales-inviter", permissions=["invitations:manage"], namespaces=["sales"])
AUDIT = Role(name="auditor", permissions=["audit:view"], namespaces=[])


def test_each_entry_answers_for_itself(app):
    with app.app_context():
        from portal import tenants

        tenant_id = tenants.default_tenant().id
        SALES.tenant_id = AUDIT.tenant_id = tenant_id
        inviter = Grants(scopes={"invitations:manage": ALL})
        problems = direct_role_problems(
            inviter, [(SALES, ["sales.emea", "sales-eu"]), (AUDIT, []), (SALES, ["hr"]),
                      (AUDIT, ["anything"])])
        assert sorted(problems) == [1, 2, 3]
        assert "grants more than you hold" in problems[1]
        assert problems[2] == ("“hr” is outside the role's own namespaces (sales); a limit can "
                               "only narrow the role.")
        assert direct_role_problems(Grants(superuser=True), [(AUDIT, []), (AUDIT, ["x"])]) == {}
