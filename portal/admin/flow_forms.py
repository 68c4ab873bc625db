"""Forms of the flow editor: flows, bindings (with their condition), prompts. The stage form
is built from the stage types' declarations (admin/stage_forms.py)."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from ..extensions import db
from ..flows.planner import CONDITION_TYPES, ConditionError, validate_condition
from ..flows.prompts import CHOICE_TYPES, FILE_MAX_SIZE_DEFAULT, FILE_MAX_SIZE_LIMIT, PROMPT_TYPES, as_choices
from ..models import Flow, FlowAuthentication, FlowDesignation, Prompt

ANSWER_CONDITIONS = ("prompt_equals", "prompt_in", "email_domain_in")
ORDER_RANGE = NumberRange(min=-(2**31), max=2**31 - 1, message="Enter a whole number.")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class Unique:
    """The value must not be taken by another row of `model` (the one being edited excepted)."""

    def __init__(self, model, column: str, message: str) -> None:
        self.model, self.column, self.message = model, column, message

    def __call__(self, form, field):
        value = (field.data or "").strip()
        if "\x00" in value:  # refused by EditorForm.validate; PostgreSQL cannot even compare it
            return
        row = db.session.scalar(select(self.model).where(getattr(self.model, self.column) == value))
        if row is not None and row is not getattr(form, "instance", None):
            raise ValidationError(self.message)


def _refuse_nul(form) -> bool:
    """NUL bytes cannot be stored in PostgreSQL text; show an error instead of failing on save."""
    clean = True
    for field in form:
        if isinstance(field.data, str) and "\x00" in field.data:
            field.errors = [*field.errors, "Remove the invisible control characters."]
            clean = False
    return clean


class EditorForm(FlaskForm):
    """A form that knows the row it edits (for uniqueness checks)."""

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        return _refuse_nul(self) and valid


# -- flows -----------------------------------------------------------------------------------

class FlowForm(EditorForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=255)])
    slug = StringField(
        "Slug", validators=[DataRequired(), Length(max=100),
                            Regexp(r"^[a-z0-9][a-z0-9_-]*$",
                                   message="Use lower-case letters, digits, - and _ only."),
                            Unique(Flow, "slug", "Another flow has this slug.")],
        description="Part of the link: /if/flow/<slug>/. Changing it breaks links already sent.",
    )
    title = StringField("Title", validators=[Length(max=255)],
                        description="Shown to the invitee at the top of every page.")
    designation = SelectField("Designation", choices=as_choices((c, c.replace("_", " ").capitalize())
                                                                 for c in FlowDesignation.CHOICES))
    authentication = SelectField(
        "Authentication", choices=as_choices((c, c.replace("_", " ").capitalize())
                                             for c in FlowAuthentication.CHOICES),
        description="Who may start the flow; enrollment flows usually require a signed-out visitor.")
    submit = SubmitField("Save")

    @property
    def values(self) -> dict:
        return {name: (self[name].data or "").strip()
                for name in ("name", "slug", "title", "designation", "authentication")}


# -- bindings --------------------------------------------------------------------------------

class BindingForm(FlaskForm):
    stage = SelectField("Stage", coerce=int, validators=[InputRequired("Choose a stage.")])
    order = IntegerField("Order", validators=[InputRequired("Enter a whole number."), ORDER_RANGE],
                         description="Stages run from the lowest order to the highest.")
    condition_type = SelectField(
        "Run this stage", choices=as_choices([("", "Always"), *CONDITION_TYPES.items()]),
        description="A stage whose condition is false is skipped.")
    negate = BooleanField("Negate: run the stage only when the condition is false")
    field = StringField("Prompt field key", validators=[Length(max=150)],
                        description="For prompt conditions (e.g. team) and the email domain "
                                    "(default: email).")
    value = StringField("Value", validators=[Length(max=1000)],
                        description="For “equals”. Checkboxes compare as true or false.")
    values = TextAreaField("Values or domains, one per line", render_kw={"rows": 4},
                           description="For “is one of” (values) and “email domain” (example.com).")
    key = StringField("Attribute key", validators=[Length(max=255)],
                      description="For “the invitation's attributes have a key”; "
                                  "a.b looks inside a.")
    evaluate_on_plan = BooleanField("Evaluate when the flow starts", default=True)
    re_evaluate_policies = BooleanField(
        "Evaluate again when the stage is reached",
        description="Needed for conditions on values the invitee enters earlier in the flow.")
    submit = SubmitField("Save")

    def __init__(self, *args, stages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.stage.choices = [(s.id, f"{s.name} ({s.type})") for s in stages]
        self.condition = None

    def load(self, binding) -> None:
        self.stage.data, self.order.data = binding.stage_id, binding.order
        self.evaluate_on_plan.data = binding.evaluate_on_plan
        self.re_evaluate_policies.data = binding.re_evaluate_policies
        condition = binding.condition or {}
        self.condition_type.data = condition.get("type", "")
        self.negate.data = bool(condition.get("negate"))
        self.field.data = condition.get("field", "")
        self.value.data = condition.get("value", "")
        self.key.data = condition.get("key", "")
        self.values.data = "\n".join(condition.get("values") or condition.get("domains") or [])

    def validate(self, extra_validators=None) -> bool:
        """Fields first, then the condition as a whole (its parts are spread over several fields)."""
        valid = super().validate(extra_validators) and _refuse_nul(self)
        kind = self.condition_type.data
        raw: dict = {"type": kind, "negate": self.negate.data, "value": self.value.data or "",
                     "key": (self.key.data or "").strip()}
        if kind in ANSWER_CONDITIONS:
            raw["field"] = (self.field.data or "").strip()
        raw["domains" if kind == "email_domain_in" else "values"] = _lines(self.values.data)
        problems = []
        if kind in ("prompt_in", "email_domain_in") and not _lines(self.values.data):
            self.values.errors.append("Enter at least one line.")
            problems.append("This condition needs a list.")
        if kind in ANSWER_CONDITIONS and self.evaluate_on_plan.data:
            self.evaluate_on_plan.errors.append("Untick this: answers are not known when the flow "
                                                "starts.")
            problems.append("This condition reads the invitee's answers, so check it when the "
                            "stage is reached, not when the flow starts.")
        if not problems and kind in CONDITION_TYPES:
            try:
                self.condition = validate_condition(raw)
            except ConditionError as exc:
                target = {"field": self.field, "key": self.key}.get(str(exc).split()[0])
                if target is not None:
                    target.errors.append("This field is required.")
                problems.append(f"Incomplete condition: {exc}.")
        elif not kind:
            self.condition = None
        self.condition_type.errors.extend(problems)
        return valid and not problems

    @property
    def binding_values(self) -> dict:
        return {"order": self.order.data, "condition": self.condition,
                "evaluate_on_plan": self.evaluate_on_plan.data,
                "re_evaluate_policies": self.re_evaluate_policies.data}


# -- prompts ---------------------------------------------------------------------------------

def parse_choices(text: str) -> list:
    """One choice per line: `value` or `value | Label`."""
    choices = []
    for line in _lines(text):
        value, sep, label = line.partition("|")
        value, label = value.strip(), label.strip()
        choices.append({"value": value, "label": label} if sep and label else value)
    return choices


def choices_as_text(choices) -> str:
    lines = []
    for choice in choices or []:
        if isinstance(choice, dict):
            value, label = choice.get("value", ""), choice.get("label", "")
            lines.append(f"{value} | {label}" if label and label != value else str(value))
        else:
            lines.append(str(choice))
    return "\n".join(lines)


class PromptForm(EditorForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=255),
                                           Unique(Prompt, "name", "Another prompt has this name.")])
    field_key = StringField(
        "Field key", validators=[DataRequired(), Length(max=150),
                                 Regexp(r"^[A-Za-z_][\w.-]*$",
                                        message="Start with a letter; then letters, digits, _ . -")],
        description="Where the value goes: username, name, email, or an attribute "
                    "(attributes.department or any other key).")
    label = StringField("Label", validators=[Length(max=255)])
    type = SelectField("Type", choices=as_choices(PROMPT_TYPES.items()))
    required = BooleanField("Required", default=True)
    placeholder = StringField("Placeholder", validators=[Length(max=1000)])
    initial_value = TextAreaField("Initial value", validators=[Length(max=10000)],
                                  render_kw={"rows": 2},
                                  description="Pre-fills the field; the text of static and alert "
                                              "prompts.")
    help_text = TextAreaField("Help text", validators=[Length(max=2000)], render_kw={"rows": 2})
    order = IntegerField("Order", default=0, validators=[InputRequired("Enter a whole number."),
                                                         ORDER_RANGE])
    choices = TextAreaField("Choices", render_kw={"rows": 5},
                            description="For dropdowns and radio buttons: one per line, "
                                        "value or value | Label.")
    max_size_kb = IntegerField(
        "File size limit (KB)", default=FILE_MAX_SIZE_DEFAULT // 1024,
        validators=[Optional(), NumberRange(min=1, max=FILE_MAX_SIZE_LIMIT // 1024,
                                            message=f"Between 1 and {FILE_MAX_SIZE_LIMIT // 1024}.")])
    allowed_types = StringField(
        "Allowed file types", validators=[Length(max=1000)],
        description="Comma-separated: .pdf, image/png, image/*. Empty allows any type.")
    submit = SubmitField("Save")

    def validate_choices(self, field):
        if self.type.data in CHOICE_TYPES and not parse_choices(field.data):
            raise ValidationError("Enter at least one choice.")
        values = [c["value"] if isinstance(c, dict) else c for c in parse_choices(field.data)]
        if len(values) != len(set(values)):
            raise ValidationError("Each choice's value must be different.")

    def validate_allowed_types(self, field):
        for item in (t.strip() for t in (field.data or "").split(",") if t.strip()):
            if not re.fullmatch(r"\.[\w-]+|[\w.+-]+/(\*|[\w.+-]+)", item):
                raise ValidationError(f"“{item}” is neither an extension (.pdf) nor a type (image/png).")

    def load(self, prompt: Prompt) -> None:
        for name in ("name", "field_key", "label", "type", "required", "placeholder",
                     "initial_value", "help_text", "order"):
            self[name].data = getattr(prompt, name)
        self.choices.data = choices_as_text(prompt.choices)
        options = prompt.options or {}
        if options.get("max_size"):
            self.max_size_kb.data = max(1, int(options["max_size"]) // 1024)
        self.allowed_types.data = ", ".join(options.get("allowed_types") or [])

    @property
    def values(self) -> dict:
        values = {name: self[name].data for name in ("field_key", "label", "type", "required",
                                                     "order")}
        # Optional texts a hand-made POST may leave out: absent is empty, never NULL (a 500).
        values.update({name: self[name].data or "" for name in ("placeholder", "initial_value",
                                                               "help_text")})
        values["name"] = self.name.data.strip()
        values["choices"] = parse_choices(self.choices.data) or None
        options = dict(getattr(self.instance, "options", None) or {})
        if self.type.data == "file":
            options["max_size"] = (self.max_size_kb.data or FILE_MAX_SIZE_DEFAULT // 1024) * 1024
            options["allowed_types"] = [t.strip().lower() for t in (self.allowed_types.data or "")
                                        .split(",") if t.strip()]
        values["options"] = options
        return values
