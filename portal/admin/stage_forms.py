"""The admin's stage form, built from the stage type's declared options (one builder, no form
class per type: a new stage type gets its form by declaring its options).

Stage options are kept under authentik's attribute names, so imported and hand-made stages
look the same and export back unchanged.
"""

from __future__ import annotations

from sqlalchemy import select
from wtforms import (
    BooleanField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional

from ..access import Grants, assignable_groups
from ..extensions import db
from ..flows.prompts import as_choices
from ..flows.stages import StageType
from ..flows.stages.options import Option
from ..forms import Email
from ..models import Flow, Prompt, Stage
from ..tenants import visible
from .flow_forms import EditorForm, Unique


class FormNeeds:
    """What option choices may depend on, looked up only when a form asks for it."""

    def __init__(self, grants: Grants) -> None:
        self.grants = grants

    def groups(self):
        """Only groups the admin may give; any other choice, even a forged one, fails validation
        (a stage already giving another one is refused by the privilege ceiling before)."""
        return assignable_groups(self.grants)

    def prompts(self):
        return db.session.scalars(select(Prompt).where(visible(Prompt)).order_by(Prompt.name)).all()

    def stages(self, type_name: str | None = None):
        query = select(Stage).where(visible(Stage)).order_by(Stage.name)
        if type_name is not None:
            query = query.filter_by(type=type_name)
        return db.session.scalars(query).all()

    def sources(self):
        from ..sources.service import all_sources

        return all_sources()

    def flows(self):
        return db.session.scalars(select(Flow).where(visible(Flow)).order_by(Flow.slug)).all()


def _optional_id(value):
    return int(value) if value not in (None, "", "None") else None


def _checked(option: Option):
    """The option's own rule as a form validator (the importer calls the same rule)."""

    def check(form, field):
        if option.validate is None or field.data in (None, ""):
            return
        try:
            option.validate(field.data)
        except ValueError as exc:
            message = str(exc)
            raise ValidationError(message if message.endswith(".") else f"{message}.") from None

    return check


def _choices(option: Option, needs: FormNeeds, default):
    if callable(option.choices):
        return list(option.choices(needs))
    if option.choices is not None:
        return list(option.choices)
    return default()


def _field(option: Option, needs: FormNeeds):
    """A WTForms field for one option, by its kind."""
    kind = option.kind.name
    common = {"label": option.label or option.key, "description": option.help}
    lengths = [Length(max=option.max_length)] if option.max_length else []
    required = [DataRequired()] if option.required else []
    if kind == "bool":
        return BooleanField(default=bool(option.default), **common)
    if kind in ("text", "textarea"):
        cls = TextAreaField if kind == "textarea" else StringField
        extra = {"render_kw": {"rows": option.rows}} if kind == "textarea" else {}
        return cls(default=option.default, validators=[*required, *lengths, _checked(option)],
                   **extra, **common)
    if kind == "email":
        return StringField(default=option.default,
                           validators=[*required, Optional(), *lengths, Email()], **common)
    if kind == "choice":
        return SelectField(choices=as_choices(_choices(option, needs, list)),
                           default=option.default, **common)
    if kind == "choices":
        return SelectMultipleField(choices=as_choices(_choices(option, needs, list)),
                                   default=list(option.default or []),
                                   widget=widgets.ListWidget(prefix_label=False),
                                   option_widget=widgets.CheckboxInput(), **common)
    if kind in ("group", "flow", "stage", "source"):
        listed = {"group": needs.groups, "flow": needs.flows, "stage": needs.stages,
                  "source": needs.sources}[kind]
        rows = _choices(option, needs, lambda: [
            (row.id, f"{row.slug} ({row.name})" if kind == "flow" else row.name)
            for row in listed()])
        return SelectField(coerce=_optional_id, choices=as_choices([("", "— none —"), *rows]),
                           **common)
    if kind in ("stages", "sources"):
        rows = _choices(option, needs, lambda: [(s.id, f"{s.name} ({s.type})")
                                                for s in needs.stages()] if kind == "stages"
                        else [(s.id, f"{s.name} ({s.slug})") for s in needs.sources()])
        return SelectMultipleField(coerce=int, choices=as_choices(rows),
                                   widget=widgets.ListWidget(prefix_label=False),
                                   option_widget=widgets.CheckboxInput(), **common)
    if kind == "prompts":
        rows = _choices(option, needs, lambda: [
            (p.id, f"{p.name} — {p.field_key} ({p.type})") for p in needs.prompts()])
        return SelectMultipleField(coerce=int, choices=as_choices(rows),
                                   widget=widgets.ListWidget(prefix_label=False),
                                   option_widget=widgets.CheckboxInput(), **common)
    raise LookupError(f"option {option.key!r}: no admin field for the kind {kind!r}")


class StageForm(EditorForm):
    """Fields every stage has; `stage_form` adds one per declared option of the type."""

    stage_type: type[StageType]

    name = StringField("Name", validators=[DataRequired(), Length(max=255),
                                           Unique(Stage, "name", "Another stage has this name.")])
    submit = SubmitField("Save")

    @property
    def admin_options(self) -> list[Option]:
        return [o for o in self.stage_type.declared_options if o.admin]

    def load(self, stage: Stage) -> None:
        self.name.data = stage.name
        for option in self.admin_options:
            if not option.kind.has(stage, option):
                continue
            value = option.kind.read(stage, option)
            if option.shown_as is not None:
                value = option.shown_as(value)
            if option.kind.name == "choice" and value not in option.choice_values():
                value = option.default  # e.g. an imported template the portal does not have
            elif option.kind.name == "choices":
                value = [v for v in value or [] if v in option.choice_values()]
            elif option.kind.name in ("text", "textarea") and isinstance(value, (int, float)):
                value = str(value)
            self[option.key].data = value

    def options(self, previous: dict | None = None) -> dict:
        """The stage's options: this form's fields over what was there (unknown keys are kept),
        and the defaults of options the form does not show."""
        values = {}
        for option in self.stage_type.declared_options:
            if not option.kind.stored_in_options():
                continue
            if option.admin:
                value = self[option.key].data
                values[option.key] = (value or "").strip() if isinstance(value, str) else value
            elif option.key not in (previous or {}):
                values[option.key] = option.default
        return {**(previous or {}), **values}

    def apply(self, stage: Stage) -> None:
        """Write the form onto the stage (options, and options kept elsewhere, such as fields)."""
        stage.name = self.name.data.strip()
        stage.options = self.options(stage.options)
        for option in self.admin_options:
            if not option.kind.stored_in_options():
                option.kind.write(stage, self[option.key].data or [])


def stage_form(stage_type: type[StageType], needs: FormNeeds, **kwargs) -> StageForm:
    """The admin form of a stage type, from its declared options."""
    fields = {o.key: _field(o, needs) for o in stage_type.declared_options if o.admin}
    cls = type(f"{stage_type.__name__}Form", (StageForm,), {"stage_type": stage_type, **fields})
    return cls(**kwargs)
