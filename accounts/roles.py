"""Account roles as data: each role maps to the site-wide permissions it grants."""

from enum import StrEnum


class Perm(StrEnum):
    """Site-wide permissions (what a user may create); room permissions live with the rooms."""

    CREATE_COURSE = "course.create"
    CREATE_BROADCAST = "broadcast.create"
    MANAGE_USERS = "users.manage"  # the admin pages: create, change role, (de)activate


# role name -> permissions it grants
ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm),
    "instructor": frozenset({Perm.CREATE_COURSE}),
    "host": frozenset({Perm.CREATE_BROADCAST}),
    "student": frozenset(),
    "attendee": frozenset(),
}

ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
# The role that holds MANAGE_USERS: the last active one of these cannot be demoted or deactivated.
ADMIN = "admin"


def role_allows(role: str, perm: Perm) -> bool:
    """Whether account ``role`` grants ``perm``; unknown roles grant nothing."""
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
