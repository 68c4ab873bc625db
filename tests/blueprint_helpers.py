"""Shared by the blueprint tests: authentik's example files and comparable snapshots of flows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from portal.access import Grants
from portal.extensions import db
from portal.models import Flow, FlowStageBinding, Group, Invitation, Prompt, Stage, User

# CI checks out ../shared beside the repository.
BLUEPRINTS = Path(__file__).resolve().parents[2] / "shared" / "authentik-blueprints"

OPERATOR = Grants(superuser=True)  # who runs `flask blueprints import`: trusted with everything

needs_blueprints = pytest.mark.skipif(
    not BLUEPRINTS.is_dir(),
    reason="authentik's example blueprints are not checked out beside the repository "
           "(expected ../shared/authentik-blueprints)",
)


def blueprint_text(name: str) -> str:
    return (BLUEPRINTS / name).read_text(encoding="utf-8")


def blueprint_files() -> list[str]:
    return sorted(p.name for p in BLUEPRINTS.glob("*.yaml")) if BLUEPRINTS.is_dir() else []


def empty_database() -> None:
    """Remove the seeded default flow and everything like it, as on a fresh install."""
    for model in (Invitation, FlowStageBinding, Flow, Stage, Prompt, Group):
        db.session.execute(delete(model))
    db.session.commit()


def row_counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Flow, Stage, Prompt, FlowStageBinding, Group, Invitation, User)
    }


def _group(group_id):
    group = db.session.get(Group, group_id) if group_id else None
    return None if group is None else (group.name, group.is_superuser, group.attributes)


def _prompt(prompt: Prompt) -> tuple:
    return (prompt.name, prompt.field_key, prompt.label, prompt.type, prompt.required,
            prompt.placeholder, prompt.initial_value, prompt.help_text, prompt.order,
            prompt.choices, prompt.options or {})


def _stage(stage: Stage) -> tuple:
    options = dict(stage.options or {})
    if "create_users_group" in options:
        options["create_users_group"] = _group(options["create_users_group"])
    return (stage.name, stage.type, options, [_prompt(p) for p in stage.prompts])


def flow_snapshot(slug: str) -> dict:
    """A flow as the invitee experiences it, with no database ids, so two databases compare."""
    flow = db.session.scalar(select(Flow).filter_by(slug=slug))
    assert flow is not None, slug
    return {
        "flow": (flow.slug, flow.name, flow.title, flow.designation, flow.authentication),
        "bindings": [(b.order, b.evaluate_on_plan, b.re_evaluate_policies, b.condition, _stage(b.stage))
                     for b in flow.bindings],
    }
