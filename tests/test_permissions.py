"""Who may open which page and take which action: account roles x course and broadcast roles."""

from __future__ import annotations

from datetime import timedelta

import pytest

LESSON = {"title": "Extra", "starts_at": "2030-01-01T10:00", "duration_minutes": "45"}
BROADCAST = {
    "title": "Town hall",
    "kind": "all_hands",
    "registration_mode": "open",
    "starts_at": "2030-01-01T10:00",
    "duration_minutes": "60",
}

# Who is who in the `world` fixture:
#   instructor  owns the course          student   is enrolled in it
#   host        hosts every broadcast    attendee  is registered for the open broadcast
#                                                  and invited to the invite-only one
#   admin       may do anything          outsider  a signed-in student with no ties at all
ROLES = ("instructor", "student", "host", "attendee", "admin", "outsider")

# action -> (method, path, form data, expected status for each of ROLES in order)
ACTIONS: dict[str, tuple[str, str, dict[str, str], tuple[int, ...]]] = {
    "dashboard": ("GET", "/", {}, (200, 200, 200, 200, 200, 200)),
    "course list": ("GET", "/courses/", {}, (200, 200, 200, 200, 200, 200)),
    "course form": ("GET", "/courses/new", {}, (200, 403, 403, 403, 200, 403)),
    "create course": ("POST", "/courses/new", {"title": "Optics"}, (302, 403, 403, 403, 302, 403)),
    "view course": ("GET", "/courses/{course}", {}, (200, 200, 404, 404, 200, 404)),
    "enrol": (
        "POST", "/courses/{course}/enroll", {"emails": "{spare}"}, (302, 403, 404, 404, 302, 404),
    ),
    "remove student": (
        "POST", "/courses/{course}/students/{student}/remove", {}, (302, 403, 404, 404, 302, 404),
    ),
    "schedule lesson": (
        "POST", "/courses/{course}/lessons", LESSON, (302, 403, 404, 404, 302, 404),
    ),
    "view lesson": (
        "GET", "/courses/{course}/lessons/{lesson}", {}, (200, 200, 404, 404, 200, 404),
    ),
    "broadcast list": ("GET", "/broadcasts/", {}, (200, 200, 200, 200, 200, 200)),
    "broadcast form": ("GET", "/broadcasts/new", {}, (403, 403, 200, 403, 200, 403)),
    "create broadcast": ("POST", "/broadcasts/new", BROADCAST, (403, 403, 302, 403, 302, 403)),
    "view open broadcast": ("GET", "/broadcasts/{open}", {}, (200, 200, 200, 200, 200, 200)),
    "register for open": (
        "POST", "/broadcasts/{open}/register", {}, (302, 302, 403, 403, 403, 302),
    ),
    "approve registration": (
        "POST", "/broadcasts/{approval}/registrations/{pending}/approve", {},
        (403, 403, 302, 403, 302, 403),
    ),
    "decline registration": (
        "POST", "/broadcasts/{approval}/registrations/{pending}/decline", {},
        (403, 403, 302, 403, 302, 403),
    ),
    "invite": (
        "POST", "/broadcasts/{open}/invites", {"emails": "new@example.com"},
        (403, 403, 302, 403, 302, 403),
    ),
    "view invite-only": ("GET", "/broadcasts/{invite}", {}, (404, 404, 200, 200, 200, 404)),
    "accept invitation": (
        "POST", "/broadcasts/{invite}/register", {}, (404, 404, 403, 302, 403, 404),
    ),
    "approve on invite-only": (
        "POST", "/broadcasts/{invite}/registrations/{invitation}/approve", {},
        (404, 404, 302, 403, 302, 404),
    ),
    "invite to invite-only": (
        "POST", "/broadcasts/{invite}/invites", {"emails": "new@example.com"},
        (404, 404, 302, 403, 302, 404),
    ),
}  # fmt: skip

MATRIX = [
    pytest.param(role, action, code, id=f"{action}-{role}")
    for action, (*_, codes) in ACTIONS.items()
    for role, code in zip(ROLES, codes, strict=True)
]


@pytest.fixture
def world(users, courses, broadcasts) -> dict:
    """One user of each kind, a course with a lesson, and three broadcasts by one host."""
    people = {role: users.make(role) for role in ("instructor", "student", "host", "admin")}
    people["attendee"] = users.make("attendee")
    people["outsider"] = users.make("student")
    spare = users.make("student")
    waiting = users.make("attendee")
    course = courses.make(people["instructor"], students=(people["student"],))
    lesson = courses.lesson(course, starts_in=timedelta(hours=1))
    host = people["host"]
    open_, approval, invite = (
        broadcasts.make(host, mode=m) for m in ("open", "approval", "invite")
    )
    broadcasts.register(open_, people["attendee"])
    pending = broadcasts.register(approval, waiting, status="pending")
    invitation = broadcasts.register(invite, email=people["attendee"].email, status="pending")
    ids = {
        "course": course.id,
        "lesson": lesson.id,
        "student": people["student"].id,
        "spare": spare.email,
        "open": open_.id,
        "approval": approval.id,
        "pending": pending.id,
        "invite": invite.id,
        "invitation": invitation.id,
    }
    return {"people": people, "ids": ids}


def request(client, action: str, ids: dict):
    """Send ``action`` from the ACTIONS table with the world's ids filled in."""
    method, path, data, _ = ACTIONS[action]
    form = {key: value.format(**ids) for key, value in data.items()}
    return client.open(path.format(**ids), method=method, data=form)


@pytest.mark.parametrize(("role", "action", "expected"), MATRIX)
def test_role_matrix(client, auth, world, role, action, expected):
    auth.switch(world["people"][role])
    response = request(client, action, world["ids"])
    assert response.status_code == expected
    if expected == 302:  # a real success, not a bounce to the sign-in page
        assert not response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("action", list(ACTIONS))
def test_signed_out_visitors_are_sent_to_login(client, world, action):
    response = request(client, action, world["ids"])
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_unknown_role_grants_nothing():
    from accounts.roles import Perm, role_allows

    assert not any(role_allows("janitor", perm) for perm in Perm)


def test_invite_only_broadcast_is_hidden_from_outsiders_lists(client, auth, world):
    auth.switch(world["people"]["outsider"])
    listing = client.get("/broadcasts/").data.decode()
    assert f'/broadcasts/{world["ids"]["open"]}"' in listing
    assert f'/broadcasts/{world["ids"]["invite"]}"' not in listing
    auth.switch(world["people"]["attendee"])
    listing = client.get("/broadcasts/").data.decode()
    assert f'/broadcasts/{world["ids"]["invite"]}"' in listing
