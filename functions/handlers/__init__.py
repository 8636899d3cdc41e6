"""Event handlers, one module per event type, registered by the names the routing table uses.

The steps several handlers share are modules beside them, registered as no handler: what every
handler is given (:mod:`~functions.handlers.deps`), its study's Optuna twin asked and told
(:mod:`~functions.handlers.asking`), its trials' attempts started and looked at
(:mod:`~functions.handlers.starting`), trials asked for ahead (:mod:`~functions.handlers.ahead`),
output parsed before a transaction (:mod:`~functions.handlers.parsed`) and a Katib Experiment's
Trials written before its status (:mod:`~functions.handlers.trial_writes`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from functions.core.events import Event
from functions.handlers.deps import Deps
from functions.handlers.parsed import ParsedOutput

Handler = Callable[[Event, Deps], list[Event]]
Preparer = Callable[[Event, Deps], ParsedOutput | None]
"""What a handler reads before its transaction (:mod:`functions.handlers.parsed`)."""
Idler = Callable[[Event, Deps], bool]
"""Whether a handler would change nothing and emit nothing for an event, whenever it ran, as a
read outside any transaction proves (:data:`IDLERS`)."""

F = TypeVar("F")


class Registry(Mapping[str, F], Generic[F]):
    """Handler names to their functions (``attribute`` of each handler's module), each module
    imported when it is first asked for: a fresh process that handles one event imports that
    event's handlers only (a scale-from-zero service pays for every import before its first answer)."""

    def __init__(self, names: tuple[str, ...], attribute: str = "handle") -> None:
        self._names = names
        self._attribute = attribute
        self._found: dict[str, F] = {}
        """The functions looked up once: an event's handlers are found again for every event."""

    def __getitem__(self, name: str) -> F:
        function = self._found.get(name)
        if function is None:
            if name not in self._names:
                raise KeyError(name)
            function = self._found[name] = getattr(importlib.import_module(f"{__name__}.{name}"), self._attribute)
        return function

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


HANDLERS: Mapping[str, Handler] = Registry(
    ("suggest", "spawn", "collect", "stop", "jobwatch", "prune", "provision", "resource", "writeback", "reconcile"))

PREPARERS: Mapping[str, Preparer] = Registry(("collect",), "prepare")
"""Handlers that read what they can before their transaction: ``collect`` parses the ended
attempt's output there, so that no large output holds the database's write lock."""

IDLERS: Mapping[str, Idler] = Registry(("provision",), "idle")
"""Handlers that can tell, from a read outside any transaction, that an event leaves them
nothing to do whenever they handle it: ``provision`` for a study without a node pool (which a
study's uid keeps for good). The dispatcher then neither takes the write lock nor records the
handling: a redelivered event would find nothing to do again, so its record would answer what
running it again answers. Every trial of a local study otherwise paid a write transaction for
the continuation's ``provision`` alone."""

Waiter = Callable[[Event, Deps, Exception], None]
"""What a handler notes, in a transaction of its own, of a temporary refusal that holds its event's
trial back (:data:`WAITERS`)."""

WAITERS: Mapping[str, Waiter] = Registry(("spawn",), "waits")
"""Handlers whose temporary failure may hold a trial back for a while: ``spawn`` whose launch the
namespace's quota refuses for now notes why in the trial's reason, after its own transaction was
rolled back, so the wait shows while the event is delivered again."""

UNRECORDED: frozenset[str] = frozenset({"writeback", "reconcile"})
"""Handlers whose effect is the same however often it happens: they leave no processed-event
record, and run outside a store transaction of the dispatcher's (``writeback`` copies the stored
state out in a transaction of its own, recording only how far it copied, and a duplicate copies
what changed since, often nothing; ``reconcile`` only
reads, and every event it emits has an id derived from what it found, so a duplicate tick
emits the same events again and no tick holds the database's write lock while it asks the
cluster)."""

__all__ = ["HANDLERS", "IDLERS", "PREPARERS", "UNRECORDED", "WAITERS", "Deps", "Handler", "Idler", "Preparer",
           "Waiter"]
