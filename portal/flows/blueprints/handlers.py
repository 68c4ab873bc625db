"""One handler per authentik model: how an entry maps onto a portal row (a Plan).

Stage models are not listed here one by one: the stage handler is generic over the stage types'
declarations (see portal.flows.stages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ...access import Grants, group_change_refusal
from ...extensions import db
from ...invitations import service as invitations
from ...models import (
    Flow,
    FlowAuthentication,
    FlowDesignation,
    FlowStageBinding,
    Group,
    Invitation,
    OIDCSource,
    Prompt,
    Stage,
)
from .. import planner
from ..prompts import PROMPT_TYPES
from ..stages import by_model

if TYPE_CHECKING:
    from .importer import Importer

# -- models ------------------------------------------------------------------------------------

FLOW, BINDING = "authentik_flows.flow", "authentik_flows.flowstagebinding"
PROMPT = "authentik_stages_prompt.prompt"
GROUP, INVITATION = "authentik_core.group", "authentik_stages_invitation.invitation"
# Sources are referred to (an identification stage's `sources`), never imported: their
# credentials stay with the admin.
SOURCE = "authentik_sources_oauth.oauthsource"

# Stage models are those of the registered stage types (StageType.model), and the attributes a
# stage acts on are its declared options: neither is listed here.

UNSUPPORTED_MODELS = {
    "authentik_policies_expression.expressionpolicy":
        "expression policies run Python code, which the portal never executes; "
        "express the rule as a declarative condition on the binding instead",
    "authentik_policies.policybinding":
        "policy bindings attach authentik policies, which the portal does not import; "
        "use a condition on the flow's binding instead",
    "authentik_stages_user_logout.userlogoutstage": "logout stages are not supported",
    "authentik_blueprints.metaapplyblueprint": "blueprints that apply other blueprints are not supported",
}
UNSUPPORTED_PREFIXES = {
    "authentik_stages_authenticator_": "authenticator (MFA) stages are not supported",
    "authentik_policies": "authentik policies are not imported; use a condition on the binding instead",
    "authentik_providers_": "providers belong to authentik's single sign-on, not to the portal",
    "authentik_sources_": "federation sources are not supported",
}

# Attributes the portal has no place for, with authentik's default values: a default is silent.
IGNORED_DEFAULTS = {
    "policy_engine_mode": "any", "invalid_response_action": "retry", "compatibility_mode": False,
    "layout": "stacked", "denied_action": "message_continue", "placeholder_expression": False,
    "initial_value_expression": False, "validation_policies": [],
}
AUTHENTIK_PROMPT_TYPES = {
    "text", "text_area", "text_read_only", "text_area_read_only", "username", "email", "password",
    "number", "checkbox", "radio-button-group", "dropdown", "date", "date-time", "file", "separator",
    "hidden", "static", "ak-locale", "alert_info", "alert_warning", "alert_danger",
}
CHOICE_TYPES = {"radio-button-group", "dropdown"}
STATES = {"present", "created", "must_created", "absent"}


def unsupported_reason(model: str) -> str | None:
    """Why the portal skips entries of this model, or None if it imports them."""
    if by_model(model) is not None or model in {FLOW, BINDING, PROMPT, GROUP, INVITATION}:
        return None
    if model in UNSUPPORTED_MODELS:
        return UNSUPPORTED_MODELS[model]
    for prefix, reason in UNSUPPORTED_PREFIXES.items():
        if model.startswith(prefix):
            return reason
    return f"the portal has no equivalent of {model}"



class EntryError(Exception):
    """One entry cannot be applied; the message names the field."""


class Skipped(Exception):
    pass


@dataclass(eq=False)  # compared by identity: two entries may look alike
class _Entry:
    number: int
    model: str
    raw: dict
    state: str = "present"
    id: str | None = None
    deps: list[str] = field(default_factory=list)
    skip: str | None = None
    failed: bool = False
    obj: Any = None


@dataclass
class Plan:
    """How one entry maps onto a row: find it with `where`, then set `values`."""

    model: type
    label: str
    where: dict
    values: dict
    required: tuple = ()
    build: Callable[[dict], Any] | None = None
    notes: list[str] = field(default_factory=list)


FIND_FIELDS = {
    FLOW: (Flow, {"slug": "slug", "name": "name"}),
    PROMPT: (Prompt, {"name": "name", "field_key": "field_key"}),
    GROUP: (Group, {"name": "name"}),
    INVITATION: (Invitation, {"name": "name"}),
    "stage": (Stage, {"name": "name"}),
    SOURCE: (OIDCSource, {"slug": "slug", "name": "name"}),
}



# -- attribute helpers ---------------------------------------------------------------------------


def _jsonable(value, path: str):
    """A value that fits a JSON column (dates as ISO text; objects are refused)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise EntryError(f"{path}: expected a plain value, found a reference to {value!r}.")



