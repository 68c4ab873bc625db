"""A flow, its stages, prompts, bindings and referenced groups, as blueprint YAML."""

from __future__ import annotations

import re

import yaml
from sqlalchemy import func, select

from ...extensions import db
from ...models import Flow, Group, OIDCSource, Prompt, Stage
from ..stages import STAGE_TYPES
from .handlers import BINDING, FLOW, GROUP, PROMPT, SOURCE
from .loader import BlueprintDumper, BlueprintError, Find, KeyOf


class _EntryIds:
    """Readable, unique entry ids such as prompt-default-enrollment-field-username."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int], str] = {}
        self.taken: set[str] = {"flow"}

    def __call__(self, prefix: str, obj) -> str:
        key = (prefix, obj.id)
        if key not in self.ids:
            base = f"{prefix}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", obj.name).strip("-").lower()
            candidate, n = base, 1
            while candidate in self.taken:
                n += 1
                candidate = f"{base}-{n}"
            self.taken.add(candidate)
            self.ids[key] = candidate
        return self.ids[key]


def _stage_attrs(stage) -> dict:
    """A stage's declared options, under authentik's attribute names; BlueprintError for a type
    that has no authentik model."""
    stage_type = STAGE_TYPES.get(stage.type)
    if stage_type is None or not getattr(stage_type, "model", None):
        raise BlueprintError([f"stage {stage.name!r} has type {stage.type!r}, which has no "
                              "authentik equivalent."])
    return {option.blueprint_attr: option.kind.export(option, option.kind.read(stage, option))
            for option in stage_type.declared_options if option.kind.has(stage, option)}


def export_flow(flow: Flow) -> str:
    """The flow with its stages, prompts, bindings and referenced groups, as blueprint YAML."""
    ids = _EntryIds()
    entries: list[dict] = [{
        "model": FLOW, "id": "flow", "identifiers": {"slug": flow.slug},
        "attrs": {"name": flow.name, "title": flow.title, "designation": flow.designation,
                  "authentication": flow.authentication},
    }]
    stages = list(dict.fromkeys(b.stage for b in flow.bindings))
    # Each stage's declared options as blueprint attributes, rows standing for references.
    exported = {stage.id: _stage_attrs(stage) for stage in stages}
    # Stages a bound stage names (an inline password stage, a validate stage's configuration
    # stages) travel along, first.
    named = [row for attrs in list(exported.values()) for value in attrs.values()
             for row in (value if isinstance(value, list) else [value])
             if isinstance(row, Stage) and row.id not in exported]
    for stage in dict.fromkeys(named):
        exported[stage.id] = _stage_attrs(stage)
    stages = [*dict.fromkeys(named), *stages]
    rows = [row for attrs in exported.values() for value in attrs.values()
            for row in (value if isinstance(value, list) else [value])]
    for group in dict.fromkeys(r for r in rows if isinstance(r, Group)):
        entries.append({"model": GROUP, "id": ids("group", group),
                        "identifiers": {"name": group.name},
                        "attrs": {"is_superuser": group.is_superuser,
                                  "attributes": dict(group.attributes or {})}})
    for prompt in dict.fromkeys(r for r in rows if isinstance(r, Prompt)):
        attrs = {"field_key": prompt.field_key, "label": prompt.label, "type": prompt.type,
                 "required": prompt.required, "placeholder": prompt.placeholder,
                 "initial_value": prompt.initial_value, "sub_text": prompt.help_text,
                 "order": prompt.order}
        if prompt.choices is not None:
            attrs["choices"] = list(prompt.choices)
        attrs.update(prompt.options or {})
        entries.append({"model": PROMPT, "id": ids("prompt", prompt),
                        "identifiers": {"name": prompt.name}, "attrs": attrs})

    def reference(value):
        if isinstance(value, list):
            return [reference(v) for v in value]
        if isinstance(value, Group):
            return KeyOf(ids("group", value))
        if isinstance(value, Prompt):
            return KeyOf(ids("prompt", value))
        if isinstance(value, Stage):
            return KeyOf(ids("stage", value))
        if isinstance(value, OIDCSource):
            return Find(SOURCE, (("slug", value.slug),))
        if isinstance(value, Flow):
            return KeyOf("flow") if value is flow else Find(FLOW, (("slug", value.slug),))
        return value

    for stage in stages:
        attrs = {key: reference(value) for key, value in exported[stage.id].items()}
        entries.append({"model": STAGE_TYPES[stage.type].model, "id": ids("stage", stage),
                        "identifiers": {"name": stage.name}, "attrs": attrs})
    for binding in flow.bindings:
        entry: dict = {
            "model": BINDING,
            "identifiers": {"target": KeyOf("flow"), "stage": KeyOf(ids("stage", binding.stage)),
                            "order": binding.order},
            "attrs": {"evaluate_on_plan": binding.evaluate_on_plan,
                      "re_evaluate_policies": binding.re_evaluate_policies},
        }
        if binding.condition is not None:
            entry["attrs"]["condition"] = binding.condition
        entries.append(entry)
    document = {
        "version": 1,
        "metadata": {"name": f"Portal export - {flow.name}",
                     "labels": {"blueprints.goauthentik.io/instantiate": "false"}},
        "entries": entries,
    }
    header = f"# Exported from the invitation portal: flow {flow.slug}\n"
    return header + yaml.dump(document, Dumper=BlueprintDumper, sort_keys=False, allow_unicode=True,
                              default_flow_style=False)


def flow_by_slug(slug: str) -> Flow | None:
    from ...tenants import visible  # the current tenant's flows and the instance-wide ones

    return db.session.scalar(select(Flow).where(func.lower(Flow.slug) == slug.lower(), visible(Flow)))
