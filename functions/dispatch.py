"""Deliver an event to the handlers its type is routed to, at most once in effect.

Each handler runs in one store transaction with the record of its processing, which also keeps
the events it emitted. A redelivered event is answered from that record: nothing changes twice,
and the emitted events go out again, so a crash between commit and emit loses nothing.
Handlers that change no state (``UNRECORDED``: they emit nothing, or only events named by the
facts they found) need neither, and run bare.

A recorded handler that fails with anything but a temporary error counts a failure against the
event's study (:mod:`functions.handlers.failures`); the failure that ends the study is answered
with the study's ``study.completed`` instead of the error.
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.core.errors import MalformedRequest, PermanentError
from functions.core.events import OBJECTS, ROUTES, Event, data_problems
from functions.handlers import HANDLERS, UNRECORDED, Deps, Handler
from functions.handlers.failures import count_failure, fail_study, temporary


class UnknownEventType(PermanentError):
    """No handler subscribes to the event's type."""


class UnknownFunction(PermanentError):
    """No function has that name, or it does not handle the event's type."""


class MalformedEventData(MalformedRequest):
    """The event's data lacks a field its handlers read, or holds a value of the wrong type."""


class Dispatcher:
    """Runs handlers for events; safe to call twice with the same event, in any order."""

    def __init__(
        self,
        deps: Deps,
        handlers: Mapping[str, Handler] = HANDLERS,
        routes: Mapping[str, tuple[str, ...]] = ROUTES,
        objects: Mapping[str, str] = OBJECTS,
        unrecorded: frozenset[str] = UNRECORDED,
    ) -> None:
        self.deps = deps
        self._handlers = handlers
        self._unrecorded = unrecorded
        self._routes = routes
        self._objects = objects

    def deliver(self, event: Event) -> list[Event]:
        """The events to emit after handling ``event``."""
        names = self._routes.get(event.type)
        if names is None:
            known = ", ".join(sorted(self._routes))
            raise UnknownEventType(f"unknown event type {event.type!r}; expected one of {known}")
        _check(event)
        emitted: list[Event] = []
        for name in names:
            if self._takes(name, event):
                emitted.extend(self._run(name, event))
        return emitted

    def deliver_to(self, function: str, event: Event) -> list[Event]:
        """The events to emit after one function handles ``event`` (a Trigger's subscriber)."""
        if function not in self._handlers:
            raise UnknownFunction(f"no function named {function!r}; expected one of {', '.join(sorted(self._handlers))}")
        if function not in self._routes.get(event.type, ()):
            raise UnknownFunction(f"function {function!r} does not handle events of type {event.type!r}")
        _check(event)
        return self._run(function, event) if self._takes(function, event) else []

    def _takes(self, name: str, event: Event) -> bool:
        """Whether the handler takes the event's object (ApiServerSource events carry Jobs and
        study resources alike); an event not for it is no error, as a Trigger filter drops it."""
        wanted = self._objects.get(name)
        return wanted is None or event.data.get("apiVersion") == wanted

    def _run(self, name: str, event: Event) -> list[Event]:
        if name in self._unrecorded:
            return self._handlers[name](event, self.deps)
        store = self.deps.store
        try:
            with store.transaction():
                done = store.processed(event.id, name)
                if done is not None:
                    return done
                emitted = self._handlers[name](event, self.deps)
                store.record_processed(event.id, name, emitted)
        except Exception as exc:
            ended = None if temporary(exc) else self._count_failure(name, event, exc)
            if ended is None:
                raise
            return ended
        return emitted

    def _count_failure(self, name: str, event: Event, exc: Exception) -> list[Event] | None:
        study, uid = event.data.get("study"), event.data.get("uid")
        if not isinstance(study, str) or not isinstance(uid, str):
            return None
        return count_failure(self.deps, study, uid, f"the {name} function on {event.type}", exc)

    def fail_study(self, study: str, uid: str, reason: str) -> list[Event]:
        """End the study as failed with ``reason`` (a dead letter's, say): the events to deliver."""
        return fail_study(self.deps, study, uid, reason)


def _check(event: Event) -> None:
    problems = data_problems(event.type, event.data)
    if problems:
        raise MalformedEventData(f"malformed {event.type} event {event.id}: {'; '.join(problems)}")
