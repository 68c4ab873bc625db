"""Which bindings of a flow apply, in order."""

from __future__ import annotations

from ..models import Flow, FlowStageBinding
from .context import FlowContext


def condition_holds(condition: dict | None, ctx: FlowContext) -> bool:
    """Evaluate a binding's declarative condition; None means always."""
    if not condition:
        return True
    raise ValueError(f"unsupported condition {condition.get('type')!r}")


def plan(flow: Flow, ctx: FlowContext) -> list[int]:
    """The bindings to run, in order; conditions marked evaluate_on_plan are checked now."""
    return [
        binding.id
        for binding in flow.bindings
        if not binding.evaluate_on_plan or condition_holds(binding.condition, ctx)
    ]


def applies_when_reached(binding: FlowStageBinding, ctx: FlowContext) -> bool:
    """Re-check a binding when the flow reaches it, like authentik's re_evaluate_policies."""
    if binding.re_evaluate_policies or not binding.evaluate_on_plan:
        return condition_holds(binding.condition, ctx)
    return True
