"""`flask --app wsgi ...` commands."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .auth import service as accounts
from .forms import Email
from .models import TokenPurpose
from .security.passwords import password_problems
from .urls import base_url


def print_setup_link() -> str | None:
    """When no admin exists, print a fresh one-time link where the first admin sets a password."""
    if accounts.admin_exists():
        return None
    token = accounts.issue_action_token(TokenPurpose.SETUP, current_app.config["SETUP_LINK_LIFETIME_DELTA"])
    link = f"{base_url()}/auth/setup?token={token}"
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


class _Migrations(click.Group):
    """`flask db ...`: Flask-Migrate's own commands, bound (and Alembic imported) only when one
    is asked for (portal.extensions.bind_migrations)."""

    def __init__(self, app: Flask) -> None:
        super().__init__("db", help="Database migrations (Flask-Migrate): upgrade, current, ...")
        self.app = app

    def _commands(self) -> click.Group:
        from flask_migrate.cli import db as migrate_commands

        from .extensions import bind_migrations

        bind_migrations(self.app)
        return migrate_commands

    def parse_args(self, ctx, args):
        real = self._commands()  # its options (--directory, -x) and its callback, which uses them
        self.params, self.callback = real.params, real.callback
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):
        return self._commands().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._commands().get_command(ctx, name)


def register(app: Flask) -> None:
    app.cli.add_command(_Migrations(app))

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
        from .flows.defaults import (
            ensure_default_authentication_flow,
            ensure_default_authenticator_setup_flow,
            ensure_default_enrollment_flow,
            ensure_default_recovery_flow,
        )

        flow = ensure_default_enrollment_flow()
        click.echo(f"Default enrollment flow: {flow.slug}")
        flow = ensure_default_authentication_flow()
        click.echo(f"Default authentication flow: {flow.slug}")
        click.echo(f"Default recovery flow: {ensure_default_recovery_flow().slug}")
        click.echo(f"Authenticator setup flow: {ensure_default_authenticator_setup_flow().slug}")
        if not no_setup_link:
            print_setup_link()

    app.cli.add_command(blueprints_cli)
    app.cli.add_command(api_tokens_cli)
    app.cli.add_command(tenants_cli)

    @app.cli.command("setup-link")
    def setup_link() -> None:
        """Print a new one-time setup link for the first admin (earlier ones stop working)."""
        if print_setup_link() is None:
            raise click.ClickException("An admin already exists; sign in instead.")

    register_lifecycle_commands(app)


def _duration(option: str, raw: str):
    from config import parse_duration

    try:
        return parse_duration(option, raw)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def register_lifecycle_commands(app: Flask) -> None:
    """`outbox send|run` deliver email; `invitations purge`, `outbox purge` and `audit purge`
    delete what is past its retention."""
    from flask.cli import AppGroup

    outbox = AppGroup("outbox", help="Deliver the emails waiting in the outbox.")
    invitations = AppGroup("invitations", help="Invitation housekeeping.")

    @outbox.command("send")
    @click.option("--due-only", is_flag=True,
                  help="Only messages whose retry time has come (default: every queued one).")
    def outbox_send(due_only: bool) -> None:
        """Send every queued email now (safe to run beside other senders)."""
        from .mail import Report, deliver, mail_configured

        if not mail_configured():
            raise click.ClickException("No mail server is configured (set MAIL_SERVER).")
        total = Report()
        while True:  # in batches; stop when a pass sends nothing or the server has trouble
            report = deliver(due_only=due_only, limit=200)
            total.sent += report.sent
            total.retrying += report.retrying
            total.failed += report.failed
            if not report.sent or report.retrying or report.failed:
                break
        click.echo(f"Outbox: {total}.")

    @outbox.command("run")
    @click.option("--interval", default=5.0, show_default=True, help="Seconds between passes.")
    def outbox_run(interval: float) -> None:
        """Run the sender as a long-lived process (what production runs beside the web server)."""
        import logging

        from .mail import mail_configured, run_forever

        if not mail_configured():
            raise click.ClickException("No mail server is configured (set MAIL_SERVER).")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        click.echo(f"Outbox sender running every {interval}s; stop with Ctrl-C.")
        try:
            run_forever(interval)
        except KeyboardInterrupt:
            click.echo("Stopped.")

    audit = AppGroup("audit", help="Audit log housekeeping.")

    def purge_command(group, *, default: str, deletes: str, purge: str, done: str,
                      help: str) -> None:
        """`<group> purge --older-than <ISO-8601 duration>`: the function named by `purge`
        (imported when the command runs) deletes and counts; `done` reports, with {count} and
        {older_than}."""

        @group.command("purge", help=help)
        @click.option("--older-than", "older_than", default=default, show_default=True,
                      help=f"ISO-8601 duration: delete {deletes}.")
        def command(older_than: str) -> None:
            from werkzeug.utils import import_string

            count = import_string(purge)(_duration("--older-than", older_than))
            click.echo(done.format(count=count, older_than=older_than))

    purge_command(outbox, default="P30D", deletes="sent and failed emails older than this",
                  purge="portal.mail.outbox.purge",
                  done="Deleted {count} email(s) older than {older_than}.",
                  help="Delete delivered and failed emails after a while (queued ones are kept).")
    purge_command(invitations, default="P30D",
                  deletes="invitations that expired longer ago than this",
                  purge="portal.invitations.service.purge_expired",
                  done="Deleted {count} invitation(s) that expired more than {older_than} ago.",
                  help="Delete invitations that expired long ago (their use is refused at use "
                       "time anyway).")
    purge_command(audit, default="P90D", deletes="audit events recorded longer ago than this",
                  purge="portal.audit.purge",
                  done="Deleted {count} audit event(s) older than {older_than}.",
                  help="Delete audit events after your retention period (run it daily, e.g. "
                       "from cron).")

    app.cli.add_command(outbox)
    app.cli.add_command(invitations)
    app.cli.add_command(audit)

@click.group("api-tokens", cls=AppGroup)
def api_tokens_cli() -> None:
    """API tokens: create, list and revoke a user's tokens."""


