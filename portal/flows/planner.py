"""Which bindings of a flow apply, in order.

A binding may carry a declarative condition (JSON, never code), e.g.
``{"type": "prompt_in", "field": "team", "values": ["red", "blue"], "negate": false}``.
CONDITION_TYPES lists what an admin (or an imported blueprint) can express.
"""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import Flow, FlowStageBinding, Stage
from .context import FlowContext

CONDITION_TYPES = {
    "invitation_in_effect": "An invitation is in effect",
    "prompt_equals": "A prompt's value equals",
    "prompt_in": "A prompt's value is one of",
    "email_domain_in": "The email's domain is in a list",
    "invitation_has_attribute": "The invitation's attributes have a key",
}


class ConditionError(ValueError):
    """A stored condition the planner cannot evaluate; the message says what is wrong."""


def _text(value) -> str:
    """Compare prompt values as the text a form would have posted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).strip()


def _strings(value, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float, bool)) for v in value):
        raise ConditionError(f"{name} must be a list of values")
    return [_text(v) for v in value]


def _required_text(condition: dict, name: str) -> str:
    value = condition.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConditionError(f"{name} is required")
    return value.strip()


def validate_condition(condition) -> dict | None:
    """The condition in canonical form, or ConditionError naming the problem (for forms and import)."""
    if condition in (None, {}):
        return None
    if not isinstance(condition, dict):
        raise ConditionError("a condition must be an object")
    kind = condition.get("type")
    if kind not in CONDITION_TYPES:
        raise ConditionError(f"unknown condition type {kind!r}")
    clean: dict = {"type": kind}
    if kind in ("prompt_equals", "prompt_in"):
        clean["field"] = _required_text(condition, "field")
    if kind == "prompt_equals":
        if isinstance(condition.get("value"), (dict, list)):
            raise ConditionError("value must be a single value")
        clean["value"] = _text(condition.get("value"))
    elif kind == "prompt_in":
        clean["values"] = _strings(condition.get("values"), "values")
    elif kind == "email_domain_in":
        clean["field"] = str(condition.get("field") or "email").strip()
        clean["domains"] = [d.lower().lstrip("@") for d in _strings(condition.get("domains"), "domains")]
    elif kind == "invitation_has_attribute":
        clean["key"] = _required_text(condition, "key")
    if condition.get("negate"):
        clean["negate"] = True
    return clean


def _lookup(data: dict, dotted: str):
    """`a.b` reads data["a"]["b"]; a literal key "a.b" wins when present."""
    if dotted in data:
        return True, data[dotted]
    current = data
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _evaluate(condition: dict, ctx: FlowContext) -> bool:
    kind = condition["type"]
    if kind == "invitation_in_effect":
        from ..invitations.service import refusal_for

        invitation = ctx.invitation
        return invitation is not None and refusal_for(invitation, ctx.flow, token_supplied=True) is None
    if kind == "prompt_equals":
        return _text(ctx.prompt_data.get(condition["field"])) == condition["value"]
    if kind == "prompt_in":
        return _text(ctx.prompt_data.get(condition["field"])) in condition["values"]
    if kind == "email_domain_in":
        address = _text(ctx.prompt_data.get(condition["field"]))
        domain = address.rpartition("@")[2].lower() if "@" in address else ""
        return bool(domain) and domain in condition["domains"]
    if kind == "invitation_has_attribute":
        invitation = ctx.invitation
        return invitation is not None and _lookup(invitation.attributes or {}, condition["key"])[0]
    raise ConditionError(f"unknown condition type {kind!r}")  # pragma: no cover - validated first


def condition_holds(condition: dict | None, ctx: FlowContext) -> bool:
    """Evaluate a binding's declarative condition; None means always."""
    clean = validate_condition(condition)
    if clean is None:
        return True
    result = _evaluate(clean, ctx)
    return not result if clean.get("negate") else result


def describe_condition(condition: dict | None) -> str:
    """The condition in words, for the flow editor."""
    try:
        clean = validate_condition(condition)
    except ConditionError as exc:
        return f"Invalid condition: {exc}"
    if clean is None:
        return "Always"
    kind = clean["type"]
    text = {
        "invitation_in_effect": "an invitation is in effect",
        "prompt_equals": f"“{clean.get('field')}” equals “{clean.get('value')}”",
        "prompt_in": f"“{clean.get('field')}” is one of {', '.join(clean.get('values', []))}",
        "email_domain_in": f"the domain of “{clean.get('field')}” is one of "
                           f"{', '.join(clean.get('domains', []))}",
        "invitation_has_attribute": f"the invitation's attributes have “{clean.get('key')}”",
    }[kind]
    return ("Unless " if clean.get("negate") else "Only if ") + text


def definition_options():
    """Load options for a flow's whole definition (its bindings, their stages, the stages'
    prompts) in the flow's own query: the wizard reads them on every page, and one joined SELECT
    costs less than a lazy load per binding, stage and prompt list."""
    return (joinedload(Flow.bindings).joinedload(FlowStageBinding.stage)
            .joinedload(Stage.prompts),)


def bindings_of(flow: Flow) -> list[FlowStageBinding]:
    """The flow's bindings with their stages and prompts: from the flow as loaded (see
    definition_options), else in one query rather than one per binding."""
    if "bindings" in inspect(flow).unloaded:
        bindings = list(db.session.scalars(
            select(FlowStageBinding).where(FlowStageBinding.flow_id == flow.id)
            .order_by(FlowStageBinding.order, FlowStageBinding.id)
            .options(joinedload(FlowStageBinding.stage).joinedload(Stage.prompts))
        ).unique())
        set_committed_value(flow, "bindings", bindings)
    return flow.bindings


def plan(flow: Flow, ctx: FlowContext) -> list[int]:
    """The bindings to run, in order; conditions marked evaluate_on_plan are checked now."""
    return [
        binding.id
        for binding in bindings_of(flow)
        if not binding.evaluate_on_plan or condition_holds(binding.condition, ctx)
    ]


def applies_when_reached(binding: FlowStageBinding, ctx: FlowContext) -> bool:
    """Re-check a binding when the flow reaches it, like authentik's re_evaluate_policies."""
    if binding.re_evaluate_policies or not binding.evaluate_on_plan:
        return condition_holds(binding.condition, ctx)
    return True
