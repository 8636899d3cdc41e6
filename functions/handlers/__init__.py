"""Event handlers, one module per event type, registered by the names the routing table uses."""

from __future__ import annotations

from collections.abc import Callable

from functions.core.events import Event
from functions.handlers import collect, jobwatch, provision, prune, reconcile, resource, spawn, stop, suggest, writeback
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
    "reconcile": reconcile.handle,
}

UNRECORDED: frozenset[str] = frozenset({"writeback", "reconcile"})
"""Handlers that change nothing in the store, whose effect is the same however often it
happens: they run outside a store transaction and leave no processed-event record
(``writeback`` copies the stored state out, a duplicate copies it again; ``reconcile`` only
reads, and every event it emits has an id derived from what it found, so a duplicate tick
emits the same events again and no tick holds the database's write lock while it asks the
cluster)."""

__all__ = ["HANDLERS", "UNRECORDED", "Deps", "Handler"]
