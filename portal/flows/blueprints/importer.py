"""Applying a blueprint: check every entry, order them by reference, apply each in one transaction.

Everything the portal can represent is applied in one transaction; everything it cannot
(expression policies, policy bindings, unknown models, tags or attributes) is listed in the
report with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import logging
import os
import re

from sqlalchemy import JSON, select
from sqlalchemy.exc import SQLAlchemyError

from ...access import (
    INVITATIONS_MANAGE,
    CeilingError,
    Grants,
    check_flow_change,
    check_flow_invitations,
    check_invitation,
)
from ...access.ceiling import stage_groups
from ...extensions import db
from ...invitations.attributes import storable_problem
from ...models import Flow, FlowDesignation, FlowStageBinding, Invitation, Prompt, Stage
from ..stages import by_model
from .handlers import (
    FIND_FIELDS,
    STATES,
    EntryError,
    Plan,
    Skipped,
    _Entry,
    handler_for,
    unsupported_reason,
)
from .loader import (
    MAX_FORMAT_RESULT,
    MAX_FORMAT_WIDTH,
    MAX_JSON,
    MAX_TEXT,
    BlueprintError,
    Context,
    Env,
    Find,
    Format,
    KeyOf,
    UnknownTag,
    parse,
)
from .report import CREATE, DELETE, SKIP, UNCHANGED, UPDATE, Change, ImportReport

log = logging.getLogger(__name__)

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
            except Skipped as skipped:
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
                for group in stage_groups(binding.stage):
                    if group.is_superuser:
                        self.report.warnings.append(
                            f"Flow {slug!r} puts every new user in the group {group.name!r}, "
                            "which has superuser rights.")

    def _label(self, entry: _Entry) -> str:
        ids = entry.raw.get("identifiers") if isinstance(entry.raw.get("identifiers"), dict) else {}
        shown = {k: v for k, v in ids.items() if not isinstance(v, (dict, list))}
        text = ", ".join(f"{k}={v.ref if isinstance(v, KeyOf) else v}" for k, v in shown.items())
        return text or (entry.id or "")

    def _apply(self, entry: _Entry) -> None:
        if entry.skip:
            raise Skipped(entry.skip)
        for ref in entry.deps:
            dep = self.by_id[ref]
            if dep.skip:
                raise Skipped(f"refers to {ref!r} (entry {dep.number}), which is skipped")
            if dep.failed:
                raise EntryError(f"refers to {ref!r} (entry {dep.number}), which has an error.")
        conditions = entry.raw.get("conditions")
        if conditions is not None:
            values = self.resolve(conditions, "conditions")
            if not all(values if isinstance(values, list) else [values]):
                raise Skipped("its conditions are false")
        plan = handler_for(entry.model)(self, entry)
        _check_column_sizes(plan)
        existing = self._find(plan)
        refused_before = (self._ceiling_refusal(existing)  # judged on the row as it is now
                          or self._carried_invitations_refusal(entry, plan, existing))
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
        shared = obj.flow if isinstance(obj, FlowStageBinding) else obj
        if isinstance(shared, (Flow, Stage, Prompt)) and shared.tenant_id is None:
            return (f"“{getattr(shared, 'slug', None) or shared.name}” is instance-wide (every tenant "
                    f"uses it); only an instance administrator can change it.")
        try:
            if isinstance(obj, Flow):
                check_flow_change(self.actor, flows=[obj])
            elif isinstance(obj, FlowStageBinding):
                check_flow_change(self.actor, flows=[obj.flow])
            elif isinstance(obj, Stage):
                check_flow_change(self.actor, stages=[obj])
            elif isinstance(obj, Prompt):
                check_flow_change(self.actor, prompts=[obj])
            elif isinstance(obj, Invitation):
                if not self.actor.can(INVITATIONS_MANAGE, obj.flow.slug):
                    return (f"you may not manage invitations of the flow “{obj.flow.slug}” "
                            "(“invitations: manage” is needed for it).")
                check_invitation(self.actor, obj)
        except CeilingError as exc:
            return str(exc)
        return None

    def _carried_invitations_refusal(self, entry: _Entry, plan: Plan, existing) -> str | None:
        """Deleting a flow ends its invitations and a new slug breaks their links: the same
        rule as the flow editor's (access.check_flow_invitations)."""
        if self.actor.superuser or not isinstance(existing, Flow):
            return None
        new_slug = plan.values.get("slug")
        try:
            if entry.state == "absent":
                check_flow_invitations(self.actor, existing, doing="deleting")
            elif new_slug and new_slug != existing.slug:
                check_flow_invitations(self.actor, existing, doing="changing the slug of",
                                       new_slug=new_slug)
        except CeilingError as exc:
            return str(exc)
        return None

    def _find(self, plan: Plan):
        rows = db.session.scalars(
            select(plan.model).filter_by(**plan.where).where(*_tenant_scope(plan.model)).limit(2)).all()
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
        stage_type = by_model(model)
        lookup = FIND_FIELDS.get(model) or (FIND_FIELDS["stage"] if stage_type else None)
        if lookup is None:
            raise EntryError(f"{path}: !Find cannot look up {model!r}.")
        cls, fields = lookup
        query = select(cls).where(*_tenant_scope(cls))  # another tenant's rows are not found
        if stage_type is not None:
            query = query.filter_by(type=stage_type.type_name)
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


def _tenant_scope(model) -> tuple:
    """Identifiers and !Find see what the current tenant sees, nothing of another tenant."""
    from ...tenants import OWNED, SHARED, visible

    return (visible(model),) if model in OWNED or model in SHARED else ()


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


def _check_column_sizes(plan: Plan) -> None:
    """Every imported value fits its column: text within the column's String(length) (or
    MAX_TEXT where it has none), JSON within MAX_JSON. One check for every model, read from the
    models, so a new column is covered without a new number here."""
    columns = plan.model.__table__.columns
    for key, value in {**plan.where, **plan.values}.items():
        column = columns.get(key)
        if column is None or value is None:  # a relationship (flow, prompts), or not given
            continue
        if isinstance(column.type, JSON):
            problem = storable_problem(value, key)  # the rule the attributes form follows
            if problem:
                raise EntryError(problem)
            if len(json.dumps(value, default=str)) > MAX_JSON:
                raise EntryError(f"{key}: larger than {MAX_JSON // 1024} kB.")
        elif isinstance(value, str):
            limit = getattr(column.type, "length", None) or MAX_TEXT
            if len(value) > limit:
                raise EntryError(f"{key}: longer than {limit} characters.")


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