def _token_owner(username: str):
    from sqlalchemy import func, select

    from .extensions import db
    from .models import User

    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise click.BadParameter(f"no user {username!r}", param_hint="--user")
    return user


@api_tokens_cli.command("create")
@click.option("--user", "username", required=True, help="Whose token it is.")
@click.option("--name", required=True, help="What uses it (shown in lists and the audit log).")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="SCOPE",
              help="A permission the token carries (repeat, or separate by commas): "
                   "invitations:manage, users:manage, flows:manage, access:manage, audit:view, "
                   "superuser.")
@click.option("--expires-in", "expires_in", default="P90D", show_default=True,
              help="ISO 8601 duration (at most a year).")
@click.option("--tenant", "tenant_slug", default=None, metavar="SLUG",
              help="The one tenant the token acts in (default: the default tenant); the scopes "
                   "must be held there.")
def api_tokens_create(username: str, name: str, scopes: tuple[str, ...], expires_in: str,
                      tenant_slug: str | None) -> None:
    """Create a token and print its secret (shown this once only)."""
    from . import apitokens, tenants
    from .models import utcnow

    user = _token_owner(username)
    lifetime = _duration("--expires-in", expires_in)
    tenant = None
    if tenant_slug is not None:
        tenant = tenants.by_slug(tenant_slug.strip().lower())
        if tenant is None:
            raise click.BadParameter(f"no tenant {tenant_slug!r}", param_hint="--tenant")
    try:
        token, secret = apitokens.issue(user, name=name, scopes=apitokens.parse_scopes(" ".join(scopes)),
                                        expires_at=utcnow() + lifetime, tenant=tenant)
    except apitokens.TokenError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.field.replace('_', '-')}") from None
    click.echo(f"Token {token.name!r} (id {token.id}) for {user.username} in tenant "
               f"{apitokens.tenant_of(token).slug}, scopes {', '.join(token.scopes)}, "
               f"expires {token.expires_at.isoformat()}:", err=True)
    click.echo(secret)


@api_tokens_cli.command("list")
@click.option("--user", "username", required=True)
def api_tokens_list(username: str) -> None:
    """A user's tokens: id, name, state, scopes, expiry, last use."""
    from . import apitokens

    for token in apitokens.tokens_of(_token_owner(username)):
        used = token.last_used_at.isoformat() if token.last_used_at else "never used"
        click.echo(f"{token.id}\t{token.name}\t{apitokens.state_of(token)}\t"
                   f"{','.join(token.scopes)}\t{token.expires_at.isoformat()}\t{used}")


@api_tokens_cli.command("revoke")
@click.option("--user", "username", required=True)
@click.argument("token_id", type=int)
def api_tokens_revoke(username: str, token_id: int) -> None:
    from . import apitokens

    user = _token_owner(username)
    token = apitokens.find_own(user, token_id)
    if token is None:
        raise click.ClickException(f"{user.username} has no token {token_id}.")
    apitokens.revoke(token, actor=user)
    click.echo(f"Token {token.name!r} revoked.")


def tenant_option(command):
    """--tenant SLUG for commands acting on a tenant's objects: needed once there are several
    tenants (nothing acts on "some tenant" by accident); the default one when there is one."""
    return click.option("--tenant", "tenant_slug", default=None, metavar="SLUG",
                        help="The tenant to act in (required when there are several).")(command)


def use_tenant_named(slug: str | None):
    from . import tenants

    if slug is None:
        if tenants.tenant_count() > 1:
            raise click.ClickException("This instance has several tenants: say which with --tenant SLUG.")
        tenant = tenants.default_tenant()
    else:
        tenant = tenants.by_slug(slug)
        if tenant is None:
            raise click.ClickException(f"No tenant has the slug {slug!r}.")
    tenants.use_tenant(tenant)
    return tenant


@click.group("blueprints", cls=AppGroup)
def blueprints_cli() -> None:
    """Import and export authentik blueprint YAML."""


