"""`flask --app wsgi ...` commands."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app

from .auth import service as accounts
from .forms import Email
from .models import TokenPurpose
from .security.passwords import password_problems


def print_setup_link(served_at: str | None = None) -> str | None:
    """When no admin exists, print a fresh one-time link where the first admin sets a password."""
    if accounts.admin_exists():
        return None
    token = accounts.issue_action_token(TokenPurpose.SETUP, current_app.config["SETUP_LINK_LIFETIME_DELTA"])
    base = (current_app.config["BASE_URL"] or served_at
            or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}")
    link = f"{base}/auth/setup?token={token}"
    click.secho("\nNo admin account exists yet. Open this one-time link to create it:", fg="yellow")
    click.secho(f"  {link}\n", fg="green", bold=True)
    return link


def _valid_email(value: str) -> str:
    class _Field:
        data = value

    try:
        Email()(None, _Field)
    except Exception as exc:  # wtforms.ValidationError
        raise click.BadParameter(str(exc)) from None
    return _Field.data


def register(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.option("--username", prompt=True)
    @click.option("--email", prompt=True)
    @click.option("--name", default="", help="Display name.")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    def create_admin(username: str, email: str, name: str, password: str) -> None:
        """Create a superuser (asks for what is missing)."""
        email = _valid_email(email)
        problems = password_problems(password, username=username, email=email)
        if problems:
            raise click.BadParameter(" ".join(problems), param_hint="--password")
        try:
            user = accounts.create_user(username=username, email=email, password=password,
                                        name=name, superuser=True)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Admin {user.username!r} created.")

    @app.cli.command("seed")
    @click.option("--no-setup-link", is_flag=True, help="Leave the setup link to the server's start.")
    def seed(no_setup_link: bool) -> None:
        """Create the default flows (idempotent) and print a setup link if there is no admin."""
        from .flows.defaults import ensure_default_enrollment_flow

        flow = ensure_default_enrollment_flow()
        click.echo(f"Default enrollment flow: {flow.slug}")
        if not no_setup_link:
            print_setup_link()

    @app.cli.command("setup-link")
    def setup_link() -> None:
        """Print a new one-time setup link for the first admin (earlier ones stop working)."""
        if print_setup_link() is None:
            raise click.ClickException("An admin already exists; sign in instead.")
