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


SIMULCAST_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n"
    "a=rid:l send\r\na=rid:h send\r\na=simulcast:send l;~h\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\n"
)


def test_simulcast_layers_are_read_from_the_offer_and_echoed_in_the_answer() -> None:
    layers = sdp.simulcast_rids(SIMULCAST_OFFER)
    assert layers == {"0": ["l", "h"]}
    answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=audio 9 X 111\r\na=mid:1\r\n"
    echoed = sdp.answer_simulcast(answer, layers)
    assert "a=mid:0\r\na=rid:l recv\r\na=rid:h recv\r\na=simulcast:recv l;h\r\nm=audio" in echoed
    assert sdp.answer_simulcast(answer, {}) == answer


def test_malformed_or_oversized_simulcast_is_taken_as_one_layer() -> None:
    def offer(simulcast: str, rids: str) -> str:
        return SIMULCAST_OFFER.replace("a=simulcast:send l;~h", simulcast).replace(
            "a=rid:l send\r\na=rid:h send", rids
        )

    four = "\r\n".join(f"a=rid:{r} send" for r in "abcd")
    assert sdp.simulcast_rids(offer("a=simulcast:send a;b;c;d", four)) == {}
    assert sdp.simulcast_rids(offer("a=simulcast:send l;x", "a=rid:l send")) == {}
    assert sdp.simulcast_rids(offer("a=simulcast:send l;l", "a=rid:l send")) == {}
    assert (
        sdp.simulcast_rids(offer("a=simulcast:send l;<b>", "a=rid:l send\r\na=rid:<b> send")) == {}
    )
    assert sdp.simulcast_rids(offer("a=simulcast:recv l;h", "a=rid:l recv\r\na=rid:h recv")) == {}
