"""``flask users ...``: accounts from the command line, for operators and scripts.

Exit status 0 when done, 1 when refused (the reason on standard error), 2 for a usage error.
Passwords come from a hidden prompt or, with ``--password-stdin``, from the first line of
standard input; they are never echoed or taken as an argument.
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from accounts import bp, notify, tokens
from accounts.models import Purpose, User
from accounts.roles import ROLES
from accounts.users import AccountError, check_password, create, deactivate, find, reactivate
from accounts.users import set_role as change_role
from lectern.extensions import db

role_choice = click.Choice(ROLES)


def account(email: str) -> User:
    user = find(email)
    if user is None:
        raise click.ClickException(f"no account has the address {email}")
    return user


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    return str(password)


@bp.cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="Display name.")
@click.option("--role", type=role_choice, default="student", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--send-link", is_flag=True, help="No password: e-mail a 'set your password' link.")
def create_command(email: str, name: str, role: str, password_stdin: bool, send_link: bool) -> None:
    """Create an account."""
    if password_stdin and send_link:
        raise click.UsageError("--password-stdin and --send-link exclude each other")
    password = None if send_link else read_password(password_stdin)
    try:
        user = create(email, name, role, password)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    if send_link:
        _row, token = tokens.issue(Purpose.WELCOME, user.email, user_id=user.id)
        db.session.commit()
        if not notify.send_now(notify.welcome_mail(user, token)):
            raise click.ClickException(f"created {user.email}, but the e-mail was not sent")
    click.echo(f"created {user.email} ({user.role})")


@bp.cli.command("list")
@click.option("--role", type=role_choice, default=None, help="Only this role.")
@click.option("--inactive", is_flag=True, help="Only deactivated accounts.")
def list_command(role: str | None, inactive: bool) -> None:
    """List accounts, tab-separated: e-mail, role, active or inactive, name."""
    query = select(User).order_by(User.email)
    if role:
        query = query.where(User.role == role)
    if inactive:
        query = query.where(User.active.is_(False))
    for user in db.session.scalars(query):
        state = "active" if user.active else "inactive"
        click.echo(f"{user.email}\t{user.role}\t{state}\t{user.name}")


@bp.cli.command("set-role")
@click.argument("email")
@click.argument("role", type=role_choice)
def set_role_command(email: str, role: str) -> None:
    """Change an account's site role."""
    user = account(email)
    try:
        change_role(user, role)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{user.email} is now {role}")


@bp.cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Refuse an account's sign-ins and close its live connections."""
    user = account(email)
    try:
        deactivate(user)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{user.email} is deactivated")


@bp.cli.command("reactivate")
@click.argument("email")
def reactivate_command(email: str) -> None:
    """Let a deactivated account sign in again."""
    user = account(email)
    reactivate(user)
    click.echo(f"{user.email} is active")
