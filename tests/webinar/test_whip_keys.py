"""Stream keys for WHIP ingest: only hosts make and revoke them, a key is shown once and kept as
an HMAC; the endpoint's refusals before any media (auth, content type, body, CORS, PATCH)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from accounts.tokens import digest
from lectern.extensions import db
from webinar import whip
from webinar.models import WhipKey

OFFER_TYPE = {"Content-Type": "application/sdp"}


@pytest.fixture(autouse=True)
def fresh_whip_limits() -> None:
    """The WHIP endpoint's per-address limit starts empty (every test client is 127.0.0.1)."""
    whip.limiter.reset()


@pytest.fixture
def cast(users, broadcasts):
    host = users.make("host")
    return host, broadcasts.make(host, kind="all_hands")


def make_key(client, broadcast) -> str:
    page = client.post(f"/broadcasts/{broadcast.id}/stream-keys")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    found = re.search(r'id="new-stream-key">([^<]+)<', page.data.decode())
    assert found is not None
    return found.group(1)


def test_host_makes_a_key_shown_once_and_stored_hashed(client, auth, cast):
    host, broadcast = cast
    auth.switch(host)
    key = make_key(client, broadcast)
    [row] = db.session.scalars(select(WhipKey)).all()
    assert (row.broadcast_id, row.created_by, row.revoked_at) == (broadcast.id, host.id, None)
    assert row.key_hash == digest(key) and key not in row.key_hash
    later = client.get(f"/broadcasts/{broadcast.id}").data.decode()
    assert key not in later and "new-stream-key" not in later
    assert f"/broadcasts/{broadcast.id}/stream-keys/{row.id}/revoke" in later
    assert f"http://localhost/broadcasts/{broadcast.id}/whip" in later


def test_only_hosts_make_or_revoke_keys(client, auth, users, broadcasts, cast, rows):
    host, broadcast = cast
    auth.switch(host)
    make_key(client, broadcast)
    [row] = db.session.scalars(select(WhipKey)).all()
    panelist = users.make("attendee")
    broadcasts.register(broadcast, panelist).role = "panelist"
    db.session.commit()
    auth.switch(panelist)
    assert "stream-keys" not in client.get(f"/broadcasts/{broadcast.id}").data.decode()
    assert client.post(f"/broadcasts/{broadcast.id}/stream-keys").status_code == 403
    revoke = f"/broadcasts/{broadcast.id}/stream-keys/{row.id}/revoke"
    assert client.post(revoke).status_code == 403
    assert rows(WhipKey) == 1 and rows(WhipKey, WhipKey.revoked_at.is_(None)) == 1
    other = broadcasts.make(host)
    auth.switch(host)
    assert client.post(f"/broadcasts/{other.id}/stream-keys/{row.id}/revoke").status_code == 404
    assert client.post(revoke).status_code == 302
    assert rows(WhipKey, WhipKey.revoked_at.is_not(None)) == 1


def test_endpoint_refusals_before_any_media(client, auth, cast):
    host, broadcast = cast
    auth.switch(host)
    key = make_key(client, broadcast)
    auth.logout()
    url = f"/broadcasts/{broadcast.id}/whip"
    bearer = {"Authorization": f"Bearer {key}"}
    offer = "v=0\r\n"
    assert client.post(url, data=offer, headers=OFFER_TYPE).status_code == 401
    wrong = client.post(url, data=offer, headers={**OFFER_TYPE, "Authorization": "Bearer x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    other_scheme = {**OFFER_TYPE, "Authorization": f"Basic {key}"}
    assert client.post(url, data=offer, headers=other_scheme).status_code == 401
    typed = client.post(url, data=offer, headers={**bearer, "Content-Type": "text/plain"})
    assert typed.status_code == 415 and typed.headers["Accept-Post"] == "application/sdp"
    assert client.post(url, data=offer, headers={**bearer, **OFFER_TYPE}).status_code == 400
    binary = client.post(url, data=b"\xff\xfe", headers={**bearer, **OFFER_TYPE})
    assert binary.status_code == 400
    huge = client.post(url, data="a" * 70_000, headers={**bearer, **OFFER_TYPE})
    assert huge.status_code == 413
    session = f"{url}/abc"
    assert client.patch(session, headers=bearer).status_code == 405
    assert client.delete(session, headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.delete(session, headers=bearer).status_code == 404


def test_options_answers_cors_for_any_origin(client, cast):
    _, broadcast = cast
    preflight = {
        "Origin": "https://studio.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    answer = client.options(f"/broadcasts/{broadcast.id}/whip", headers=preflight)
    assert answer.status_code == 204
    assert answer.headers["Accept-Post"] == "application/sdp"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = answer.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "Location" in answer.headers["Access-Control-Expose-Headers"]
    session = client.options(f"/broadcasts/{broadcast.id}/whip/abc", headers=preflight)
    assert session.status_code == 204 and "DELETE" in session.headers["Allow"]


def test_only_the_whip_endpoint_skips_csrf(app, client, auth, cast):
    host, broadcast = cast
    auth.switch(host)  # signed in before the forms need a token
    app.config["WTF_CSRF_ENABLED"] = True
    refused = client.post(f"/broadcasts/{broadcast.id}/stream-keys")
    assert refused.status_code == 400  # the page's own forms still need their token
    whip_post = client.post(
        f"/broadcasts/{broadcast.id}/whip",
        data="v=0\r\n",
        headers={**OFFER_TYPE, "Authorization": "Bearer x"},
    )
    assert whip_post.status_code == 401  # reached the endpoint: no CSRF token asked


def test_the_endpoint_limits_each_address(client, cast):
    _, broadcast = cast
    url = f"/broadcasts/{broadcast.id}/whip"
    codes = [client.post(url, data="v=0", headers=OFFER_TYPE).status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