@blueprints_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--context", "context", multiple=True, metavar="KEY=VALUE",
              help="A value for !Context tags (repeatable).")
@tenant_option
def blueprints_import(file: str, dry_run: bool, context: tuple[str, ...], tenant_slug: str | None) -> None:
    """Import FILE, all or nothing, and list what was created, updated, deleted or skipped."""
    from .access import Grants
    from .flows.blueprints import import_blueprint

    use_tenant_named(tenant_slug)
    values = {}
    for pair in context:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--context")
        values[key] = value
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text.") from None
    # Whoever runs the command line operates the server: a superuser.
    report = import_blueprint(text, actor=Grants(superuser=True), dry_run=dry_run, context=values)
    if report.name:
        click.echo(f"Blueprint: {report.name}")
    for change in report.changes:
        click.echo(f"  {change.action:<9} entry {change.entry:<3} {change.model}  {change.label}")
        for line in change.details if change.action == "skip" else change.notes:
            click.echo(f"            {'why' if change.action == 'skip' else 'note'}: {line}")
        if change.action == "update":
            click.echo(f"            changed: {', '.join(change.details)}")
    if not report.ok:
        for error in report.errors:
            click.secho(error, fg="red", err=True)
        raise click.ClickException("Nothing was imported.")
    if not dry_run:
        from .audit import record_import
        from .flows.blueprints import flow_by_slug

        record_import([f for f in map(flow_by_slug, report.flow_slugs) if f], report)
    for warning in report.warnings:
        click.secho(f"Warning: {warning}", fg="yellow")
    click.echo(report.summary() + ".")
    click.secho("Dry run: nothing was written." if dry_run else "Imported.", fg="green")


@blueprints_cli.command("export")
@click.argument("slug")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@tenant_option
def blueprints_export(slug: str, output: str | None, tenant_slug: str | None) -> None:
    """Export the flow SLUG as blueprint YAML."""
    from .flows.blueprints import BlueprintError, export_flow, flow_by_slug

    use_tenant_named(tenant_slug)
    flow = flow_by_slug(slug)
    if flow is None:
        raise click.ClickException(f"No flow has the slug {slug!r}.")
    try:
        text = export_flow(flow)
    except BlueprintError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"Wrote {output}.")
    else:
        click.echo(text, nl=False)


@click.group("tenants", cls=AppGroup)
def tenants_cli() -> None:
    """Tenant members: add an existing account to a tenant, or remove one."""


def _account(identifier: str):
    from . import tenants

    user = tenants.find_account(identifier)
    if user is None:
        raise click.BadParameter(f"no account has the username or email {identifier!r}",
                                 param_hint="ACCOUNT")
    return user


def _role_spec(spec: str):
    """NAME or NAME:NS,NS -> (Role of the current tenant, namespaces)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Role
    from .tenants import visible

    name, _, namespaces = spec.partition(":")
    role = db.session.scalar(select(Role).where(Role.name == name.strip(), visible(Role)))
    if role is None:
        raise click.BadParameter(f"this tenant has no role {name.strip()!r}", param_hint="--role")
    return role, [n.strip() for n in namespaces.split(",") if n.strip()]


@tenants_cli.command("add-member")
@click.argument("account")
@tenant_option
@click.option("--group", "group_names", multiple=True, metavar="NAME",
              help="A group of the tenant to give (repeat for several).")
@click.option("--role", "role_specs", multiple=True, metavar="NAME[:NS,NS]",
              help="A role of the tenant held directly, optionally limited to namespaces "
                   "(repeat for several), e.g. --role auditor:sales,hr.")
def tenants_add_member(account: str, tenant_slug: str | None, group_names: tuple[str, ...],
                       role_specs: tuple[str, ...]) -> None:
    """Make the existing ACCOUNT (username or email) a member of the tenant."""
    from sqlalchemy import select

    from . import tenants
    from .extensions import db
    from .models import Group
    from .tenants import visible

    tenant = use_tenant_named(tenant_slug)
    user = _account(account)
    groups = []
    for name in group_names:
        group = db.session.scalar(select(Group).where(Group.name == name, visible(Group)))
        if group is None:
            raise click.BadParameter(f"this tenant has no group {name!r}", param_hint="--group")
        groups.append(group)
    roles = [_role_spec(spec) for spec in role_specs]
    try:
        tenants.add_existing_member(user, groups=groups, roles=roles)
    except tenants.TenantError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{user.username} is now a member of {tenant.slug} with {len(groups)} group(s) and "
               f"{len(roles)} direct role(s).")


@tenants_cli.command("remove-member")
@click.argument("account")
@tenant_option
def tenants_remove_member(account: str, tenant_slug: str | None) -> None:
    """Take ACCOUNT (username or email) out of the tenant: membership, groups, direct roles."""
    from . import tenants

    tenant = use_tenant_named(tenant_slug)
    user = _account(account)
    try:
        tenants.remove_member(user)
    except tenants.TenantError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{user.username} is no longer a member of {tenant.slug}.")
