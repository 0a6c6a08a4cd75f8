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


MAX_LAYERS = 3
RID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def simulcast_rids(sdp: str) -> dict[str, list[str]]:
    """The RIDs each video section (by its mid) of an offer sends as simulcast layers, in the
    offer's order (RFC 8853 ``a=simulcast:send``, each one with its ``a=rid:<id> send``).
    Paused layers (``~``) count; alternatives (``,``) are taken as layers of their own; more
    than ``MAX_LAYERS``, or a malformed RID, and the section is taken as not simulcast."""
    found: dict[str, list[str]] = {}
    _, sections = parse(sdp)
    for section in sections:
        mid, value = section.attrs.get("mid"), section.attrs.get("simulcast", "")
        if section.kind != "video" or not mid or not value.startswith("send "):
            continue
        rids = [r.lstrip("~") for part in value[5:].split(";") for r in part.split(",")]
        sending = {
            line.split()[0]
            for line in rid_lines(sdp, mid)
            if len(line.split()) > 1 and line.split()[1] == "send"
        }
        if (
            1 < len(rids) <= MAX_LAYERS
            and len(set(rids)) == len(rids)
            and all(r and set(r) <= RID_CHARS and len(r) <= 16 and r in sending for r in rids)
        ):
            found[mid] = rids
    return found


def rid_lines(sdp: str, mid: str) -> list[str]:
    """The values of the ``a=rid:`` lines of the section whose mid is ``mid``."""
    lines, current = [], None
    for line in sdp.splitlines():
        if line.startswith("m="):
            current = None
        elif line.startswith("a=mid:"):
            current = line[6:].strip()
        elif line.startswith("a=rid:") and current == mid:
            lines.append(line[6:].strip())
    return lines


def answer_simulcast(answer: str, layers: dict[str, list[str]]) -> str:
    """The answer with, in each simulcast video section, the layers it receives
    (``a=rid:<id> recv`` and ``a=simulcast:recv``): without them a browser sends one layer."""
    if not layers:
        return answer
    out: list[str] = []
    newline = "\r\n" if "\r\n" in answer else "\n"
    for line in answer.splitlines():
        out.append(line)
        if line.startswith("a=mid:") and line[6:].strip() in layers:
            rids = layers[line[6:].strip()]
            out.extend(f"a=rid:{rid} recv" for rid in rids)
            out.append("a=simulcast:recv " + ";".join(rids))
    return newline.join(out) + newline
