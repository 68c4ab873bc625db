from types import SimpleNamespace

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from ..forms import PASSWORD_RENDER, Email, PasswordPolicy


class SetupForm(FlaskForm):
    username = StringField("Username", validators=[
        DataRequired(), Length(max=150),
        Regexp(r"^[\w.@+-]+$", message="Use letters, digits and @ . + - _ only."),
    ], render_kw={"autocomplete": "username"})
    name = StringField("Name", validators=[Length(max=255)], render_kw={"autocomplete": "name"})
    email = StringField("Email", validators=[DataRequired(), Length(max=320), Email()],
                        render_kw={"autocomplete": "email", "type": "email"})
    password = PasswordField("Password", validators=[DataRequired(), PasswordPolicy()],
                             render_kw=PASSWORD_RENDER)
    password_repeat = PasswordField("Password (repeat)", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match."),
    ], render_kw=PASSWORD_RENDER)
    submit = SubmitField("Create admin account")


class LogoutForm(FlaskForm):
    submit = SubmitField("Sign out")


class SetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), PasswordPolicy()],
                             render_kw=PASSWORD_RENDER)
    password_repeat = PasswordField("New password (repeat)", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match."),
    ], render_kw=PASSWORD_RENDER)
    submit = SubmitField("Set password")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # PasswordPolicy compares the password with the account's own name and address.
        self.username = SimpleNamespace(data=user.username)
        self.email = SimpleNamespace(data=user.email)


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)],
                                     render_kw={"autocomplete": "current-password"})
    password = PasswordField("New password", validators=[DataRequired(), PasswordPolicy()],
                             render_kw=PASSWORD_RENDER)
    password_repeat = PasswordField("New password (repeat)", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match."),
    ], render_kw=PASSWORD_RENDER)
    submit = SubmitField("Change password")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.username = SimpleNamespace(data=user.username)  # for PasswordPolicy, as above
        self.email = SimpleNamespace(data=user.email)


class SignOutEverywhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere")


class ConfirmActionForm(FlaskForm):
    """An empty form for the account page's POST-only actions: its CSRF token protects them."""

    submit = SubmitField("Confirm")