def _text(values: dict, key: str, *, max_length: int | None = None) -> str | None:
    if key not in values or values[key] is None:
        return None
    value = values[key]
    if isinstance(value, (dict, list, bool, db.Model)):
        raise EntryError(f"{key}: expected text, found {type(value).__name__}.")
    text = str(value)
    if max_length and len(text) > max_length:
        raise EntryError(f"{key}: longer than {max_length} characters.")
    return text


def _bool(values: dict, key: str) -> bool | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise EntryError(f"{key}: expected true or false, found {value!r}.")


def _int(values: dict, key: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EntryError(f"{key}: expected a whole number, found {value!r}.")
    try:
        return int(value)
    except ValueError:
        raise EntryError(f"{key}: expected a whole number, found {value!r}.") from None


def _ref(values: dict, key: str, cls: type, what: str):
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, cls):
        raise EntryError(f"{key}: expected a reference to {what} (!KeyOf or !Find), found {value!r}.")
    return value


def _choice(values: dict, key: str, allowed) -> str | None:
    value = _text(values, key)
    if value is not None and value not in allowed:
        raise EntryError(f"{key}: {value!r} is not one of {', '.join(allowed)}.")
    return value


def _datetime(values: dict, key: str) -> datetime | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EntryError(f"{key}: {value!r} is not a date and time such as "
                             "2028-12-31T23:59:59Z.") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise EntryError(f"{key}: expected a date and time, found {value!r}.")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _notes_for(values: dict, known: set[str], why: str) -> list[str]:
    notes = []
    for key, value in values.items():
        if key in known or IGNORED_DEFAULTS.get(key, object()) == value:
            continue
        notes.append(f"{key}: {why}")
    return notes


def _drop_pk(identifiers: dict, notes: list[str]) -> dict:
    if "pk" in identifiers:
        notes.append("pk: identifier ignored (authentik's primary keys do not carry over); "
                     "the other identifiers are used")
    return {k: v for k, v in identifiers.items() if k != "pk"}


def _where(identifiers: dict, allowed: dict[str, Callable]) -> dict:
    where = {}
    for key, value in identifiers.items():
        if key not in allowed:
            raise EntryError(f"identifiers.{key}: not supported here (use {', '.join(allowed)}).")
        where.update(allowed[key](value))
    if not where:
        raise EntryError(f"identifiers: give {' or '.join(allowed)}.")
    return where


# -- one handler per model ------------------------------------------------------------------------


def _flow(importer: Importer, entry: _Entry) -> Plan:
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {"slug": lambda v: {"slug": _text({"slug": v}, "slug", max_length=100)}})
    values = {
        "name": _text(attrs, "name", max_length=255),
        "title": _text(attrs, "title", max_length=255),
        "designation": _choice(attrs, "designation", FlowDesignation.CHOICES),
        "authentication": _choice(attrs, "authentication", FlowAuthentication.CHOICES),
        "slug": _text(attrs, "slug", max_length=100),
    }
    notes += _notes_for(attrs, set(values), "ignored; the portal has no such flow setting")
    return Plan(Flow, f"flow {where['slug']!r}", where, _given(values), required=("name",), notes=notes)


def _given(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _group(importer: Importer, entry: _Entry) -> Plan:
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {"name": lambda v: {"name": _text({"name": v}, "name", max_length=150)}})
    attributes = attrs.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise EntryError("attributes: expected a mapping.")
    values = _given({
        "name": _text(attrs, "name", max_length=150),
        "is_superuser": _bool(attrs, "is_superuser"),
        "attributes": _jsonable(attributes, "attributes") if attributes is not None else None,
    })
    notes += _notes_for(attrs, {"name", "is_superuser", "attributes"},
                        "ignored; groups in the portal have a name, a superuser flag and attributes")
    _refuse_group_change(importer.actor, entry, where, values)
    return Plan(Group, f"group {where['name']!r}", where, values, notes=notes)


