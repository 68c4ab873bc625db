"""Roles attached directly to an invitation (Kestra's "attach a role"), each maybe limited to
namespaces: which problems a chosen (role, namespaces) list has, one per entry, so a form or an
API can show each beside its own row. The ceiling itself is access.direct_role_refusal, the
same function check_invitation applies to every invitation action."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..access import Grants, in_namespace
from ..access.ceiling import direct_role_refusal
from ..models import Role


def namespace_problem(role: Role, namespaces: Iterable[str]) -> str | None:
    """A limit outside the role's own namespaces would silently cover nothing of it: say so."""
    own = [n for n in role.namespaces or [] if n.strip()]
    if not own:
        return None
    for namespace in namespaces:
        if not any(in_namespace(namespace, o) for o in own):
            return (f"The role “{role.name}” covers only {', '.join(own)}; “{namespace}” is "
                    f"outside it.")
    return None


def direct_role_problems(grants: Grants, roles: Sequence[tuple[Role, Sequence[str]]]
                         ) -> dict[int, str]:
    """The problem of each entry, by its position: a namespace outside the role, or a role
    beyond what this admin may give (direct_role_refusal). Empty when all may be given."""
    problems: dict[int, str] = {}
    for index, (role, namespaces) in enumerate(roles):
        problem = namespace_problem(role, namespaces) or direct_role_refusal(
            grants, [(role, namespaces)])
        if problem:
            problems[index] = problem
    return problems
