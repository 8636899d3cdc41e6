"""Deliver an event to the handlers its type is routed to, at most once in effect.

Each handler runs in one store transaction with the record of its processing, which also keeps
the events it emitted. A redelivered event is answered from that record: nothing changes twice,
and the emitted events go out again, so a crash between commit and emit loses nothing.
Handlers that change no state (``UNRECORDED``: they emit nothing, or only events named by the
facts they found) need neither, and run bare; nor does a handling its handler proves idle from a
read outside any transaction (``IDLERS``: ``provision`` for a study without a node pool). What a
handler reads before its transaction (the ended attempt's output ``collect`` parses:
:mod:`functions.handlers.parsed`) is read first, outside it, so that no long read holds the database's write lock; the handler takes it only if
the state it was read against still holds.

A recorded handler that fails with anything but a temporary error (or a forged report) counts a
failure against the event's study (:mod:`functions.handlers.failures`); the failure that ends
the study is answered with the study's ``study.completed`` instead of the error.

Each handling is reported to an :class:`~functions.dispatch_outcomes.Observer` (the service's
metrics): the event's type, the handler, the outcome
(:data:`~functions.dispatch_outcomes.OUTCOMES`) and how long it took.

The events a handling emits carry the trace context of the event that caused them
(:mod:`functions.core.trace_context`), so a trace follows a study from event to event.

Where several threads of a process deliver events (``katuna serve``'s workers), their recorded
handlings take :class:`~functions.dispatch_turns.Turns` over one store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from functions.core.errors import (
    KatunaError,
    MalformedRequest,
    PermanentError,
    StudyNotFound,
    StudyRunsElsewhere,
    TemporaryError,
)
from functions.core.event_data import data_problems
from functions.core.events import OBJECTS, OVERLAY_OBJECTS, ROUTES, Event, delivery_key
from functions.core.log_context import of_event
from functions.core.store_port import has_study
from functions.dispatch_outcomes import (
    DUPLICATE,
    FORGED,
    NO_HANDLER,
    OK,
    PERMANENT_ERROR,
    TEMPORARY_ERROR,
    UNKNOWN_TYPE,
    Observer,
    Unobserved,
    outcome_of,
)
from functions.dispatch_turns import Turns
from functions.handlers import HANDLERS, IDLERS, PREPARERS, UNRECORDED, WAITERS, Deps, Handler, Idler, Preparer
from functions.handlers.failures import count_failure, counts, dead_letter_ends, temporary
from functions.handlers.parsed import ParsedOutput

log = logging.getLogger("katuna.dispatch")

class UnknownEventType(PermanentError):
    """No handler subscribes to the event's type, which is not one of katuna's own."""


class NewerEventType(TemporaryError):
    """An event type of katuna's own (``dev.katuna.``) that this katuna does not know: a newer
    katuna's, during its rollout. Temporary, so the broker delivers it again, to the newer
    revision once it serves, where a refusal for good would dead-letter it and fail its study."""


class UnknownFunction(TemporaryError):
    """No function has that name, or it does not handle the event's type: a newer katuna's
    Trigger (applied with its release, which goes on delivering to this revision until the newer
    one serves). Temporary, as :class:`NewerEventType`: retried, never a dead letter that fails
    the event's study; a Trigger misnamed for good is dead-lettered as temporary, left to the tick."""


OWN_TYPES = "dev.katuna."
"""The prefix of katuna's own event types: one this katuna does not know is a newer katuna's."""

NEWER_KATUNA = "a newer katuna's, whose revision takes it once it serves; retry later"


class MalformedEventData(MalformedRequest):
    """The event's data lacks a field its handlers read, or holds a value of the wrong type."""