def _refuse_group_change(actor: Grants, entry: _Entry, where: dict, values: dict) -> None:
    """A blueprint changes a group only if its importer could in the group editor (the same
    rule); an unchanged mention of a group is only a reference."""
    from ...tenants import visible

    existing = db.session.scalars(select(Group).filter_by(**where).where(visible(Group)).limit(1)).first()
    creates = existing is None and entry.state != "absent"
    updates = existing is not None and entry.state == "present" and any(
        getattr(existing, k) != v for k, v in values.items())
    deletes = existing is not None and entry.state == "absent"
    if not (creates or updates or deletes):
        return
    make_superuser = bool(values.get("is_superuser")) and not deletes
    refusal = group_change_refusal(actor, existing, make_superuser=make_superuser)
    if refusal:
        raise EntryError(f"{refusal}.")


def _prompt(importer: Importer, entry: _Entry) -> Plan:
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {
        "name": lambda v: {"name": _text({"name": v}, "name", max_length=255)},
        "field_key": lambda v: {"field_key": _text({"field_key": v}, "field_key", max_length=150)},
    })
    kind = _text(attrs, "type") if "type" in attrs else _text(attrs, "prompt_type")
    if kind is not None and kind not in AUTHENTIK_PROMPT_TYPES | set(PROMPT_TYPES):
        raise EntryError(f"type: unknown prompt type {kind!r}.")
    values = {
        "field_key": _text(attrs, "field_key", max_length=150),
        "label": _text(attrs, "label", max_length=255),
        "type": kind,
        "required": _bool(attrs, "required"),
        "placeholder": _text(attrs, "placeholder"),
        "initial_value": _text(attrs, "initial_value"),
        "help_text": _text(attrs, "sub_text") if "sub_text" in attrs else _text(attrs, "help_text"),
        "order": _int(attrs, "order"),
    }
    for key in ("placeholder", "initial_value"):
        if _bool(attrs, f"{key}_expression") and values[key]:
            values[key] = ""
            notes.append(f"{key}: a Python expression in authentik; the portal never runs code, so it "
                         "is left empty")
    if "choices" in attrs:
        choices = attrs["choices"]
        if choices is not None and not isinstance(choices, list):
            raise EntryError("choices: expected a list.")
        values["choices"] = _jsonable(choices, "choices")
    elif kind in CHOICE_TYPES and values["placeholder"]:
        # authentik reads a dropdown's choices from its placeholder; plain text is one choice.
        values["choices"] = [values["placeholder"]]
        values["placeholder"] = ""
        notes.append("placeholder: used as the only choice, as authentik does")
    known = {"field_key", "label", "type", "prompt_type", "required", "placeholder", "initial_value",
             "sub_text", "help_text", "order", "choices", "name", "placeholder_expression",
             "initial_value_expression"}
    extra = {k: _jsonable(v, k) for k, v in attrs.items() if k not in known}
    if extra:
        values["options"] = extra
    values = _given(values)
    if "name" not in where:  # older files identify prompts by field_key alone
        values.setdefault("name", where["field_key"])
    label = where.get("name") or where.get("field_key")
    return Plan(Prompt, f"prompt {label!r}", where, values, required=("field_key", "type"), notes=notes)


def _stage(importer: Importer, entry: _Entry) -> Plan:
    """Any stage model, from its type's declared options: each declared attribute is read by its
    option (references resolved, validated by the option's own rule); every other attribute is
    reported as not used and left out."""
    stage_type = by_model(entry.model)
    kind = stage_type.type_name
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {"name": lambda v: {"name": _text({"name": v}, "name", max_length=255)}})
    other = db.session.scalar(select(Stage).filter_by(name=where["name"]).where(Stage.type != kind))
    if other is not None:
        raise EntryError(f"identifiers.name: {where['name']!r} is already the name of a stage of "
                         f"type {other.type}.")
    values: dict = {}
    options: dict = {}
    declared = {o.blueprint_attr: o for o in stage_type.declared_options}
    for attr, value in attrs.items():
        option = declared.get(attr)
        if option is None:
            continue
        try:
            stored, option_notes = option.from_blueprint(value)
        except ValueError as exc:  # OptionError, or the option's own rule
            message = str(exc)
            raise EntryError(f"{attr}: {message if message.endswith('.') else message + '.'}") \
                from None
        notes += option_notes
        if option.kind.stored_in_options():
            options[option.key] = stored
        else:  # kept elsewhere on the stage (the prompt stage's fields: its prompts)
            values[option.kind.relation] = stored
    unused = sorted(k for k in attrs if k not in declared and k != "name"
                    and IGNORED_DEFAULTS.get(k, object()) != attrs[k])
    superseded = stage_type.superseded_in(attrs)
    for reason in dict.fromkeys(superseded[k] for k in unused if k in superseded):
        keys = [k for k in unused if superseded.get(k) == reason]
        notes.append(f"{', '.join(keys)}: not acted on, and not needed: {reason}")
    unused = [k for k in unused if k not in superseded]
    if unused:
        notes.append(f"{', '.join(unused)}: not used by the portal's {stage_type.label.lower()} "
                     "stage (no option of it reads this); ignored")
    values["options"] = _jsonable(options, "attrs")
    return Plan(Stage, f"{kind} stage {where['name']!r}", where, values,
                build=lambda v: Stage(type=kind, **v), notes=notes)


