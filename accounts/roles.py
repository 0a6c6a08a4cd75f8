"""Account roles as data: each role maps to the site-wide permissions it grants."""

from enum import StrEnum


class Perm(StrEnum):
    """Site-wide permissions (what a user may create); room permissions live with the rooms."""

    CREATE_COURSE = "course.create"
    CREATE_BROADCAST = "broadcast.create"


# role name -> permissions it grants
ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm),
    "instructor": frozenset({Perm.CREATE_COURSE}),
    "host": frozenset({Perm.CREATE_BROADCAST}),
    "student": frozenset(),
    "attendee": frozenset(),
}

ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


def role_allows(role: str, perm: Perm) -> bool:
    """Whether account ``role`` grants ``perm``; unknown roles grant nothing."""
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
