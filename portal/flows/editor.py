"""Changing flows, stages, prompts and bindings for the admin's editor. No HTTP here.

Deleting cascades in the database (a flow takes its bindings and invitations, a stage its
bindings, a prompt its place in prompt stages), so the editor first asks `*_usage` what would go.
"""

from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..models import Flow, FlowSession, FlowStageBinding, Invitation, Prompt, Stage, utcnow

ORDER_STEP = 10


def flow_usage(flow: Flow) -> list[str]:
    """What deleting this flow would take with it, in words."""
    used = [f"invitation “{name}”" for name in db.session.scalars(
        select(Invitation.name).filter_by(flow_id=flow.id).order_by(Invitation.name))]
    running = db.session.scalar(select(func.count(FlowSession.id)).where(
        FlowSession.flow_id == flow.id, FlowSession.finished_at.is_(None),
        FlowSession.expires_at > utcnow()))
    if running:
        used.append(f"{running} sign-up{'s' if running != 1 else ''} in progress")
    return used


def stage_usage(stage: Stage) -> list[str]:
    return [f"flow “{slug}” (order {order})" for slug, order in db.session.execute(
        select(Flow.slug, FlowStageBinding.order).join(FlowStageBinding.flow)
        .where(FlowStageBinding.stage_id == stage.id).order_by(Flow.slug, FlowStageBinding.order))]


def prompt_usage(prompt: Prompt) -> list[str]:
    return [f"prompt stage “{stage.name}”" for stage in sorted(prompt.stages, key=lambda s: s.name)]


def delete(obj) -> None:
    db.session.delete(obj)
    db.session.commit()


def next_order(flow: Flow) -> int:
    """An order after the flow's last binding."""
    return max((b.order for b in flow.bindings), default=0) + ORDER_STEP


def add_binding(flow: Flow, stage: Stage, **values) -> FlowStageBinding:
    binding = FlowStageBinding(flow=flow, stage=stage, **values)
    db.session.add(binding)
    db.session.commit()
    return binding


def update(obj, **values):
    for key, value in values.items():
        setattr(obj, key, value)
    db.session.commit()
    return obj


def move_binding(binding: FlowStageBinding, direction: int) -> bool:
    """Swap a binding with its neighbour (direction -1 up, +1 down); False at either end.

    Orders are renumbered in steps of ten only when two bindings share one, so imported orders
    (authentik's 10, 20, 100...) survive a move whenever they can.
    """
    flow = binding.flow
    ordered = sorted(flow.bindings, key=lambda b: (b.order, b.id))
    index = ordered.index(binding)
    other = index + direction
    if not 0 <= other < len(ordered):
        return False
    if len({b.order for b in ordered}) != len(ordered):
        for position, item in enumerate(ordered, start=1):
            item.order = position * ORDER_STEP
    neighbour = ordered[other]
    binding.order, neighbour.order = neighbour.order, binding.order
    db.session.commit()
    db.session.expire(flow, ["bindings"])
    return True
