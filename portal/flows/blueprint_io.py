"""authentik blueprint YAML import and export.

Admins bring authentik's files as they are. Everything the portal can represent is applied in
one transaction; everything it cannot (expression policies, policy bindings, unknown models or
tags) is listed in the report with the reason, never silently dropped. Uploaded YAML is only ever
read with a SafeLoader subclass: no tag constructs Python objects and no code is run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import yaml
from sqlalchemy import JSON, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..access import (
    INVITATIONS_MANAGE,
    CeilingError,
    Grants,
    check_flow_change,
    check_invitation,
    group_change_refusal,
)
from ..extensions import db
from ..invitations import service as invitations
from ..models import (
    Flow,
    FlowAuthentication,
    FlowDesignation,
    FlowStageBinding,
    Group,
    Invitation,
    Prompt,
    Stage,
    UserType,
)
from . import planner
from .prompts import PROMPT_TYPES

log = logging.getLogger(__name__)

MAX_BLUEPRINT_BYTES = 256 * 1024  # authentik's largest example is ~10 kB
MAX_ALIASES = 200  # YAML anchors/aliases: enough for real files, too few for a "billion laughs"
MAX_DEPTH = 64  # nested lists and mappings: authentik's examples use under 10; Python's stack, ~300
# The document as every later step sees it, aliases expanded: each value counts one plus the
# length of its text. A file without aliases stays below ~1.5x its bytes, so this never refuses
# a file that fits MAX_BLUEPRINT_BYTES; it stops 200 aliases of aliases (9**9 copies) at once.
MAX_EXPANDED_SIZE = 2 * MAX_BLUEPRINT_BYTES
MAX_FORMAT_WIDTH = 100  # !Format "%10s" pads; "%999999999s" would be a gigabyte of spaces
MAX_FORMAT_RESULT = 10_000  # characters one !Format may produce
MAX_TEXT = 10_000  # characters for a text column without a length (help texts, placeholders)
MAX_JSON = 64 * 1024  # characters of a JSON column (options, attributes, choices), serialised

# -- YAML tags -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyOf:
    """`!KeyOf id`: the object made by the entry with that `id`."""

    ref: str
    line: int = 0


@dataclass(frozen=True)
class Find:
    """`!Find [model, [field, value], ...]`: an existing object looked up by its fields."""

    model: Any
    query: tuple
    line: int = 0


@dataclass(frozen=True)
class Env:
    """`!Env NAME` or `!Env [NAME, default]`."""

    name: Any
    default: Any = None


@dataclass(frozen=True)
class Context:
    """`!Context key` or `!Context [key, default]`: the blueprint's `context:` values."""

    key: Any
    default: Any = None


@dataclass(frozen=True)
class Format:
    """`!Format [format, args...]`: Python %-formatting, as authentik does."""

    template: Any
    args: tuple = ()


@dataclass(frozen=True)
class UnknownTag:
    """Any other tag (`!If`, `!Condition`, ...): kept so the report can name it."""

    tag: str
    line: int = 0


class _Bound(yaml.constructor.ConstructorError):
    """Valid YAML, refused for its size: the message says which bound, not "not valid YAML"."""

    def __init__(self, problem: str, mark) -> None:
        super().__init__(None, None, problem, mark)