class Dispatcher:
    """Runs handlers for events; safe to call twice with the same event, in any order. With
    ``turns``, recorded handlings run in their turn over its store, the others over ``deps``."""

    def __init__(
        self,
        deps: Deps,
        handlers: Mapping[str, Handler] = HANDLERS,
        routes: Mapping[str, tuple[str, ...]] = ROUTES,
        objects: Mapping[str, str] = OBJECTS,
        unrecorded: frozenset[str] = UNRECORDED,
        observer: Observer | None = None,
        turns: Turns | None = None,
        preparers: Mapping[str, Preparer] = PREPARERS,
        idlers: Mapping[str, Idler] = IDLERS,
    ) -> None:
        self.deps = deps
        self._preparers = preparers
        self._idlers = idlers
        self.turns = turns
        self._observer = observer if observer is not None else Unobserved()
        self._handlers = handlers
        self._unrecorded = unrecorded
        self._routes = routes
        self._objects = objects

    def deliver(self, event: Event) -> list[Event]:
        """The events to emit after handling ``event``."""
        names = self._routes.get(event.type)
        if names is None:
            known = ", ".join(sorted(self._routes))
            if event.type.startswith(OWN_TYPES):
                self._refused(event, TEMPORARY_ERROR)
                raise NewerEventType(f"event type {event.type!r} is not one this katuna knows ({known}): "
                                     f"{NEWER_KATUNA}")
            self._refused(event)
            raise UnknownEventType(f"unknown event type {event.type!r}; expected one of {known}")
        self._check(event)
        emitted: list[Event] = []
        for name in names:
            if self._takes(name, event):
                emitted.extend(self._run(name, event))
        return _caused_by(emitted, event)

    def deliver_to(self, function: str, event: Event) -> list[Event]:
        """The events to emit after one function handles ``event`` (a Trigger's subscriber)."""
        if function not in self._handlers:
            self._refused(event, TEMPORARY_ERROR)
            raise UnknownFunction(f"no function named {function!r}; expected one of {', '.join(sorted(self._handlers))}"
                                  f" (a Trigger of {NEWER_KATUNA})")
        if function not in self._routes.get(event.type, ()):
            self._refused(event, TEMPORARY_ERROR)
            raise UnknownFunction(f"function {function!r} does not handle events of type {event.type!r} (a Trigger of "
                                  f"{NEWER_KATUNA})")
        self._check(event)
        return _caused_by(self._run(function, event), event) if self._takes(function, event) else []

    def _takes(self, name: str, event: Event) -> bool:
        """Whether the handler takes the event's object (ApiServerSource events carry trial
        workloads and study resources alike); an event not for it is no error, as a Trigger
        filter drops it."""
        wanted = self._objects.get(name)
        return wanted is None or event.data.get("apiVersion") in (wanted, *OVERLAY_OBJECTS.get(name, ()))

    def _run(self, name: str, event: Event) -> list[Event]:
        started = time.perf_counter()
        run = self._unrecorded_run if name in self._unrecorded else self._recorded_run
        try:
            emitted, outcome = run(name, event)
        except Exception as exc:
            self._observe(event.type, name, outcome_of(exc), started)
            if isinstance(exc, StudyNotFound) and self._gone(event):
                log.info("dropped %s (%s) for %s: its study %s is gone", event.type, event.id, name,
                         event.data.get("study"), extra=of_event(event))
                return []
            if isinstance(exc, StudyRunsElsewhere):
                log.debug("dropped %s (%s) for %s: %s", event.type, event.id, name, exc, extra=of_event(event))
                return []
            if name in self._unrecorded:
                raise
            if temporary(exc) and name in WAITERS:
                self._waited(name, event, exc)
            ended = self._count_failure(name, event, exc) if counts(exc) else None
            if ended is None:
                raise
            return ended
        self._observe(event.type, name, outcome, started)
        return emitted

    def _unrecorded_run(self, name: str, event: Event) -> tuple[list[Event], str]:
        return self._handlers[name](event, self.deps), OK

    def _recorded_run(self, name: str, event: Event) -> tuple[list[Event], str]:
        if self._idle(name, event):
            return [], OK
        parsed = self._prepared(name, event)
        if self.turns is None:
            return self._recorded_with(_with_parsed(self.deps, parsed), name, event)
        with self.turns.turn() as deps:
            return self._recorded_with(_with_parsed(deps, parsed), name, event)

    def _idle(self, name: str, event: Event) -> bool:
        """Whether the handler proves, outside any transaction, that the event leaves it nothing
        to do (:data:`~functions.handlers.IDLERS`): then no transaction is taken and no record
        kept. A handler that cannot tell (its study gone, the read failed) handles the event as
        usual, failing there as it would have."""
        idle = self._idlers.get(name)
        if idle is None:
            return False
        try:
            return idle(event, self.deps)
        except KatunaError:
            return False

    def _prepared(self, name: str, event: Event) -> ParsedOutput | None:
        """What the handler reads before its transaction, on this thread's store outside any
        transaction and outside the turns (:mod:`functions.handlers.parsed`): an ended attempt's
        output, parsed while other writers go on. None for a handler that reads nothing ahead,
        for an event already handled, and where the read failed for good: the handling then
        reads in its transaction, and fails there as it would have. A temporary failure is
        the handling's (nothing was written: the event is delivered again)."""
        prepare = self._preparers.get(name)
        if prepare is None or self.deps.store.processed(delivery_key(event), name) is not None:
            return None
        try:
            return prepare(event, self.deps)
        except PermanentError:
            return None

    def _recorded_with(self, deps: Deps, name: str, event: Event) -> tuple[list[Event], str]:
        store = deps.store
        with store.transaction():
            key = delivery_key(event)
            done = store.processed(key, name)
            if done is not None:
                return done, DUPLICATE
            emitted = self._handlers[name](event, deps)
            store.record_processed(key, name, emitted)
        return emitted, OK

    def _observe(self, event_type: str, handler: str, outcome: str, started: float) -> None:
        self._observer.handled(event_type, handler, outcome, time.perf_counter() - started)

    def _refused(self, event: Event, outcome: str = PERMANENT_ERROR) -> None:
        """Report an event refused before any handler ran."""
        self._observe_refusal(event.type, outcome)

    def forged(self, event_type: str) -> None:
        """Report an event refused as forged before any handler ran (the web layer checks
        katuna's signature: :mod:`functions.core.event_signature`)."""
        self._observe_refusal(event_type, FORGED)

    def _observe_refusal(self, event_type: str, outcome: str) -> None:
        self._observer.handled(event_type if event_type in self._routes else UNKNOWN_TYPE, NO_HANDLER, outcome, None)

    def _check(self, event: Event) -> None:
        problems = data_problems(event.type, event.data)
        if problems:
            self._refused(event)
            raise MalformedEventData(f"malformed {event.type} event {event.id}: {'; '.join(problems)}")

    def _gone(self, event: Event) -> bool:
        """Whether the event's study is not stored, or another of its name is (a study another
        process deleted): its late events are done, not failures to count or dead letters."""
        study, uid = event.data.get("study"), event.data.get("uid")
        return isinstance(study, str) and not has_study(self.deps.store, study, uid if isinstance(uid, str) else None)

    def _waited(self, name: str, event: Event, exc: Exception) -> None:
        """Let the handler note why its temporary failure holds the event's trial back
        (:data:`~functions.handlers.WAITERS`); a note that cannot be written now is left out, the
        failure itself answered as it is."""
        try:
            WAITERS[name](event, self.deps, exc)
        except KatunaError as failed:
            log.info("noting why %s (%s) waits: %s", event.type, event.id, failed, extra=of_event(event))

    def _count_failure(self, name: str, event: Event, exc: Exception) -> list[Event] | None:
        study, uid = event.data.get("study"), event.data.get("uid")
        if not isinstance(study, str) or not isinstance(uid, str):
            return None
        return count_failure(self.deps, study, uid, f"the {name} function on {event.type} ({event.id})", exc, event)

    def fail_dead_letter(self, event: Event, reason: str) -> list[Event]:
        """The events that end the study a dead letter names (:func:`dead_letter_ends`)."""
        return _caused_by(dead_letter_ends(self.deps, event, reason), event)


def _caused_by(emitted: list[Event], cause: Event) -> list[Event]:
    """The events a handling emitted, in the trace of the event that caused them (not as
    recorded: a redelivery in another trace sends them on in that one)."""
    return [event.caused_by(cause) for event in emitted]


def _with_parsed(deps: Deps, parsed: ParsedOutput | None) -> Deps:
    """The ports a handling gets, with what was read before its transaction: ``deps`` itself
    where that is nothing (copying its many fields cost every handling a few microseconds)."""
    return deps if parsed is None and deps.parsed is None else replace(deps, parsed=parsed)
