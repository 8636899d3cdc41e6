"""Ticks nobody vouches for, each function handling one at most every ``KATUNA_TICK_FLOOR``
seconds.

Behind a broker without OIDC (``KATUNA_EVENTS=reply``), any pod may post a tick
(``dev.knative.sources.ping``, which nobody signs), and each makes ``reconcile`` read up to
hundreds of Jobs and ``provision`` call the cloud's API. So each function a tick goes to claims
the floor before it handles it, a row per function in the store, claimed atomically across the
service's processes: a tick sooner is answered as delivered and does nothing, which loses
nothing, as the tick handled did the same. A claim whose handling failed is given back, so the
broker's retry of that tick is handled; a tick ``provision`` recorded as handled already (its
id replayed) is a duplicate, answered from its record with no claim, while ``reconcile`` keeps
no record (it changes no state), so its replay claims the floor as any tick
does; a function that does not exist is refused by the dispatcher before any claim.
"""

from __future__ import annotations

from flask import g

from functions.core.application import Application, DispatchesFunctions
from functions.core.events import POOL_CHECK, ROUTES, Event, delivery_key

ANONYMOUS = "katuna_anonymous_sender"
"""Set on the request context when the event came behind a broker without OIDC, with neither the
API token nor an OIDC token: anyone who reaches the service may have sent it."""


def floored(runtime: Application, event: Event, function: str | None) -> bool:
    """Whether ``event`` is a tick nobody vouches for, to a function of the tick's (``None``:
    every one), where the floor applies (``KATUNA_TICK_FLOOR`` is not 0)."""
    return (event.type == POOL_CHECK and bool(g.get(ANONYMOUS)) and bool(runtime.settings.tick_floor)
            and function in (None, *ROUTES[POOL_CHECK]))


def deliver(runtime: Application, dispatcher: DispatchesFunctions, event: Event, function: str | None) -> list[Event] | None:
    """The events emitted by the functions of the tick (``function``, or every one) whose floor
    let it through; None when none did (the tick is coalesced)."""
    store = runtime.store()
    emitted: list[Event] = []
    handled = False
    for name in (function,) if function else ROUTES[POOL_CHECK]:
        if store.processed(delivery_key(event), name) is not None:
            emitted += dispatcher.deliver_to(name, event)
            handled = True
            continue
        claim = store.claim_tick(name, runtime.settings.tick_floor)
        if claim is None:
            continue
        try:
            emitted += dispatcher.deliver_to(name, event)
        except BaseException:
            store.release_tick(claim)
            raise
        handled = True
    return emitted if handled else None
