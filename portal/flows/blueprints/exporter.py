"""A flow, its stages, prompts, bindings and referenced groups, as blueprint YAML."""

from __future__ import annotations

import re

import yaml
from sqlalchemy import func, select

from ...extensions import db
from ...models import Flow, Group
from .handlers import BINDING, FLOW, GROUP, PROMPT, STAGE_TYPE_MODELS
from .loader import BlueprintDumper, BlueprintError, KeyOf


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


def export_flow(flow: Flow) -> str:
    """The flow with its stages, prompts, bindings and referenced groups, as blueprint YAML."""
    ids = _EntryIds()
    entries: list[dict] = [{
        "model": FLOW, "id": "flow", "identifiers": {"slug": flow.slug},
        "attrs": {"name": flow.name, "title": flow.title, "designation": flow.designation,
                  "authentication": flow.authentication},
    }]
    stages = list(dict.fromkeys(b.stage for b in flow.bindings))
    groups, prompts = [], []
    for stage in stages:
        group_id = (stage.options or {}).get("create_users_group")
        if stage.type == "user_write" and group_id and (group := db.session.get(Group, group_id)):
            groups.append(group)
        prompts.extend(stage.prompts)
    for group in dict.fromkeys(groups):
        entries.append({"model": GROUP, "id": ids("group", group),
                        "identifiers": {"name": group.name},
                        "attrs": {"is_superuser": group.is_superuser,
                                  "attributes": dict(group.attributes or {})}})
    for prompt in dict.fromkeys(prompts):
        attrs = {"field_key": prompt.field_key, "label": prompt.label, "type": prompt.type,
                 "required": prompt.required, "placeholder": prompt.placeholder,
                 "initial_value": prompt.initial_value, "sub_text": prompt.help_text,
                 "order": prompt.order}
        if prompt.choices is not None:
            attrs["choices"] = list(prompt.choices)
        attrs.update(prompt.options or {})
        entries.append({"model": PROMPT, "id": ids("prompt", prompt),
                        "identifiers": {"name": prompt.name}, "attrs": attrs})
    for stage in stages:
        model = STAGE_TYPE_MODELS.get(stage.type)
        if model is None:
            raise BlueprintError([f"stage {stage.name!r} has type {stage.type!r}, which has no "
                                  "authentik equivalent."])
        attrs = dict(stage.options or {})
        if stage.type == "user_write" and attrs.get("create_users_group"):
            group = db.session.get(Group, attrs["create_users_group"])
            if group is None:
                del attrs["create_users_group"]
            else:
                attrs["create_users_group"] = KeyOf(ids("group", group))
        if stage.type == "prompt":
            attrs["fields"] = [KeyOf(ids("prompt", p)) for p in stage.prompts]
        entries.append({"model": model, "id": ids("stage", stage),
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
    return db.session.scalar(select(Flow).where(func.lower(Flow.slug) == slug.lower()))
