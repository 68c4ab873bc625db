from __future__ import annotations

import json
from datetime import UTC, date, datetime

import yaml
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError


def parse_attributes(text: str) -> dict:
    """A YAML or JSON object as a JSON-safe dict; ValueError with line and reason otherwise."""
    if not text or not text.strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"Line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"{where}{problem}. Write a YAML or JSON object.") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(
            f"Attributes must be an object of key: value pairs, not a {type(value).__name__}."
        )
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"Every key must be text; {bad_keys[0]!r} is not.")
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise ValueError(f"{value!r} cannot be stored as an attribute")


class YamlObject:
    def __call__(self, form, field):
        try:
            field.parsed = parse_attributes(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class InvitationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=255)],
                       description="For you and other admins; the invitee does not see it.")
    expires = DateTimeLocalField(
        "Expires (UTC)", format="%Y-%m-%dT%H:%M",
        validators=[InputRequired("Choose when the invitation expires.")],
    )
    flow = SelectField("Flow", coerce=int,
                       validators=[InputRequired("Choose the enrollment flow.")],
                       description="The invitation works only on this flow.")
    attributes = TextAreaField(
        "Attributes", validators=[YamlObject()], render_kw={"rows": 6, "spellcheck": "false"},
        description="Optional YAML or JSON object. Keys that match a field (such as email or "
                    "name) pre-fill it and cannot be changed by the invitee; everything lands "
                    "in the new user's attributes.",
    )
    single_use = BooleanField("Single use", description="The link stops working after one enrollment.")
    submit = SubmitField("Save")

    def __init__(self, *args, flows=(), original_expiry: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flow.choices = [(f.id, f"{f.name} ({f.slug})") for f in flows]
        self._original_expiry = original_expiry

    def validate_expires(self, field):
        if field.data is None:
            return
        value = field.data.replace(tzinfo=UTC)
        unchanged = self._original_expiry is not None and (
            self._original_expiry.replace(second=0, microsecond=0) == value
        )
        if not unchanged and value <= datetime.now(UTC):
            raise ValidationError("Choose a moment in the future.")

    @property
    def expires_at(self) -> datetime:
        return self.expires.data.replace(tzinfo=UTC)


class ConfirmForm(FlaskForm):
    """An empty form: its CSRF token is what protects a POST-only action."""

    submit = SubmitField("Confirm")