class BlueprintLoader(yaml.SafeLoader):
    """SafeLoader with authentik's tags. A tiny file cannot explode in memory or time: while
    composing, before anything is built, it counts aliases and the document's size with aliases
    expanded (what every later walk over it costs), and bounds nesting so a file of "[[[[..."
    cannot exhaust the stack. Errors point at the alias or value that crossed the bound."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.alias_count = 0
        self.depth = 0
        self.expanded = 0  # see MAX_EXPANDED_SIZE
        self._sizes: dict[int, int] = {}  # expanded size of each finished node, by id
        self._open_anchors: list[str] = []  # anchors of the lists and mappings being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise _Bound(f"more than {MAX_ALIASES} YAML aliases", event.start_mark)
            if event.anchor in self._open_anchors:
                raise _Bound("an alias refers to the list or mapping that contains it",
                             event.start_mark)
            target = self.anchors.get(event.anchor)
            self._grow(_expanded_size(target, self._sizes) if target is not None else 0, event)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise _Bound(f"lists and mappings nested more than {MAX_DEPTH} deep", event.start_mark)
        self._grow(1 + len(getattr(event, "value", None) or ""), event)
        anchor = getattr(event, "anchor", None) if not isinstance(event, yaml.ScalarEvent) else None
        if anchor is not None:
            self._open_anchors.append(anchor)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self._open_anchors.pop()

    def _grow(self, size: int, event) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_SIZE:
            raise _Bound(f"with its aliases expanded, the file is larger than "
                         f"{MAX_EXPANDED_SIZE // 1024} kB", event.start_mark)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses to read integers of more than 4300 digits
            raise _Bound("a number too large to read", node.start_mark) from None


BlueprintLoader.add_constructor("tag:yaml.org,2002:int", BlueprintLoader.construct_yaml_int)


def _expanded_size(node, sizes: dict[int, int]) -> int:
    """A finished node's size with aliases expanded (each value: one plus its text's length).
    An alias is the same node object again, so memoising by id makes measuring a hostile file
    cost no more than reading it."""
    if id(node) not in sizes:
        if isinstance(node, yaml.ScalarNode):
            size = 1 + len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [
                part for pair in node.value for part in pair]
            size = 1 + sum(_expanded_size(child, sizes) for child in children)
        sizes[id(node)] = size
    return sizes[id(node)]


def _line(node) -> int:
    return node.start_mark.line + 1


def _items(loader, node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return [loader.construct_scalar(node)]


def _construct_keyof(loader, node):
    return KeyOf(str(loader.construct_scalar(node)), _line(node))


def _construct_find(loader, node):
    items = _items(loader, node)
    return Find(items[0] if items else None, tuple(tuple(i) if isinstance(i, list) else (i,)
                                                  for i in items[1:]), _line(node))


def _construct_env(loader, node):
    items = _items(loader, node)
    return Env(items[0] if items else None, items[1] if len(items) > 1 else None)


def _construct_context(loader, node):
    items = _items(loader, node)
    return Context(items[0] if items else None, items[1] if len(items) > 1 else None)


def _construct_format(loader, node):
    items = _items(loader, node)
    return Format(items[0] if items else "", tuple(items[1:]))


def _construct_unknown(loader, suffix, node):
    return UnknownTag("!" + suffix, _line(node))


BlueprintLoader.add_constructor("!KeyOf", _construct_keyof)
BlueprintLoader.add_constructor("!Find", _construct_find)
BlueprintLoader.add_constructor("!Env", _construct_env)
BlueprintLoader.add_constructor("!Context", _construct_context)
BlueprintLoader.add_constructor("!Format", _construct_format)
BlueprintLoader.add_multi_constructor("!", _construct_unknown)


class BlueprintDumper(yaml.SafeDumper):
    """Writes `!KeyOf` back as authentik expects it."""


BlueprintDumper.add_representer(KeyOf, lambda dumper, k: dumper.represent_scalar("!KeyOf", k.ref))


class BlueprintError(Exception):
    """The file cannot be imported; `messages` say where and why."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def parse(text: str) -> dict:
    """The blueprint document, or BlueprintError with the line and reason."""
    if len(text.encode()) > MAX_BLUEPRINT_BYTES:
        raise BlueprintError([f"The file is larger than {MAX_BLUEPRINT_BYTES // 1024} kB."])
    loader = BlueprintLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"Line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        why = "the file is refused" if isinstance(exc, _Bound) else "the file is not valid YAML"
        raise BlueprintError([f"{where}{problem} ({why})."]) from None
    except RecursionError:
        raise BlueprintError(["The file nests lists or mappings too deeply."]) from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise BlueprintError(["The file is not a blueprint: expected keys version, metadata, entries."])
    problems = []
    if document.get("version") != 1:
        problems.append(f"version: expected 1, found {document.get('version')!r}.")
    if not isinstance(document.get("entries"), list):
        problems.append("entries: missing, or not a list.")
    for key in ("metadata", "context"):
        if document.get(key) is not None and not isinstance(document[key], dict):
            problems.append(f"{key}: expected a mapping.")
    if problems:
        raise BlueprintError(problems)
    return document


# -- the report ----------------------------------------------------------------------------------

