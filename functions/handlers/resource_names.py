"""Which study a study resource has. Study names are katuna's key, one set for every namespace
it serves, while Kubernetes names a resource within its namespace: in a multi-user Kubeflow
(one profile namespace per user) each user may apply Katib's example ``random``. A resource
has the study of its own name where that name is free, or its study is this resource's; where
a resource of another namespace, still there, holds it, the resource's study is named
``<name>--<namespace>`` (:func:`~functions.core.resources.qualified_name`) instead of being
refused.

The name follows from the store and the cluster as they are, and a study once stored under a
name keeps it: the qualified study of a resource is found first, so its events, handled twice
or in any order (its own delete after the plain name's holder went), keep naming the same
study. No stored study is ever renamed.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from functions.core.errors import Problem
from functions.core.ports import Resources
from functions.core.records import StudyRecord
from functions.core.resources import Origin, Ref, being_deleted, name_taken, origin_of, qualified_name
from functions.core.store_port import stored_study
from functions.handlers.deps import Deps

log = logging.getLogger("katuna.resource")


class Claim(NamedTuple):
    """The study of a resource: its ``name``, the study ``stored`` under it now (None: none),
    and whether that study's resource, of another namespace, was found gone (``holder_gone``;
    False where it was not asked), so that the handling asks the cluster once."""

    name: str
    stored: StudyRecord | None
    holder_gone: bool = False


def study_of(deps: Deps, ref: Ref) -> Claim:
    """The study of the resource ``ref`` (there or deleted): under its qualified name where a
    study of this resource is stored under it; else under its own name, unless a study of a
    resource of another namespace that is still there holds that (then the qualified one). A
    name an HTTP study or another resource of the same namespace holds stays the resource's
    own, which is refused as taken (:func:`name_problem`)."""
    qualified = qualified_name(ref)
    if qualified != ref.name:
        held = stored_study(deps.store, qualified)
        if (found := origin_of(held)) is not None and found.ref == ref:
            return Claim(qualified, held)
    stored = stored_study(deps.store, ref.name)
    origin = origin_of(stored)
    if origin is None or origin.ref.namespace == ref.namespace or deps.resources is None:
        return Claim(ref.name, stored)
    if let_go(deps.resources, origin):
        return Claim(ref.name, stored, holder_gone=True)
    return Claim(qualified, stored_study(deps.store, qualified))


def let_go(resources: Resources, origin: Origin) -> bool:
    """Whether the resource a study came from is gone (deleted, in whichever namespace), so the
    name goes to the next resource applied under it, as one applied again in its namespace takes it.
    One whose deletion has begun, held by finalizers (:func:`~functions.core.resources.being_deleted`),
    is gone already: its study stopped then, and a finalizer no controller takes off (Katib's,
    left by a Katib no longer running) would otherwise hold the name for good."""
    if origin.ref.katib and not resources.katib_api:
        return False
    found = resources.get(origin.ref)
    return found is None or being_deleted(found)


def name_problem(study: str, ref: Ref, origin: Origin | None) -> Problem:
    """Why the resource ``ref`` cannot have the study ``study``, which an HTTP study or the
    study of the resource ``origin`` holds; that resource's namespace, when another, is logged only."""
    if origin is not None and origin.ref.namespace != ref.namespace:
        log.warning("%s: the study name %s is held by %s", ref, study, origin.ref)
    return Problem("metadata.name", name_taken(study, ref, None if origin is None else origin.ref))
