"""Event handlers, one module per event type, registered by the names the routing table uses."""

from __future__ import annotations

from collections.abc import Callable

from functions.core.events import Event
from functions.handlers import collect, jobwatch, provision, prune, resource, spawn, stop, suggest, writeback
from functions.handlers.base import Deps

Handler = Callable[[Event, Deps], list[Event]]

HANDLERS: dict[str, Handler] = {
    "suggest": suggest.handle,
    "spawn": spawn.handle,
    "collect": collect.handle,
    "stop": stop.handle,
    "jobwatch": jobwatch.handle,
    "prune": prune.handle,
    "provision": provision.handle,
    "resource": resource.handle,
    "writeback": writeback.handle,
}

UNRECORDED: frozenset[str] = frozenset({"writeback"})
"""Handlers that change nothing in the store and emit nothing, whose effect is the same however
often it happens: they run outside a store transaction and leave no processed-event record
(``writeback`` copies the stored state out; a duplicate copies it again)."""

__all__ = ["HANDLERS", "UNRECORDED", "Deps", "Handler"]
