"""ICE settings for the media workers: explicit servers, and loopback-only host candidates.

``ICE_SERVERS`` is JSON: ``[{"urls": "turn:turn.example.org:3478", "username": "u",
"credential": "p"}]``; none by default (aiortc would otherwise use a public STUN server).
``MEDIA_HOST_ADDRESSES`` (e.g. ``127.0.0.1``) replaces the host candidates aioice gathers;
aioice leaves 127.0.0.1 out on its own.
"""

from __future__ import annotations

from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from media.settings import parse_ice_servers

__all__ = ["configuration", "limit_host_addresses", "parse_ice_servers"]


def configuration(servers: list[dict[str, Any]]) -> RTCConfiguration:
    """aiortc's configuration with exactly these ICE servers (possibly none)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in servers
        ]
    )


def limit_host_addresses(addresses: list[str]) -> None:
    """Make aioice offer only ``addresses`` as host candidates (e.g. ``["127.0.0.1"]``)."""
    if addresses:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)
