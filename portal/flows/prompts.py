"""Prompt types -> WTForms fields and validators.

Forms are built with WTForms' BaseForm, keyed by each prompt's field_key, so a key such as
"data" or "errors" cannot clash with a form attribute.
"""

from __future__ import annotations

import base64
import mimetypes
from datetime import date, datetime
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email
from werkzeug.datastructures import FileStorage
from wtforms import fields, validators
from wtforms.fields.choices import SelectChoice
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
    "file": "File",
    "ak-locale": "Language choice",
    "hidden": "Hidden",
    "static": "Static text",
    "separator": "Separator",
    "alert_info": "Alert (info)",
    "alert_warning": "Alert (warning)",
    "alert_danger": "Alert (danger)",
}

USERNAME_MAX = 150
CHOICE_TYPES = {"dropdown", "radio-button-group"}
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]

# File prompts keep the upload as a data URI in prompt_data (as authentik does), so files are small.
FILE_MAX_SIZE_DEFAULT = 1024 * 1024
FILE_MAX_SIZE_LIMIT = 5 * 1024 * 1024

# authentik's interface languages, by code, each named in its own language.
LOCALES = [
    ("en", "English"), ("cs_CZ", "Čeština"), ("de", "Deutsch"), ("es", "Español"),
    ("fr", "Français"), ("it", "Italiano"), ("ko", "한국어"), ("nl", "Nederlands"),
    ("pl", "Polski"), ("pt", "Português"), ("pt_BR", "Português (Brasil)"), ("ru", "Русский"),
    ("tr", "Türkçe"), ("fi", "Suomi"), ("zh-Hans", "简体中文"), ("zh-Hant", "繁體中文"),
]


def file_limits(prompt) -> tuple[int, list[str]]:
    """A file prompt's size limit (bytes) and allowed types (MIME types, `image/*`, or `.ext`)."""
    options = prompt.options or {}
    try:
        size = int(options.get("max_size") or FILE_MAX_SIZE_DEFAULT)
    except (TypeError, ValueError):
        size = FILE_MAX_SIZE_DEFAULT
    allowed = [str(t).strip().lower() for t in options.get("allowed_types") or [] if str(t).strip()]
    return max(1, min(size, FILE_MAX_SIZE_LIMIT)), allowed


def _type_allowed(filename: str, mime: str, allowed: list[str]) -> bool:
    if not allowed:
        return True
    extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    for rule in allowed:
        if rule.startswith(".") and rule == extension:
            return True
        if rule.endswith("/*") and mime.startswith(rule[:-1]):
            return True
        if rule == mime:
            return True
    return False


class FileUpload:
    """Check an upload's size and type on the server and turn it into a data URI.

    The type comes from the file name's extension (never trusting the browser's Content-Type);
    the data URI carries that type, so what is stored always matches what was allowed.
    """

    def __init__(self, prompt, required: bool) -> None:
        self.max_size, self.allowed = file_limits(prompt)
        self.required = required

    def __call__(self, form, field):
        upload = field.data
        if isinstance(upload, dict) and upload.get("data"):
            return  # sent on an earlier visit to this page; kept unless replaced
        if not isinstance(upload, FileStorage) or not upload.filename:
            field.data = None
            if self.required:
                raise validators.StopValidation("Choose a file.")
            return
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:255]
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if not _type_allowed(name, mime, self.allowed):
            raise validators.StopValidation(
                f"“{name}” is not an allowed type. Allowed: {', '.join(self.allowed)}.")
        content = upload.stream.read(self.max_size + 1)
        if len(content) > self.max_size:
            raise validators.StopValidation(
                f"“{name}” is too large; the limit is {_size(self.max_size)}.")
        if not content:
            raise validators.StopValidation(f"“{name}” is empty.")
        field.data = {"name": name, "type": mime, "size": len(content),
                      "data": f"data:{mime};base64,{base64.b64encode(content).decode()}"}


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / 1024 / 1024:.1f} MB"
    return f"{max(1, count // 1024)} KB" if count >= 1024 else f"{count} bytes"


def file_accept(prompt) -> str:
    """The `accept` attribute for a file input: a hint to the browser, enforced on the server."""
    return ",".join(file_limits(prompt)[1])


class NormalisedEmail:
    """Validate an address with email-validator and keep its normalised form."""

    def __call__(self, form, field):
        if not field.data:
            return
        try:
            field.data = validate_email(field.data, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise validators.ValidationError(f"Enter a valid email address ({exc}).") from None


def as_choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices (tuples are deprecated in WTForms 3.3)."""
    return [SelectChoice(value, label) for value, label in pairs]


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
        # Choices cannot be read-only in HTML; disabled shows the value, the server ignores posts.
        render_kw["disabled" if kind in CHOICE_TYPES | {"checkbox", "ak-locale"} else "readonly"] = True
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
        return fields.TextAreaField(validators=[*checks, validators.Length(max=10000)],
                                    filters=[_without_nul], **common)
    if kind == "number":
        return fields.DecimalField(validators=[*checks, FiniteNumber()], **common)
    if kind == "checkbox":
        if prompt.required:
            checks = [validators.DataRequired("Tick this box to continue.")]
        return fields.BooleanField(validators=checks, **common)
    if kind == "dropdown":
        blank = [] if required else [("", "—")]
        return fields.SelectField(choices=as_choices(blank + _choices(prompt)), validators=checks,
                                  **common)
    if kind == "radio-button-group":
        return fields.RadioField(choices=as_choices(_choices(prompt)), validators=checks, **common)
    if kind == "date":
        return fields.DateField(validators=checks, **common)
    if kind == "date-time":
        return fields.DateTimeLocalField(validators=checks, format=DATETIME_FORMATS, **common)
    if kind == "ak-locale":
        return fields.SelectField(choices=as_choices(LOCALES if required else [("", "—"), *LOCALES]),
                                  validators=checks, **common)
    if kind == "file":
        if fixed:
            return None
        accept = file_accept(prompt)
        if accept:
            render_kw["accept"] = accept
        return fields.FileField(validators=[FileUpload(prompt, required)], **common)
    if kind == "hidden":
        return fields.HiddenField(**common)
    return fields.StringField(validators=[*checks, validators.Length(max=1000)], filters=[_strip],
                              **common)


def _without_nul(value):
    """NUL cannot be stored in a PostgreSQL text column; nobody types it on purpose."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _strip(value):
    return _without_nul(value).strip() if isinstance(value, str) else value


class FiniteNumber:
    """Refuse NaN, infinities and numbers too large to store as JSON."""

    LIMIT = Decimal(10) ** 15

    def __call__(self, form, field):
        if field.data is not None and (not field.data.is_finite() or abs(field.data) >= self.LIMIT):
            raise validators.StopValidation("Enter a number between -10¹⁵ and 10¹⁵.")


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
        if not value.is_finite() or abs(value) >= FiniteNumber.LIMIT:  # refused by the form anyway
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    return value
