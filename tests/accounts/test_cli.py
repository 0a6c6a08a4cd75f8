"""``flask users``: create, list, set-role, deactivate, reactivate; exit codes and messages."""

from __future__ import annotations

import pytest

from accounts.models import AccountToken, User
from lectern.extensions import db


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def user_named(email: str) -> User | None:
    db.session.expire_all()
    return db.session.query(User).filter_by(email=email).one_or_none()


def test_create_with_password_from_stdin(cli):
    result = cli.invoke(
        args=[
            "users",
            "create",
            "Ops@Example.com",
            "--name",
            "Ops",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "a long enough password" not in result.output
    user = user_named("ops@example.com")
    assert user is not None and user.role == "admin" and user.active
    assert user.check_password("a long enough password")


def test_create_prompts_twice_and_hides_the_password(cli):
    result = cli.invoke(
        args=["users", "create", "p@example.com", "--name", "P"],
        input="prompted secret!\nprompted secret!\n",
    )
    assert result.exit_code == 0, result.output
    assert "prompted secret!" not in result.output
    assert user_named("p@example.com").check_password("prompted secret!")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["not-an-email", "--name", "X"], "long password here\n", "not an e-mail address"),
        (["x@example.com", "--name", "X"], "short\n", "at least 10 characters"),
        (["x@example.com", "--name", "   "], "long password here\n", "name must have"),
    ],
)
def test_create_refusals_exit_1_and_write_nothing(cli, rows, args, stdin, message):
    result = cli.invoke(args=["users", "create", *args, "--password-stdin"], input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert rows(User) == 0


def test_create_twice_is_refused(cli, users):
    users.make("student", email="taken@example.com")
    result = cli.invoke(
        args=["users", "create", "TAKEN@example.com", "--name", "T", "--password-stdin"],
        input="long password here\n",
    )
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_unknown_role_is_a_usage_error(cli, rows):
    result = cli.invoke(args=["users", "create", "x@example.com", "--name", "X", "--role", "god"])
    assert result.exit_code == 2
    assert rows(User) == 0


def test_create_with_send_link_mails_a_welcome_link(cli, outbox, rows):
    result = cli.invoke(args=["users", "create", "new@example.com", "--name", "New", "--send-link"])
    assert result.exit_code == 0, result.output
    assert user_named("new@example.com").password_hash is None
    assert outbox.link("new@example.com").startswith("/password/reset/")
    assert rows(AccountToken, AccountToken.purpose == "welcome") == 1


def test_list_set_role_deactivate_reactivate(cli, users):
    users.make("admin", email="boss@example.com")
    users.make("student", email="s@example.com", name="Sam")
    listed = cli.invoke(args=["users", "list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "boss@example.com\tadmin\tactive\tAdmin 1",
        "s@example.com\tstudent\tactive\tSam",
    ]
    assert cli.invoke(args=["users", "set-role", "s@example.com", "instructor"]).exit_code == 0
    assert cli.invoke(args=["users", "deactivate", "S@example.com"]).exit_code == 0
    assert cli.invoke(args=["users", "list", "--inactive"]).output == (
        "s@example.com\tinstructor\tinactive\tSam\n"
    )
    assert cli.invoke(args=["users", "reactivate", "s@example.com"]).exit_code == 0
    assert user_named("s@example.com").active


def test_last_admin_can_be_neither_demoted_nor_deactivated(cli, users):
    users.make("admin", email="only@example.com")
    demote = cli.invoke(args=["users", "set-role", "only@example.com", "student"])
    assert demote.exit_code == 1 and "last administrator" in demote.output
    off = cli.invoke(args=["users", "deactivate", "only@example.com"])
    assert off.exit_code == 1 and "last administrator" in off.output
    users.make("admin", email="second@example.com")
    assert cli.invoke(args=["users", "deactivate", "only@example.com"]).exit_code == 0


def test_unknown_account_exits_1(cli):
    result = cli.invoke(args=["users", "deactivate", "ghost@example.com"])
    assert result.exit_code == 1
    assert "no account has the address ghost@example.com" in result.output
