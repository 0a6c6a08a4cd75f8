"""Checks on a browser's SDP offer before anything is set up for it.

The web app refuses a malformed ``media.publish`` or ``media.view`` before relaying it, and the
media worker checks again (anything may reach its port): an offer without a DTLS fingerprint or
ICE credentials, an answer sent as an offer, or a media section rejected with port 0 would
otherwise become a stream that never carries a frame. Plain text parsing: imports no aiortc.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The refusals, in English; the web app marks the same texts for translation (rooms/media.py).
NOT_SDP = "the offer is not valid SDP"
NOT_AN_OFFER = "the SDP is not an offer (an offer's DTLS role is actpass)"
NO_MEDIA = "the offer has no audio or video"
PORT_ZERO = "the offer rejects one of its media sections (port 0)"
NO_FINGERPRINT = "the offer has no DTLS fingerprint"
NO_ICE = "the offer has no ICE credentials"
NOT_SENDING = "a publish offer must send every audio and video section"
NOT_RECEIVING = "a view offer must receive every audio and video section"
MESSAGES = (
    NOT_SDP,
    NOT_AN_OFFER,
    NO_MEDIA,
    PORT_ZERO,
    NO_FINGERPRINT,
    NO_ICE,
    NOT_SENDING,
    NOT_RECEIVING,
)
KINDS = ("audio", "video")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class BadOffer(ValueError):
    """The offer is refused; the message is one of :data:`MESSAGES`."""


@dataclass
class Section:
    """One ``m=`` section (or the session part before the first): its attributes by name."""

    kind: str = ""
    port: int = 0
    attrs: dict[str, str] = field(default_factory=dict)  # a=name:value (a=flag: name -> "")


def parse(sdp: str) -> tuple[Section, list[Section]]:
    """The session-level attributes and the media sections of ``sdp``.

    :raises BadOffer: not SDP, or an ``m=`` line without a numeric port
    """
    if not sdp.startswith("v=0"):
        raise BadOffer(NOT_SDP)
    session, sections = Section(), []
    current = session
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            port = parts[1].split("/")[0] if len(parts) > 1 else ""
            if not port.isascii() or not port.isdigit():
                raise BadOffer(NOT_SDP)
            current = Section(parts[0], int(port))
            sections.append(current)
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            current.attrs.setdefault(name, value.strip())
    return session, sections


def attr(name: str, section: Section, session: Section) -> str | None:
    """A section's attribute, else the session's (where SDP allows both)."""
    return section.attrs.get(name, session.attrs.get(name))


def direction(section: Section, session: Section) -> str:
    for found in (section, session):
        for name in DIRECTIONS:
            if name in found.attrs:
                return name
    return "sendrecv"


def check_offer(sdp: str, sending: bool) -> None:
    """Refuse an offer that could not carry media: for a publisher (``sending``) every audio and
    video section must send; for a viewer, receive.

    :raises BadOffer: with one of :data:`MESSAGES`
    """
    session, sections = parse(sdp)
    media = [s for s in sections if s.kind in KINDS]
    if not media:
        raise BadOffer(NO_MEDIA)
    wanted = ("sendrecv", "sendonly") if sending else ("sendrecv", "recvonly")
    for section in media:
        if section.port == 0:
            raise BadOffer(PORT_ZERO)
        if attr("setup", section, session) != "actpass":
            raise BadOffer(NOT_AN_OFFER)
        if not attr("fingerprint", section, session):
            raise BadOffer(NO_FINGERPRINT)
        if not (attr("ice-ufrag", section, session) and attr("ice-pwd", section, session)):
            raise BadOffer(NO_ICE)
        if direction(section, session) not in wanted:
            raise BadOffer(NOT_SENDING if sending else NOT_RECEIVING)