CREATE, UPDATE, UNCHANGED, DELETE, SKIP = "create", "update", "unchanged", "delete", "skip"


@dataclass
class Change:
    """What one entry does (or would do)."""

    entry: int
    model: str
    action: str
    label: str
    details: list[str] = field(default_factory=list)  # changed fields, or why skipped
    notes: list[str] = field(default_factory=list)  # attributes kept or ignored, and why


@dataclass
class ImportReport:
    name: str = ""
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: bool = False
    flow_slugs: list[str] = field(default_factory=list)  # flows the blueprint creates or keeps
    warnings: list[str] = field(default_factory=list)  # applies, but the admin should know

    @property
    def ok(self) -> bool:
        return not self.errors

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def counts(self) -> dict[str, int]:
        return {a: len(self.of(a)) for a in (CREATE, UPDATE, DELETE, UNCHANGED, SKIP)}

    def summary(self) -> str:
        """Counts in words: "2 to create" before applying, "2 created" once applied."""
        counts = self.counts()
        verbs = ("created", "updated", "deleted") if self.applied else (
            "to create", "to update", "to delete")
        return (f"{counts[CREATE]} {verbs[0]}, {counts[UPDATE]} {verbs[1]}, {counts[DELETE]} {verbs[2]}, "
                f"{counts[UNCHANGED]} unchanged, {counts[SKIP]} skipped")


# -- models ------------------------------------------------------------------------------------

STAGE_MODELS = {
    "authentik_stages_invitation.invitationstage": "invitation",
    "authentik_stages_prompt.promptstage": "prompt",
    "authentik_stages_user_write.userwritestage": "user_write",
    "authentik_stages_user_login.userloginstage": "user_login",
    "authentik_stages_email.emailstage": "email",
    "authentik_stages_consent.consentstage": "consent",
    "authentik_stages_deny.denystage": "deny",
}
STAGE_TYPE_MODELS = {kind: model for model, kind in STAGE_MODELS.items()}
FLOW, BINDING = "authentik_flows.flow", "authentik_flows.flowstagebinding"
PROMPT = "authentik_stages_prompt.prompt"
GROUP, INVITATION = "authentik_core.group", "authentik_stages_invitation.invitation"

# Options each stage type acts on; anything else is kept in Stage.options, and the report says so.
STAGE_OPTIONS = {
    "invitation": {"continue_flow_without_invitation"},
    "prompt": set(),
    "user_write": {"user_creation_mode", "create_users_as_inactive", "create_users_group", "user_type",
                   "user_path_template"},
    "user_login": {"session_duration"},
    "email": {"use_global_settings", "token_expiry", "subject", "template", "activate_user_on_success",
              "from_address"},
    "consent": {"mode", "consent_expire_in", "consent_text", "consent_title", "consent_version",
                "checkbox_label"},
    "deny": {"deny_message"},
}

