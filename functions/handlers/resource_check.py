"""Step 5 of the tick (:mod:`functions.handlers.reconcile`): the study resources compared with the store.

A study resource the store does not know (or knows under another uid, or at an older
generation) gets the ApiServerSource event its change would have sent; a running study whose
resource is gone (or being deleted, held by finalizers), or an ended one whose workloads
``retain`` kept are still to be deleted with it
(:func:`~functions.handlers.stopping.kept_behind`), gets the resource's delete event; an ended
study whose resource shows another status than the store's (its last write-back given up) and
which ended :data:`IN_FLIGHT` seconds ago or more gets its ``study.completed`` again, which
``writeback`` takes. Reads and sends only; the handlers of those events do the work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.errors import KatunaError
from functions.core.events import Event, resource_changed, study_completed
from functions.core.resource_status import refusal_stands
from functions.core.resources import Origin, Ref, being_deleted, is_study_resource, origin_of, ref_of
from functions.core.rotation import rotated
from functions.core.store_port import stored_study
from functions.core.study_brief import StudyBrief
from functions.handlers.deps import Deps
from functions.handlers.stopping import kept_behind
from functions.handlers.writeback import behind

log = logging.getLogger("katuna.reconcile")

MAX_RESOURCE_EVENTS = 100
"""Resource events one tick sends; the rest wait for the next tick."""

MAX_STATUS_CHECKS = 100
"""Ended studies whose resource's status one tick compares with the store (store reads only:
the resources were listed for step 5 already)."""

IN_FLIGHT = 600.0
"""Seconds an event may still be on its way: a Trigger retries for 8.5 minutes. The tick sends a
``trial.suggested`` or ``study.completed`` again only once this long has passed since the fact
it stands for, so it does not race the event the broker still retries (a race would be
harmless, only wasted: the two share an id)."""


def resource_events(deps: Deps, studies: Sequence[StudyBrief], window: int = 0) -> list[Event]:
    """Step 5: the events of study resources whose own were lost, at most
    :data:`MAX_RESOURCE_EVENTS`, then those of ended studies whose resource's status lags
    (:func:`status_events`); none where there is no cluster to ask, or it cannot be asked now.
    ``studies`` are every stored study in brief: no spec is rebuilt but those of the ended
    studies whose status is compared."""
    resources = deps.resources
    namespace = resources.namespace if resources is not None else None
    if resources is None or namespace is None:
        return []
    try:
        found = [*resources.list(namespace), *resources.list_katib()]
        listed = {ref_of(obj): obj for obj in found if is_study_resource(obj) and not being_deleted(obj)}
    except KatunaError as exc:
        log.warning("listing the study resources in %s: %s", namespace, exc)
        return []
    stored = {origin.ref: record for record in studies if (origin := origin_of(record)) is not None}
    events = [resource_changed("add", obj) for ref, obj in listed.items() if not _known(obj, stored.get(ref))]
    for record in studies:
        origin = origin_of(record)
        watched = resources.katib_api if origin is not None and origin.ref.katib else \
            origin is not None and origin.ref.namespace == namespace
        if origin is not None and watched and origin.ref not in listed \
                and (not record.terminal or _left_behind(record, origin, deps)):
            events.append(resource_changed("delete", _skeleton(origin)))
    return events[:MAX_RESOURCE_EVENTS] + status_events(deps, studies, listed, window)


def _left_behind(brief: StudyBrief, origin: Origin, deps: Deps) -> bool:
    """Whether the ended study has what its resource's delete event drops
    (:func:`~functions.handlers.stopping.kept_behind`): asked of its brief, then, for the few
    that have, of the study read whole, as the handler of that event reads it."""
    if not kept_behind(brief, origin, deps):
        return False
    record = stored_study(deps.store, brief.name, brief.uid)
    return record is not None and kept_behind(record, origin, deps)


def status_events(deps: Deps, studies: Sequence[StudyBrief], listed: Mapping[Ref, Mapping[str, Any]],
                  window: int) -> list[Event]:
    """The ``study.completed`` again of each ended study, ended :data:`IN_FLIGHT` seconds ago or
    more, whose resource (as ``listed``, the same uid) shows another status than the store's,
    or Trial resources behind its trials: the write-back of its end was given up. Its id is the
    study's end, so ``stop`` and ``provision`` take it as the duplicate it is, and ``writeback``
    writes the status again. At most :data:`MAX_STATUS_CHECKS` studies compared, a different
    slice each window, each read whole."""
    due = deps.clock() - IN_FLIGHT
    ended = [(brief, origin) for brief in studies if brief.terminal and (brief.completed_at or 0.0) <= due
             and (origin := origin_of(brief)) is not None and origin.ref in listed]
    events = []
    for brief, origin in rotated(ended, window, MAX_STATUS_CHECKS)[:MAX_STATUS_CHECKS]:
        obj = listed[origin.ref]
        if obj["metadata"].get("uid") != origin.uid:
            continue
        record = stored_study(deps.store, brief.name, brief.uid)
        if record is not None and behind(record, origin, obj, deps.store):
            events.append(study_completed(record.name, record.uid, record.status, record.reason, record.restarts))
    return events


def _known(obj: Mapping[str, Any], stored: StudyBrief | None) -> bool:
    """Whether katuna has handled the resource as it is now: its study is stored from this uid
    at this generation, or its status reports it refused as it is (:func:`refusal_stands`)."""
    metadata = obj["metadata"]
    generation = metadata.get("generation") or 1
    if refusal_stands(obj):
        return True
    origin = origin_of(stored)
    return origin is not None and origin.ref == ref_of(obj) and origin.uid == metadata.get("uid") \
        and origin.generation >= generation


def _skeleton(origin: Origin) -> dict[str, Any]:
    """The resource a study came from, as far as the store knows it."""
    ref = origin.ref
    return {"apiVersion": ref.api_version, "kind": ref.kind,
            "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": origin.uid, "generation": origin.generation}}