def _binding(importer: Importer, entry: _Entry) -> Plan:
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    flow = _ref(ids, "target", Flow, "a flow")
    stage = _ref(ids, "stage", Stage, "a stage")
    for key, value in (("target", flow), ("stage", stage)):
        if value is None:
            raise EntryError(f"{key}: missing required attribute (a binding joins a flow and a stage).")
    where = _where(ids, {
        "target": lambda v: {"flow_id": flow.id},
        "stage": lambda v: {"stage_id": stage.id},
        "order": lambda v: {"order": _int(ids, "order")},
    })
    values = _given({
        "order": _int(attrs, "order"),
        "evaluate_on_plan": _bool(attrs, "evaluate_on_plan"),
        "re_evaluate_policies": _bool(attrs, "re_evaluate_policies"),
        "condition": _condition(attrs.get("condition")),
    })
    notes += _notes_for(attrs, {"order", "evaluate_on_plan", "re_evaluate_policies", "condition"},
                        "ignored; the portal has no such binding setting")
    label = f"binding {flow.slug!r} → {stage.name!r} (order {where.get('order', values.get('order', 0))})"
    return Plan(FlowStageBinding, label, where, values, notes=notes)


def _condition(value) -> dict | None:
    """A portal condition (an export's extension to authentik's format), checked like the editor's."""
    if value is None:
        return None
    value = _jsonable(value, "condition")
    try:
        return planner.validate_condition(value)
    except ValueError as exc:
        raise EntryError(f"condition: {exc}.") from None


def _invitation(importer: Importer, entry: _Entry) -> Plan:
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {"name": lambda v: {"name": _text({"name": v}, "name", max_length=255)}})
    fixed = attrs.get("fixed_data")
    if fixed is not None and not isinstance(fixed, dict):
        raise EntryError("fixed_data: expected a mapping.")
    flow = _ref(attrs, "flow", Flow, "a flow")
    values = {
        "flow": flow,
        "single_use": _bool(attrs, "single_use"),
        "attributes": _jsonable(fixed, "fixed_data") if fixed is not None else None,
    }
    if "expires" in attrs:
        values["expires_at"] = _datetime(attrs, "expires")
    values = {k: v for k, v in values.items() if v is not None or k == "expires_at"}
    notes += _notes_for(attrs, {"name", "flow", "single_use", "fixed_data", "expires"},
                        "ignored; the portal's invitations have no such setting")

    def build(values: dict) -> Invitation:
        if values.get("flow") is None:
            raise EntryError("flow: missing required attribute (an invitation works on one flow).")
        return invitations.create_invitation(
            name=values["name"], flow=values["flow"], expires_at=values.get("expires_at"),
            attributes=values.get("attributes"), single_use=bool(values.get("single_use")),
            commit=False,
        )

    return Plan(Invitation, f"invitation {where['name']!r}", where, values, build=build, notes=notes)


HANDLERS: dict[str, Callable[[Importer, _Entry], Plan]] = {
    FLOW: _flow, BINDING: _binding, PROMPT: _prompt, GROUP: _group, INVITATION: _invitation,
}


def handler_for(model: str) -> Callable[[Importer, _Entry], Plan]:
    """The handler of a model: its own, or the generic one of a registered stage type."""
    return HANDLERS.get(model) or _stage

