"""The dispatch table's entry type: one small handler per client event."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rooms.context import Actor, Outbox
from rooms.validate import Field

# handler(actor, cleaned payload, outbox) -> extra fields for the {"ok": true} reply
Handler = Callable[[Actor, dict[str, Any], Outbox], dict[str, Any] | None]


@dataclass(frozen=True)
class Event:
    """A client event: its payload fields, its handler and its rate-limit bucket."""

    name: str
    fields: Mapping[str, Field]
    handler: Handler
    bucket: str = "default"
