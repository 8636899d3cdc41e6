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

__all__ = ["HANDLERS", "Deps", "Handler"]
