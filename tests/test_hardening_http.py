"""Bad input never reaches a 500: a property-based fuzzer over every route of ``app.url_map`` for
each kind of visitor, and a regression test for each case found (huge ids, CR/LF in ``next``,
lone surrogates and NUL bytes in fields, over-long values)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule
from wtforms.fields.core import UnboundField

from accounts import limits
from accounts.models import User
from accounts.routes import safe_next
from classroom.models import Course
from lectern.urls import ID_MAX
from tests.conftest import Auth
from webinar import joining

ROLES = ["signed out", "student", "instructor", "host", "admin"]
HUGE_IDS = [0, ID_MAX + 1, 2**32, 2**63 - 1, 2**63, 2**64, 10**30]
# Text that broke something once, or could: surrogates, NUL, line breaks, very long, odd unicode.
NASTY = [
    "\ud800",
    "a\udfffb",
    "a\x00b",
    "\x00",
    "\r\nSet-Cookie: x=1",
    "/\r\nLocation: //evil.example",
    "/courses\n",
    "\x1b[31m",
    "\x7f",
    "x" * 5000,
    "é" * 300,
    "\u202egnp.exe",
    "\ufeff\u200b",
    "\U0001d4b3\U0001d4b4",  # mathematical script letters
    "'; DROP TABLE users; --",
    "../../etc/passwd",
    "%00",
    "%ED%A0%80",
    "//evil.example",
    "\\\\evil.example",
    "<script>alert(1)</script>",
    "9" * 40,
    "-1",
    "",
    " ",
]
# Plausible values, so that many requests get past validation into the views.
HONEST = [
    "Algebra",
    "UTC",
    "Asia/Seoul",
    "2030-01-02T10:00",
    "60",
    "1",
    "student",
    "instructor",
    "admin",
    "apply",
    "preview",
    "webinar",
    "open",
    "invite",
    "ko",
    "y",
    "/courses/",
    "a@example.com",
]
ANY_CHAR = st.characters(exclude_categories=())  # surrogates included
TEXT = st.one_of(st.sampled_from(NASTY), st.text(ANY_CHAR, max_size=30), st.text(max_size=300))
ID = st.one_of(
    st.sampled_from(HUGE_IDS).map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["01", "1e3", "٣", "0x1", " 1", "1.0"]),
)
ARGS = ["next", "q", "page", "lang", "download", "t", "step", "tz"]


def form_fields() -> set[str]:
    """The field names of every form in the app, and those routes read from request.form."""
    names = {"tz", "next", "csrf_token", "file"}
    forms = list(FlaskForm.__subclasses__())
    while forms:
        form = forms.pop()
        forms.extend(form.__subclasses__())
        names |= {n for n in dir(form) if isinstance(getattr(form, n, None), UnboundField)}
    return names


def enc(text: str) -> str:
    """Percent-encode any text, lone surrogates included (as their UTF-8-like bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@dataclass
class World:
    """The data the fuzzer aims at: real ids mixed with bad ones."""

    ids: list[int] = field(default_factory=list)
    password: str = ""
    student_email: str = ""
    texts: list[str] = field(default_factory=list)  # the users' e-mails and their password


def build_world(users, courses, broadcasts) -> tuple[World, dict[str, User]]:
    people = {role: users.make(role) for role in ROLES[1:]}
    attendee = users.make("attendee")
    course = courses.make(people["instructor"], students=(people["student"],))
    lesson = courses.lesson(course)
    broadcast = broadcasts.make(people["host"])
    registration = broadcasts.register(broadcast, attendee)
    ids = [u.id for u in (*people.values(), attendee)]
    ids += [course.id, lesson.id, broadcast.id, registration.id]
    emails = [u.email for u in (*people.values(), attendee)]
    world = World(ids, users.password, people["student"].email, [*emails, users.password])
    return world, people


PARAM = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def fuzz_path(draw, rule: Rule, world: World) -> str:
    """The rule's path with each argument filled: real ids and names, or bad values."""

    def fill(match: re.Match) -> str:
        converter, options, name = match.groups()
        if converter == "int":
            return draw(mostly(st.sampled_from(world.ids).map(str), ID))
        if converter == "any":
            choices = [c.strip() for c in options.split(",")]
            return draw(mostly(st.sampled_from(choices), TEXT.map(enc)))
        if name == "kind":
            return draw(mostly(st.sampled_from(["lesson", "broadcast"]), TEXT.map(enc)))
        token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=40)
        return draw(mostly(token, TEXT.filter(bool).map(enc)))

    return PARAM.sub(fill, rule.rule)


