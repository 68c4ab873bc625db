"""Prompt types -> WTForms fields and validators.

Forms are built with WTForms' BaseForm, keyed by each prompt's field_key, so a key such as
"data" or "errors" cannot clash with a form attribute.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email
from wtforms import fields, validators
from wtforms.form import BaseForm

# Types that show text to the invitee and take no input.
DISPLAY_TYPES = {"static", "separator", "alert_info", "alert_warning", "alert_danger"}
READ_ONLY_TYPES = {"text_read_only", "text_area_read_only"}

PROMPT_TYPES = {
    "text": "Text",
    "text_area": "Text (multi-line)",
    "text_read_only": "Text (read-only)",
    "text_area_read_only": "Text, multi-line (read-only)",
    "username": "Username",
    "email": "Email",
    "password": "Password",
    "number": "Number",
    "checkbox": "Checkbox",
    "radio-button-group": "Radio button group",
    "dropdown": "Dropdown",
    "date": "Date",
    "date-time": "Date and time",
    "hidden": "Hidden",
    "static": "Static text",
    "separator": "Separator",
    "alert_info": "Alert (info)",
    "alert_warning": "Alert (warning)",
    "alert_danger": "Alert (danger)",
}

USERNAME_MAX = 150


class NormalisedEmail:
    """Validate an address with email-validator and keep its normalised form."""

    def __call__(self, form, field):
        if not field.data:
            return
        try:
            field.data = validate_email(field.data, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise validators.ValidationError(f"Enter a valid email address ({exc}).") from None


def _choices(prompt) -> list[tuple[str, str]]:
    result = []
    for choice in prompt.choices or []:
        if isinstance(choice, dict):
            result.append((str(choice.get("value")), str(choice.get("label", choice.get("value")))))
        else:
            result.append((str(choice), str(choice)))
    return result


def unbound_field(prompt, *, fixed: bool = False):
    """The WTForms field for one prompt, or None for display-only types."""
    kind = prompt.type
    if kind in DISPLAY_TYPES:
        return None
    required = prompt.required and kind not in READ_ONLY_TYPES and kind != "hidden"
    checks: list = [validators.InputRequired("This field is required.")] if required else [
        validators.Optional()
    ]
    render_kw: dict = {}
    if prompt.placeholder:
        render_kw["placeholder"] = prompt.placeholder
    if kind in READ_ONLY_TYPES or fixed:
        render_kw["readonly"] = True
    common = {"label": prompt.label or prompt.field_key, "description": prompt.help_text,
              "render_kw": render_kw}

    if kind == "username":
        checks += [validators.Length(max=USERNAME_MAX),
                   validators.Regexp(r"^[\w.@+-]+$", message="Use letters, digits and @ . + - _ only.")]
        render_kw.setdefault("autocomplete", "username")
        return fields.StringField(validators=checks, filters=[_strip], **common)
    if kind == "email":
        render_kw.setdefault("autocomplete", "email")
        return fields.EmailField(validators=[*checks, validators.Length(max=320), NormalisedEmail()],
                                 filters=[_strip], **common)
    if kind == "password":
        render_kw.setdefault("autocomplete", "new-password")
        return fields.PasswordField(validators=checks, **common)
    if kind in {"text_area", "text_area_read_only"}:
        return fields.TextAreaField(validators=[*checks, validators.Length(max=10000)], **common)
    if kind == "number":
        return fields.DecimalField(validators=checks, **common)
    if kind == "checkbox":
        if prompt.required:
            checks = [validators.DataRequired("Tick this box to continue.")]
        return fields.BooleanField(validators=checks, **common)
    if kind == "dropdown":
        return fields.SelectField(choices=_choices(prompt), validators=checks, **common)
    if kind == "radio-button-group":
        return fields.RadioField(choices=_choices(prompt), validators=checks, **common)
    if kind == "date":
        return fields.DateField(validators=checks, **common)
    if kind == "date-time":
        return fields.DateTimeLocalField(validators=checks, format="%Y-%m-%dT%H:%M", **common)
    if kind == "hidden":
        return fields.HiddenField(**common)
    return fields.StringField(validators=[*checks, validators.Length(max=1000)], filters=[_strip],
                              **common)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def build_form(prompts, *, formdata=None, data: dict | None = None, fixed: set[str] = frozenset()):
    """A processed form for these prompts: `data` pre-fills, `formdata` is what was posted."""
    unbound = []
    for prompt in prompts:
        field = unbound_field(prompt, fixed=prompt.field_key in fixed)
        if field is not None:
            unbound.append((prompt.field_key, field))
    form = BaseForm(unbound)
    form.process(formdata, data=_initial(prompts, data or {}))
    return form


def _initial(prompts, data: dict) -> dict:
    initial = {}
    for prompt in prompts:
        if prompt.type == "password":
            continue
        value = data.get(prompt.field_key, prompt.initial_value or None)
        if value is None:
            continue
        if prompt.type == "date" and isinstance(value, str):
            value = _parse(date.fromisoformat, value)
        elif prompt.type == "date-time" and isinstance(value, str):
            value = _parse(datetime.fromisoformat, value)
        elif prompt.type == "checkbox" and isinstance(value, str):
            value = value.lower() in {"1", "true", "yes", "on"}
        elif prompt.type == "number" and isinstance(value, (int, float, str)):
            value = _parse(Decimal, str(value))
        initial[prompt.field_key] = value
    return initial


def _parse(parser, value):
    try:
        return parser(value)
    except (ValueError, ArithmeticError):
        return None


def to_json(value):
    """A form value as it is kept in prompt_data and user attributes."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
