"""Managing accounts: create, change the site role, deactivate and reactivate.

Shared by the admin pages and the ``flask users`` command, so both keep the same rules: an
address has one account, and the last active administrator can be neither demoted nor
deactivated.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select

from accounts.emails import normalize_email
from accounts.models import NAME_MAX, User
from accounts.roles import ADMIN, ROLES
from lectern.extensions import db
from rooms import access

PASSWORD_MIN = 10
PASSWORD_MAX = 200


class AccountError(ValueError):
    """The change is refused; the message says why (shown to the admin or operator)."""


def find(email: str) -> User | None:
    """The account with this address (any case), or None."""
    normalized = normalize_email(email)
    if normalized is None:
        return None
    return db.session.scalar(select(User).where(User.email == normalized))


def check_password(password: str) -> None:
    """Refuse passwords too short to resist guessing, or too long to hash cheaply."""
    if len(password) < PASSWORD_MIN:
        raise AccountError(_("The password needs at least %(n)d characters.", n=PASSWORD_MIN))
    if len(password) > PASSWORD_MAX:
        raise AccountError(_("The password may have at most %(n)d characters.", n=PASSWORD_MAX))


def create(
    email: str, name: str, role: str, password: str | None = None, commit: bool = True
) -> User:
    """A new active account (committed, or only flushed with ``commit=False``); without a
    password it cannot sign in until one is set.

    :raises AccountError: bad address, name or role, weak password, or the address is taken
    """
    normalized = normalize_email(email)
    if normalized is None:
        raise AccountError(_("%(email)s is not an e-mail address.", email=email[:80]))
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX:
        raise AccountError(_("The name must have 1 to %(n)d characters.", n=NAME_MAX))
    if role not in ROLES:
        raise AccountError(_("Unknown role %(role)s.", role=role[:20]))
    if find(normalized) is not None:
        raise AccountError(_("An account with %(email)s already exists.", email=normalized))
    user = User(email=normalized, name=name, role=role, active=True)
    if password is not None:
        check_password(password)
        user.set_password(password)
    db.session.add(user)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return user


def other_active_admins(user: User) -> int:
    """Active administrators besides ``user``."""
    return (
        db.session.scalar(
            select(func.count()).where(User.role == ADMIN, User.active, User.id != user.id)
        )
        or 0
    )


def is_last_admin(user: User) -> bool:
    return user.role == ADMIN and user.active and other_active_admins(user) == 0


def set_role(user: User, role: str) -> None:
    """Change the site role (committed).

    :raises AccountError: unknown role, or this would leave no active administrator
    """
    if role not in ROLES:
        raise AccountError(_("Unknown role %(role)s.", role=role[:20]))
    if role != ADMIN and is_last_admin(user):
        raise AccountError(_("%(email)s is the last administrator.", email=user.email))
    user.role = role
    db.session.commit()


def deactivate(user: User) -> None:
    """Refuse the account's sign-ins from now on and close its live connections at once.

    :raises AccountError: this is the last active administrator
    """
    if is_last_admin(user):
        raise AccountError(_("%(email)s is the last administrator.", email=user.email))
    user.active = False
    db.session.commit()  # before closing: the reconnecting clients must find it inactive
    close_connections(user.id)


def reactivate(user: User) -> None:
    user.active = True
    db.session.commit()


def close_connections(user_id: int) -> None:
    """End the user's access to every room at once (``rooms.access``): grants, streams and
    hands end, and their live connections close on every web worker; reconnecting is refused."""
    access.remove_now(user_id)