def fuzz_pairs(draw, names: list[str], world: World, most: int = 4) -> list[tuple[str, str]]:
    """Fields or query arguments: mostly known names, half the values plausible, half not."""
    keys = mostly(st.sampled_from(names), TEXT)
    values = mostly(st.sampled_from(HONEST + world.texts), TEXT)
    return draw(st.lists(st.tuples(keys, values), max_size=most))


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` four times in five, else ``odd`` (one_of alone would pick each half the time)."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 4 else usual)


def fuzz_body(draw, fields: list[str], world: World) -> tuple[bytes | dict, str]:
    """A request body: URL-encoded (percent-encoded or raw bytes), JSON, or multipart."""
    pairs = fuzz_pairs(draw, fields, world, most=6)
    kind = draw(st.sampled_from(["form", "form", "raw", "json", "multipart"]))
    if kind == "form":
        body = "&".join(f"{enc(k)}={enc(v)}" for k, v in pairs).encode()
        return body, "application/x-www-form-urlencoded"
    if kind == "raw":
        raw = b"&".join(
            k.encode("utf-8", "surrogatepass") + b"=" + v.encode("utf-8", "surrogatepass")
            for k, v in pairs
        )
        return raw, "application/x-www-form-urlencoded"
    if kind == "json":
        return json.dumps(dict(pairs)).encode(), "application/json"
    safe = {k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"): v for k, v in pairs}
    data: dict = {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in safe.items()
    }
    return data, "multipart/form-data"


class Errors(logging.Handler):
    """Collects every record logged at ERROR or with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture
def logged_errors():
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler.records
    logging.getLogger().removeHandler(handler)


def reset_limits() -> None:
    """The per-worker limiters are module globals: leave them empty for the next test."""
    limits.reset()
    joining.visitors.reset()
    joining.askers.reset()


def signed_in(app: Flask, user: User | None) -> FlaskClient:
    client = app.test_client()
    if user is not None:
        with app.app_context():
            assert Auth(client).login(user).status_code == 302
    return client


def honest_requests_work(app: Flask, client: FlaskClient, user: User | None, world: World) -> None:
    """After a batch: the visitor's dashboard (or sign-in) still works, as does a fresh sign-in."""
    with app.app_context():
        home = client.get("/")
        assert home.status_code == (302 if user is None else 200)
        fresh = app.test_client().post(
            "/login",
            data={"email": world.student_email, "password": world.password},
            environ_base={"REMOTE_ADDR": "192.0.2.250"},
        )
        assert fresh.status_code == 302


@pytest.mark.parametrize("role", ROLES)
def test_fuzzed_requests_never_fail_on_the_server(
    app, users, courses, broadcasts, logged_errors, role
):
    world, people = build_world(users, courses, broadcasts)
    user = people.get(role)
    client = signed_in(app, user)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    if user is not None:  # signing out would end the batch's identity
        rules = [r for r in rules if r.endpoint != "accounts.logout"]
    fields = sorted(form_fields())

    @settings(
        max_examples=200,  # per role: about 4 s each here
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def one_request(data: st.DataObject) -> None:
        rule = data.draw(st.sampled_from(rules), label="rule")
        method = data.draw(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})))
        path = fuzz_path(data.draw, rule, world)
        args = fuzz_pairs(data.draw, ARGS, world, most=2)
        query = "&".join(f"{enc(k)}={enc(v)}" for k, v in args)
        body, content_type = (b"", None)
        if method == "POST":
            body, content_type = fuzz_body(data.draw, fields, world)
        with app.app_context():
            response = client.open(
                path, method=method, query_string=query, data=body, content_type=content_type
            )
        assert response.status_code < 500, (method, path, query, body)
        assert not logged_errors, [r.getMessage() for r in logged_errors]

    try:
        one_request()
    finally:
        reset_limits()
    honest_requests_work(app, client, user, world)


# --- regression tests, one per case found -----------------------------------------------------


def int_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if "<int:" in r.rule]


def with_ids(rule: Rule, value: int) -> str:
    return PARAM.sub(
        lambda m: (
            str(value)
            if m.group(1) == "int"
            else ("lesson" if m.group(3) == "kind" else (m.group(2) or "x").split(",")[0])
        ),
        rule.rule,
    )


@pytest.mark.parametrize("value", [2**63, 2**63 + 1, 2**64, 10**30, ID_MAX + 1, 0])
@pytest.mark.parametrize("who", ["signed out", "admin"])
def test_ids_out_of_range_are_not_found_on_every_route(app, client, users, who, value):
    """SQLite raised OverflowError for ids ≥ 2^63 (PostgreSQL: a DataError past 2^31 - 1)."""
    if who == "admin":
        Auth(client).login(users.make("admin"))
    for rule in int_rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(with_ids(rule, value), method=method)
            # 405 where another method's rule has the same path: Werkzeug says so when a
            # converter refuses the value after the path matched.
            assert response.status_code in (404, 405), (method, rule.rule)


def test_every_id_route_uses_the_range_checked_converter(app):
    from lectern.urls import IdConverter

    converters = [c for r in int_rules(app) for c in r._converters.values()]
    ints = [c for c in converters if c.regex == IdConverter.regex]
    assert ints and all(isinstance(c, IdConverter) for c in ints)
    assert app.url_map.converters["int"] is IdConverter


def test_largest_id_still_reaches_the_view(client):
    assert client.get(f"/courses/{ID_MAX}").status_code == 302  # to the sign-in page
    assert client.get(f"/courses/{ID_MAX + 1}").status_code == 404
    assert client.get("/courses/-1").status_code == 404
    assert client.get("/courses/٣").status_code == 404  # only ASCII digits


def test_huge_id_signed_in_as_a_member(client, users, courses):
    teacher = users.make("instructor")
    course = courses.make(teacher)
    Auth(client).login(teacher)
    assert client.get(f"/courses/{course.id}").status_code == 200
    assert client.get(f"/courses/{course.id}/lessons/{2**63}").status_code == 404
    assert client.get(f"/rooms/lesson/{2**64}").status_code == 404


@pytest.mark.parametrize(
    "target",
    ["/courses\r\nSet-Cookie: stolen=1", "/\nLocation: //evil.example", "/courses\x00", "/\t/x"],
)
def test_control_characters_in_next_are_refused(client, users, target):
    user = users.make("student")
    data = {"email": user.email, "password": users.password}
    response = client.post("/login", query_string={"next": target}, data=data)
    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers.get("Location", "")


@pytest.mark.parametrize("target", ["/a\r\nb", "/a\nb", "/\x00", "/a\x7f", "/" + "a" * 3000])
def test_safe_next_ignores_targets_with_control_characters(app, target):
    with app.test_request_context():
        assert safe_next(target) == "/"


@pytest.mark.parametrize("value", ["\ud800", "a\udc80b", "a\x00b", "\x01"])
def test_lone_surrogates_and_nul_in_json_are_refused(client, users, value):
    user = users.make("student")
    body = json.dumps({"email": user.email, "password": value})
    assert client.post("/login", data=body, content_type="application/json").status_code == 400


def test_lone_surrogate_bytes_in_a_form_are_refused(client, users):
    user = users.make("student")
    body = b"email=" + enc(user.email).encode() + b"&password=\xed\xa0\x80"
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


@pytest.mark.parametrize("field", ["email", "password", "tz"])
def test_nul_in_a_sign_in_field_is_refused(client, users, field):
    data = {"email": users.make("student").email, "password": users.password, "tz": "UTC"}
    data[field] += "\x00"
    assert client.post("/login", data=data).status_code == 400
    assert client.get("/").status_code == 302  # not signed in


def test_nul_in_a_form_read_directly_is_refused(client, users):
    """/account/timezone reads request.form itself: the check covers it too."""
    Auth(client).login(users.make("student"))
    assert client.post("/account/timezone", data={"tz": "Asia/Seoul\x00"}).status_code == 400


def test_nul_in_a_course_title_saves_nothing(client, users, rows):
    Auth(client).login(users.make("instructor"))
    response = client.post("/courses/new", data={"title": "Alge\x00bra", "description": ""})
    assert response.status_code == 400
    assert rows(Course) == 0


def test_line_breaks_stay_allowed_in_text_areas(client, users, rows):
    Auth(client).login(users.make("instructor"))
    data = {"title": "Algebra", "description": "Week one:\r\n\tsets\r\n"}
    assert client.post("/courses/new", data=data).status_code == 302
    assert rows(Course) == 1


def test_control_characters_in_the_path_or_query_are_refused(client):
    assert client.get("/recordings/shared/abc%00def").status_code == 404  # names nothing
    assert client.get("/login", query_string={"lang": "ko\r\n"}).status_code == 400


def test_over_long_query_value_is_refused(client, users):
    Auth(client).login(users.make("admin"))
    assert client.get("/admin/users", query_string={"q": "a" * 3000}).status_code == 400
    assert client.get("/admin/users", query_string={"q": "a" * 100}).status_code == 200


def test_over_long_fields_are_refused(client, users, rows):
    Auth(client).login(users.make("instructor"))
    response = client.post("/courses/new", data={"title": "T" * 10_000, "description": ""})
    assert 400 <= response.status_code < 500 or response.status_code == 200
    assert rows(Course) == 0
    long_zone = client.post("/account/timezone", data={"tz": "Asia/" + "x" * 5000})
    assert long_zone.status_code == 422


def test_bad_json_body_is_refused(client):
    assert client.post("/login", data=b"{", content_type="application/json").status_code == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    assert client.post("/login", data=deep, content_type="application/json").status_code == 400


def test_refused_input_is_logged_without_its_value(client, caplog):
    with caplog.at_level(logging.WARNING, logger="lectern.security"):
        client.get("/login", query_string={"next": "/secret\r\nvalue"})
    assert any("control character" in r.getMessage() for r in caplog.records)
    assert not any("secret" in r.getMessage() for r in caplog.records)