UNSUPPORTED_MODELS = {
    "authentik_policies_expression.expressionpolicy":
        "expression policies run Python code, which the portal never executes; "
        "express the rule as a declarative condition on the binding instead",
    "authentik_policies.policybinding":
        "policy bindings attach authentik policies, which the portal does not import; "
        "use a condition on the flow's binding instead",
    "authentik_stages_identification.identificationstage":
        "identification stages (sign-in by username or email) are not part of the portal",
    "authentik_stages_password.passwordstage": "password sign-in stages are not part of the portal",
    "authentik_stages_user_delete.userdeletestage": "deleting accounts from a flow is not supported",
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
    "initial_value_expression": False,
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
    if model in STAGE_MODELS or model in {FLOW, BINDING, PROMPT, GROUP, INVITATION}:
        return None
    if model in UNSUPPORTED_MODELS:
        return UNSUPPORTED_MODELS[model]
    for prefix, reason in UNSUPPORTED_PREFIXES.items():
        if model.startswith(prefix):
            return reason
    return f"the portal has no equivalent of {model}"


# -- the importer --------------------------------------------------------------------------------


class EntryError(Exception):
    """One entry cannot be applied; the message names the field."""


class _Skipped(Exception):
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
class _Plan:
    """How one entry maps onto a row: find it with `where`, then set `values`."""

    model: type
    label: str
    where: dict
    values: dict
    required: tuple = ()
    build: Callable[[dict], Any] | None = None
    notes: list[str] = field(default_factory=list)


def _walk(value, path: str, found: list) -> None:
    """Collect (path, tag) for every tag object inside a value."""
    if isinstance(value, (KeyOf, Find, Env, Context, Format, UnknownTag)):
        found.append((path, value))
        if isinstance(value, Find):
            _walk(list(value.query), path, found)
        elif isinstance(value, Format):
            _walk(list(value.args), path, found)
        elif isinstance(value, (Env, Context)):
            _walk(value.default, path, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", found)


class Importer:
    """Applies one blueprint document in the current database transaction.

    `actor`: the grants of whoever imports. A blueprint can do nothing its importer could not do
    by hand: every entry that creates, changes or deletes a flow, binding, stage or invitation
    passes the privilege ceiling (portal.access.ceiling) on the row before and after, as the
    editors do; invitations also need "invitations: manage" for their flow; groups follow the
    group editor's rule (access.group_change_refusal).
    """

    def __init__(self, document: dict, *, actor: Grants, context: dict | None = None,
                 env_prefix: str = "BLUEPRINT_") -> None:
        self.document = document
        self.actor = actor
        self.context = {**(document.get("context") or {}), **(context or {})}
        self.env_prefix = env_prefix
        self.report = ImportReport(name=str((document.get("metadata") or {}).get("name") or ""))
        self.entries: list[_Entry] = []
        self.by_id: dict[str, _Entry] = {}

    # -- checks before anything is written ----------------------------------------------------

    def _error(self, entry: _Entry | None, where: str, message: str) -> None:
        prefix = f"entry {entry.number} ({entry.model})" if entry else "blueprint"
        self.report.errors.append(f"{prefix}: {where}: {message}" if where else f"{prefix}: {message}")
        if entry:
            entry.failed = True

    def check(self) -> list[_Entry]:
        """Structure, ids, references and cycles; returns entries in dependency order."""
        for number, raw in enumerate(self.document["entries"], start=1):
            if not isinstance(raw, dict):
                self.report.errors.append(f"entry {number}: expected a mapping with model, identifiers "
                                          "and attrs.")
                continue
            model = raw.get("model")
            entry = _Entry(number, model if isinstance(model, str) else "?", raw)
            self.entries.append(entry)
            if not isinstance(model, str) or not model:
                self._error(entry, "model", "missing required attribute.")
                continue
            state = raw.get("state", "present")
            if not isinstance(state, str) or state not in STATES:
                self._error(entry, "state", f"expected one of present, created, absent; found "
                                            f"{state!r}.")
            else:
                entry.state = state
            for key in ("identifiers", "attrs"):
                if raw.get(key) is not None and not isinstance(raw[key], dict):
                    self._error(entry, key, "expected a mapping.")
            if raw.get("id") is not None:
                entry.id = str(raw["id"])
                if entry.id in self.by_id:
                    self._error(entry, "id", f"{entry.id!r} is already the id of entry "
                                             f"{self.by_id[entry.id].number}.")
                else:
                    self.by_id[entry.id] = entry
            entry.skip = unsupported_reason(model)
        for entry in self.entries:
            self._check_tags(entry)
        for entry in self.entries:
            if not entry.skip and not isinstance(entry.raw.get("identifiers"), dict) and not entry.failed:
                self._error(entry, "identifiers", "missing required attribute.")
        return self._ordered()

    def _check_tags(self, entry: _Entry) -> None:
        found: list = []
        for key in ("identifiers", "attrs", "conditions"):
            _walk(entry.raw.get(key), "", found)
        unknown = sorted({tag.tag for _, tag in found if isinstance(tag, UnknownTag)})
        if unknown and not entry.skip:
            entry.skip = (f"uses the tag{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}, which "
                          "the portal does not support (supported: !KeyOf, !Find, !Env, !Context, "
                          "!Format)")
        for path, tag in found:
            if isinstance(tag, KeyOf):
                if tag.ref not in self.by_id:
                    self._error(entry, path, f"!KeyOf {tag.ref!r} refers to no entry id.")
                elif tag.ref not in entry.deps:
                    entry.deps.append(tag.ref)

    def _ordered(self) -> list[_Entry]:
        """File order, except that an entry comes after the entries it refers to."""
        done: set[int] = set()
        ordered: list[_Entry] = []
        visiting: list[_Entry] = []
        reported: set[int] = set()

        def visit(entry: _Entry) -> None:
            if entry.number in done:
                return
            if entry in visiting:
                cycle = visiting[visiting.index(entry):] + [entry]
                if entry.number not in reported:
                    reported.update(e.number for e in cycle)
                    path = " → ".join(f"{e.id} (entry {e.number})" for e in cycle)
                    self._error(entry, "", f"!KeyOf references form a cycle: {path}.")
                return
            visiting.append(entry)
            for ref in entry.deps:
                visit(self.by_id[ref])
            visiting.pop()
            done.add(entry.number)
            ordered.append(entry)

        for entry in self.entries:
            visit(entry)
        return ordered

    # -- applying -------------------------------------------------------------------------------

    def run(self) -> ImportReport:
        ordered = self.check()
        if self.report.errors:
            return self.report
        for entry in ordered:
            try:
                self._apply(entry)
            except _Skipped as skipped:
                entry.skip = str(skipped)
                self.report.changes.append(Change(entry.number, entry.model, SKIP, self._label(entry),
                                                  [str(skipped)]))
            except EntryError as exc:
                self._error(entry, "", str(exc))
            except (TypeError, RecursionError) as exc:  # a value of a shape no check foresaw
                log.warning("blueprint entry %s: %s", entry.number, exc)
                self._error(entry, "", f"a value has an unexpected type or shape ({exc}).")
            except SQLAlchemyError as exc:
                self._error(entry, "", f"the database refused it ({type(exc).__name__}).")
                break  # the transaction is unusable now
        self.report.changes.sort(key=lambda c: c.entry)
        if not self.report.errors:
            self._warn_about_open_flows()
        return self.report

    def _warn_about_open_flows(self) -> None:
        """An enrollment flow without an invitation stage lets anyone with its address sign up."""
        for slug in dict.fromkeys(self.report.flow_slugs):
            flow = db.session.scalar(select(Flow).filter_by(slug=slug))
            if flow is None or flow.designation != FlowDesignation.ENROLLMENT:
                continue
            db.session.refresh(flow, ["bindings"])
            if not any(b.stage.type == "invitation" for b in flow.bindings):
                self.report.warnings.append(
                    f"Flow {slug!r} has no invitation stage: anyone who knows its address can sign up. "
                    "Add an invitation stage to admit invitees only.")
            for binding in flow.bindings:
                group_id = (binding.stage.options or {}).get("create_users_group")
                group = db.session.get(Group, group_id) if binding.stage.type == "user_write" and \
                    group_id else None
                if group is not None and group.is_superuser:
                    self.report.warnings.append(
                        f"Flow {slug!r} puts every new user in the group {group.name!r}, which has "
                        "superuser rights.")

    def _label(self, entry: _Entry) -> str:
        ids = entry.raw.get("identifiers") if isinstance(entry.raw.get("identifiers"), dict) else {}
        shown = {k: v for k, v in ids.items() if not isinstance(v, (dict, list))}
        text = ", ".join(f"{k}={v.ref if isinstance(v, KeyOf) else v}" for k, v in shown.items())
        return text or (entry.id or "")

    def _apply(self, entry: _Entry) -> None:
        if entry.skip:
            raise _Skipped(entry.skip)
        for ref in entry.deps:
            dep = self.by_id[ref]
            if dep.skip:
                raise _Skipped(f"refers to {ref!r} (entry {dep.number}), which is skipped")
            if dep.failed:
                raise EntryError(f"refers to {ref!r} (entry {dep.number}), which has an error.")
        conditions = entry.raw.get("conditions")
        if conditions is not None:
            values = self.resolve(conditions, "conditions")
            if not all(values if isinstance(values, list) else [values]):
                raise _Skipped("its conditions are false")
        plan = HANDLERS[entry.model](self, entry)
        _check_column_sizes(plan)
        existing = self._find(plan)
        refused_before = self._ceiling_refusal(existing)  # judged on the row as it is now
        change = Change(entry.number, entry.model, UNCHANGED, plan.label, notes=plan.notes)
        if entry.state == "absent":
            if existing is not None:
                db.session.delete(existing)
                db.session.flush()
                change.action = DELETE
            else:
                change.details.append("already absent")
        elif existing is None:
            values = {**plan.where, **plan.values}
            missing = [k for k in plan.required if values.get(k) in (None, "")]
            if missing:
                raise EntryError(f"{missing[0]}: missing required attribute (needed to create it).")
            entry.obj = plan.build(values) if plan.build else plan.model(**values)
            db.session.add(entry.obj)
            db.session.flush()
            change.action = CREATE
        elif entry.state in {"created", "must_created"}:
            if entry.state == "must_created":
                raise EntryError("state: must_created, but it exists already.")
            entry.obj = existing
            change.details.append("exists already; state: created leaves it as it is")
        else:
            entry.obj = existing
            changed = _update(existing, plan.values)
            if changed:
                db.session.flush()
                change.action = UPDATE
                change.details = changed
        if change.action in (CREATE, UPDATE, DELETE):  # a mere mention of a row changes nothing
            refusal = refused_before or (None if change.action == DELETE
                                         else self._ceiling_refusal(entry.obj))
            if refusal:
                raise EntryError(refusal)  # the whole import is rolled back
        self.report.changes.append(change)
        if isinstance(entry.obj, Flow):
            self.report.flow_slugs.append(entry.obj.slug)

    def _ceiling_refusal(self, obj) -> str | None:
        """What the privilege ceiling says about this row as the database holds it now (after a
        flush: with the entry applied); None when the importer may change it."""
        if self.actor.superuser or obj is None:
            return None
        try:
            if isinstance(obj, Flow):
                check_flow_change(self.actor, flows=[obj])
            elif isinstance(obj, FlowStageBinding):
                check_flow_change(self.actor, flows=[obj.flow])
            elif isinstance(obj, Stage):
                check_flow_change(self.actor, stages=[obj])
            elif isinstance(obj, Invitation):
                if not self.actor.can(INVITATIONS_MANAGE, obj.flow.slug):
                    return (f"you may not manage invitations of the flow “{obj.flow.slug}” "
                            "(“invitations: manage” is needed for it).")
                check_invitation(self.actor, obj)
        except CeilingError as exc:
            return str(exc)
        return None

    def _find(self, plan: _Plan):
        rows = db.session.scalars(select(plan.model).filter_by(**plan.where).limit(2)).all()
        if len(rows) > 1:
            raise EntryError(f"identifiers match more than one existing {plan.model.__name__.lower()}; "
                             "rename one so they can be told apart.")
        return rows[0] if rows else None

    # -- values ----------------------------------------------------------------------------------

    def resolve(self, value, path: str):
        """The value with its tags replaced: objects for !KeyOf and !Find, text for the others."""
        if isinstance(value, KeyOf):
            target = self.by_id[value.ref]
            if target.state == "absent" or target.obj is None:
                raise EntryError(f"{path}: !KeyOf {value.ref!r} refers to entry {target.number}, "
                                 "which creates nothing.")
            return target.obj
        if isinstance(value, Find):
            return self._find_tag(value, path)
        if isinstance(value, Env):
            return self._env(value, path)
        if isinstance(value, Context):
            key = str(self.resolve(value.key, path))
            if key in self.context:
                return self.context[key]
            return self.resolve(value.default, path)
        if isinstance(value, Format):
            template = self.resolve(value.template, path)
            args = tuple(self.resolve(a, path) for a in value.args)
            return _format(str(template), args, path)
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _env(self, tag: Env, path: str):
        name = str(self.resolve(tag.name, path))
        if not name.startswith(self.env_prefix):
            # A blueprint could otherwise copy SECRET_KEY or a database password into a title.
            if tag.default is not None:
                return self.resolve(tag.default, path)
            raise EntryError(f"{path}: !Env {name}: only variables whose names begin with "
                             f"{self.env_prefix} can be read by blueprints.")
        return os.environ.get(name, self.resolve(tag.default, path))

    def _find_tag(self, tag: Find, path: str):
        model = self.resolve(tag.model, path)
        if not isinstance(model, str):
            raise EntryError(f"{path}: !Find expects a model name first, such as authentik_flows.flow.")
        lookup = FIND_FIELDS.get(model) or (FIND_FIELDS["stage"] if model in STAGE_MODELS else None)
        if lookup is None:
            raise EntryError(f"{path}: !Find cannot look up {model!r}.")
        cls, fields = lookup
        query = select(cls)
        if model in STAGE_MODELS:
            query = query.filter_by(type=STAGE_MODELS[model])
        for pair in tag.query:
            if len(pair) != 2:
                raise EntryError(f"{path}: !Find expects [field, value] pairs.")
            key, wanted = (self.resolve(p, path) for p in pair)
            if not isinstance(key, str) or key not in fields:
                raise EntryError(f"{path}: !Find {model} by {key!r} is not supported "
                                 f"(use {', '.join(sorted(fields))}).")
            if not isinstance(wanted, (str, int, float)):
                raise EntryError(f"{path}: !Find {model} by {key}: expected text or a number, "
                                 f"found {wanted!r}.")
            query = query.filter_by(**{fields[key]: wanted})
        return db.session.scalars(query.limit(1)).first()

    def values(self, entry: _Entry, key: str) -> dict:
        raw = entry.raw.get(key)
        return self.resolve(raw, "") if isinstance(raw, dict) else {}


# One %-conversion: %[(key)][flags][width][.precision][length]type
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def _format(template: str, args: tuple, path: str) -> str:
    """authentik's !Format (Python's %), with widths and precisions bounded: "%999999999s" would
    build a gigabyte of spaces from a dozen bytes."""
    for match in _CONVERSION.finditer(template):
        for number in match.group(1, 2):
            if number == "*":
                raise EntryError(f"{path}: !Format {_short(template)}: a width or precision taken "
                                 "from the arguments (*) is not supported.")
            if number and int(number) > MAX_FORMAT_WIDTH:
                raise EntryError(f"{path}: !Format {_short(template)}: widths and precisions "
                                 f"above {MAX_FORMAT_WIDTH} are not supported.")
    try:
        result = template % args
    except (TypeError, ValueError, KeyError) as exc:
        raise EntryError(f"{path}: !Format {_short(template)}: {exc}.") from None
    if len(result) > MAX_FORMAT_RESULT:
        raise EntryError(f"{path}: !Format gives more than {MAX_FORMAT_RESULT} characters.")
    return result


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


FIND_FIELDS = {
    FLOW: (Flow, {"slug": "slug", "name": "name"}),
    PROMPT: (Prompt, {"name": "name", "field_key": "field_key"}),
    GROUP: (Group, {"name": "name"}),
    INVITATION: (Invitation, {"name": "name"}),
    "stage": (Stage, {"name": "name"}),
}


def _update(obj, values: dict) -> list[str]:
    """Set the values that differ; returns the names of what changed."""
    changed = []
    for key, value in values.items():
        if key == "options":
            value = {**(obj.options or {}), **value}
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed.append(key)
    return changed


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


def _check_column_sizes(plan: _Plan) -> None:
    """Every imported value fits its column: text within the column's String(length) (or
    MAX_TEXT where it has none), JSON within MAX_JSON. One check for every model, read from the
    models, so a new column is covered without a new number here."""
    columns = plan.model.__table__.columns
    for key, value in {**plan.where, **plan.values}.items():
        column = columns.get(key)
        if column is None or value is None:  # a relationship (flow, prompts), or not given
            continue
        if isinstance(column.type, JSON):
            if len(json.dumps(value, default=str)) > MAX_JSON:
                raise EntryError(f"{key}: larger than {MAX_JSON // 1024} kB.")
        elif isinstance(value, str):
            limit = getattr(column.type, "length", None) or MAX_TEXT
            if len(value) > limit:
                raise EntryError(f"{key}: longer than {limit} characters.")


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


def _flow(importer: Importer, entry: _Entry) -> _Plan:
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
    return _Plan(Flow, f"flow {where['slug']!r}", where, _given(values), required=("name",), notes=notes)


def _given(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _group(importer: Importer, entry: _Entry) -> _Plan:
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
    return _Plan(Group, f"group {where['name']!r}", where, values, notes=notes)


def _refuse_group_change(actor: Grants, entry: _Entry, where: dict, values: dict) -> None:
    """A blueprint changes a group only if its importer could in the group editor (the same
    rule); an unchanged mention of a group is only a reference."""
    existing = db.session.scalars(select(Group).filter_by(**where).limit(1)).first()
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


def _prompt(importer: Importer, entry: _Entry) -> _Plan:
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
    return _Plan(Prompt, f"prompt {label!r}", where, values, required=("field_key", "type"), notes=notes)


def _stage(importer: Importer, entry: _Entry) -> _Plan:
    kind = STAGE_MODELS[entry.model]
    notes: list[str] = []
    ids = _drop_pk(importer.values(entry, "identifiers"), notes)
    attrs = importer.values(entry, "attrs")
    where = _where(ids, {"name": lambda v: {"name": _text({"name": v}, "name", max_length=255)}})
    other = db.session.scalar(select(Stage).filter_by(name=where["name"]).where(Stage.type != kind))
    if other is not None:
        raise EntryError(f"identifiers.name: {where['name']!r} is already the name of a stage of "
                         f"type {other.type}.")
    values: dict = {}
    options = {k: v for k, v in attrs.items() if k not in {"name", "fields", "validation_policies"}}
    if kind == "prompt":
        if attrs.get("validation_policies"):
            notes.append("validation_policies: ignored; authentik policies are not imported")
        if "fields" in attrs:
            fields = attrs["fields"] or []
            if not isinstance(fields, list) or not all(isinstance(f, Prompt) for f in fields):
                raise EntryError("fields: expected a list of prompts (!KeyOf or !Find).")
            values["prompts"] = list(dict.fromkeys(fields))
    if kind == "user_write":
        group = _ref(options, "create_users_group", Group, "a group")
        if group is not None:  # the privilege ceiling weighs it when the entry is applied
            options["create_users_group"] = group.id
        mode = options.get("user_creation_mode")
        if mode not in (None, "always_create"):
            notes.append(f"user_creation_mode: {mode!r} is kept, but the portal's user write stage "
                         "always creates a new user")
        if options.get("user_type") not in (None, *UserType.CHOICES):
            notes.append(f"user_type: {options['user_type']!r} is not a portal user type; "
                         "new users become internal")
    unused = sorted(set(options) - STAGE_OPTIONS[kind])
    if unused:
        notes.append(f"{', '.join(unused)}: kept in the stage's options, not used by the portal")
    values["options"] = _jsonable(options, "attrs")
    return _Plan(Stage, f"{kind} stage {where['name']!r}", where, values,
                 build=lambda v: Stage(type=kind, **v), notes=notes)


def _binding(importer: Importer, entry: _Entry) -> _Plan:
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
    return _Plan(FlowStageBinding, label, where, values, notes=notes)


def _condition(value) -> dict | None:
    """A portal condition (an export's extension to authentik's format), checked like the editor's."""
    if value is None:
        return None
    value = _jsonable(value, "condition")
    try:
        return planner.validate_condition(value)
    except ValueError as exc:
        raise EntryError(f"condition: {exc}.") from None


def _invitation(importer: Importer, entry: _Entry) -> _Plan:
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

    return _Plan(Invitation, f"invitation {where['name']!r}", where, values, build=build, notes=notes)


HANDLERS: dict[str, Callable[[Importer, _Entry], _Plan]] = {
    FLOW: _flow, BINDING: _binding, PROMPT: _prompt, GROUP: _group, INVITATION: _invitation,
    **dict.fromkeys(STAGE_MODELS, _stage),
}


def import_blueprint(text: str, *, actor: Grants, dry_run: bool = False,
                     context: dict | None = None) -> ImportReport:
    """Import a blueprint all or nothing; with dry_run, report what would happen and write nothing.

    `actor`: the importer's grants (`Grants(superuser=True)` for the command line's operator).

    The dry run really applies the entries inside the transaction and rolls it back, so the
    preview and the real import can never disagree.
    """
    db.session.rollback()  # start from a clean transaction: nothing of the caller's is committed
    try:
        document = parse(text)
    except BlueprintError as exc:
        return ImportReport(errors=exc.messages)
    importer = Importer(document, actor=actor, context=context)
    try:
        report = importer.run()
    except BaseException:
        db.session.rollback()
        raise
    if report.errors or dry_run:
        db.session.rollback()
    else:
        db.session.commit()
        report.applied = True
    return report


# -- export ---------------------------------------------------------------------------------------


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
