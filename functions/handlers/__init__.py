"""Event handlers, one module per event type, registered by the names the routing table uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from functions.core.events import Event
from functions.handlers.base import Deps

Handler = Callable[[Event, Deps], list[Event]]


class Registry(Mapping[str, Handler]):
    """Handler names to their functions, each module imported when it is first asked for: a
    fresh process that handles one event imports that event's handlers only (a scale-from-zero
    service pays for every import before its first answer)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names

    def __getitem__(self, name: str) -> Handler:
        if name not in self._names:
            raise KeyError(name)
        handle: Handler = importlib.import_module(f"{__name__}.{name}").handle
        return handle

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


HANDLERS: Mapping[str, Handler] = Registry(
    ("suggest", "spawn", "collect", "stop", "jobwatch", "prune", "provision", "resource", "writeback", "reconcile"))

UNRECORDED: frozenset[str] = frozenset({"writeback", "reconcile"})
"""Handlers whose effect is the same however often it happens: they leave no processed-event
record, and run outside a store transaction of the dispatcher's (``writeback`` copies the stored
state out in a transaction of its own, recording only how far it copied, and a duplicate copies
what changed since, often nothing; ``reconcile`` only
reads, and every event it emits has an id derived from what it found, so a duplicate tick
emits the same events again and no tick holds the database's write lock while it asks the
cluster)."""

__all__ = ["HANDLERS", "UNRECORDED", "Deps", "Handler"]
