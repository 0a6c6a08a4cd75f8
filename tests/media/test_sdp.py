"""Malformed offers are refused before anything is set up: by ``media.sdp`` on its own, and by
a real media worker, which keeps no connection or stream for them.

The offers are aiortc's own, then broken the ways clients were seen to break them: no DTLS
fingerprint, an answer sent as an offer, a media section rejected with port 0.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from media import sdp
from rooms.media import OFFER_REFUSALS

from .conftest import Publisher, Viewer, WorkerProcess, call, grant, loopback_pc


async def offers() -> dict[str, str]:
    """A publisher's offer, a viewer's offer, and an answer to the publisher's offer."""
    publisher, viewer, answerer = Publisher(), Viewer(), loopback_pc()
    try:
        publish, view = await publisher.offer(), await viewer.offer()
        await answerer.setRemoteDescription(RTCSessionDescription(sdp=publish, type="offer"))
        await answerer.setLocalDescription(await answerer.createAnswer())
        return {"publish": publish, "view": view, "answer": answerer.localDescription.sdp}
    finally:
        for peer in (publisher, viewer):
            await peer.close()
        await answerer.close()


@pytest.fixture(scope="module")
def sdps() -> dict[str, str]:
    return asyncio.run(offers())


def without(prefix: str) -> Callable[[str], str]:
    return lambda text: "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(prefix)
    )


def port_zero(text: str) -> str:
    return re.sub(r"^m=video \d+", "m=video 0", text, count=1, flags=re.M)


# (name, which offer, how it is broken, publishing?, the refusal)
BROKEN: list[tuple[str, str, Callable[[str], str], bool, str]] = [
    ("no fingerprint", "publish", without("a=fingerprint:"), True, sdp.NO_FINGERPRINT),
    ("an answer as an offer", "answer", lambda s: s, True, sdp.NOT_AN_OFFER),
    ("port 0", "publish", port_zero, True, sdp.PORT_ZERO),
    ("no ICE credentials", "publish", without("a=ice-pwd:"), True, sdp.NO_ICE),
    ("no media", "publish", lambda s: s.split("m=")[0], True, sdp.NO_MEDIA),
    ("not SDP", "publish", lambda s: "hello", True, sdp.NOT_SDP),
    ("a viewer's offer to publish", "view", lambda s: s, True, sdp.NOT_SENDING),
    ("view: no fingerprint", "view", without("a=fingerprint:"), False, sdp.NO_FINGERPRINT),
    ("view: port 0", "view", port_zero, False, sdp.PORT_ZERO),
]


@pytest.mark.parametrize(
    ("which", "breaking", "sending", "reason"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_offers_are_refused(
    sdps: dict[str, str], which: str, breaking: Any, sending: bool, reason: str
) -> None:
    with pytest.raises(sdp.BadOffer) as refused:
        sdp.check_offer(breaking(sdps[which]), sending)
    assert str(refused.value) == reason


def test_genuine_offers_pass(sdps: dict[str, str]) -> None:
    sdp.check_offer(sdps["publish"], sending=True)
    sdp.check_offer(sdps["view"], sending=False)
    sdp.check_offer(sdps["publish"].replace("\r\n", "\n"), sending=True)


def test_every_refusal_is_in_the_web_apps_catalogue() -> None:
    assert set(OFFER_REFUSALS) == set(sdp.MESSAGES)


def test_the_worker_refuses_them_and_keeps_nothing(
    worker: WorkerProcess, sdps: dict[str, str]
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        replies = []
        for _name, which, breaking, sending, _reason in BROKEN:
            op = "publish" if sending else "view"
            token = grant(op, stream="none") if op == "view" else grant(op)
            replies.append(await call(worker.port, op, token=token, sdp=breaking(sdps[which])))
        return replies, await call(worker.port, "stats")

    replies, stats = asyncio.run(scenario())

    for (name, *_, reason), reply in zip(BROKEN, replies, strict=True):
        assert reply["ok"] is False, name
        assert reason in reply["error"] or "sdp must be an SDP offer" in reply["error"], name
    assert (stats["streams"], stats["viewers"]) == (0, 0)
