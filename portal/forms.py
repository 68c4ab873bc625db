"""Validators shared by the admin and auth forms."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from wtforms import ValidationError

from .security.passwords import MAX_LENGTH, password_problems


class Email:
    """Check an address with email-validator and keep its normalised form."""

    def __call__(self, form, field):
        if not field.data:
            return
        try:
            field.data = validate_email(field.data.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValidationError(f"Enter a valid email address ({exc}).") from None


class PasswordPolicy:
    """The portal's password policy; reads username/email fields of the same form if present."""

    def __call__(self, form, field):
        username = getattr(getattr(form, "username", None), "data", "") or ""
        email = getattr(getattr(form, "email", None), "data", "") or ""
        problems = password_problems(field.data or "", username=username, email=email)
        if problems:
            raise ValidationError(" ".join(problems))


PASSWORD_RENDER = {"autocomplete": "new-password", "maxlength": MAX_LENGTH}
