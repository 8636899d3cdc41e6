"""``dev.knative.apiserver.resource.*`` about a ``katuna.dev/v1`` Study or Experiment (or, where
the Katib overlay is enabled, a ``kubeflow.org`` Experiment or StudyJob): make the stored study
follow the resource.

The event only says which resource changed: the handler reads the resource as the API holds it
now and reconciles, so duplicates, late updates and a delete overtaking its add all end in the
same place. A new resource is submitted like ``POST /studies`` (same validation, same store; a trial
template held in a ConfigMap is read then, once, and the stored study keeps it: only from the
resource's own namespace, katuna's, or one of shared templates), its trials in
the resource's own namespace (one naming another is refused, as Katib runs an Experiment's
trials in its namespace, and so is one where katuna may not create its trial workload, as the
cluster answers a SelfSubjectAccessReview: ``Forbidden``; and one whose study would be one more
than ``KATUNA_MAX_STUDIES`` allows, or its node pool one more than ``KATUNA_MAX_POOLS``, waits,
its status saying why, once, and its event answered ``429`` to be brought again); its deletion
(from the moment it begins, while finalizers still hold the resource: :func:`~functions.core.resources.being_deleted`)
stops the study, and once its trials are stopped deletes the workloads ``retain`` kept and the
checkpoints of population-based training on the cluster's claim, as Katib's go with a deleted
Experiment (:func:`~functions.handlers.stopping.drop_kept`; the tick's delete event comes for
them where the study was still running); an Experiment applied again with Katib's defaults
written out (as ``kubectl get -o yaml`` gives it back) is no change, as Katib's webhook
compares the two once both are defaulted (:mod:`functions.core.katib_defaults`); an edit of
the fields a running study takes (parallelism, max trials, max failed trials; an Experiment's maxTrialCount only above the trials it has made, as
Katib's webhook rules; not one whose maxTrials would take the study's Optuna history past
``KATUNA_MAX_HISTORY`` or its values past ``KATUNA_MAX_HISTORY_CELLS``, as a new study's would not be taken;
one without maxTrials takes the trial cap the limits give it then: :mod:`functions.core.trial_cap`) updates it, an edit raising the trial budget of an ended Experiment
that Katib would restart restarts it (:mod:`functions.core.resume`), and any other edit is
refused in the status. Study names are shared by every namespace: a resource whose name another
namespace's resource holds has a study of its name qualified by its namespace
(:mod:`functions.handlers.resource_names`), one whose name a deleted resource's study holds
takes it, as one applied again in the same namespace does. Each generation
is handled once: the stored origin (or, for a refused resource, its status, with a digest of its
labels and annotations, whose change alone is no new generation) remembers it, so
the update events of katuna's own status writes change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from functions.core import katib_defaults, katib_metadata, resume, template_sources
from functions.core.cluster_templates import ClusterTemplates
from functions.core.errors import NO_ROOM, InvalidStudy, NoRoom, NoRoomForStudy, PermanentError, Problem
from functions.core.events import Event, study_created
from functions.core.formats import in_definition, load_definition
from functions.core.gpu_fit import gpu_misfit
from functions.core.job_resources import missing_requests
from functions.core.katib_paths import ANNOTATION_FIELD
from functions.core.records import STOPPED, StudyRecord
from functions.core.resource_status import failed_status, refusal_stands, waiting_stands, waiting_status
from functions.core.resources import (
    DELETED,
    EDITABLE,
    Origin,
    Ref,
    being_deleted,
    definition,
    in_namespace,
    is_study_resource,
    namespace_problems,
    origin_of,
    ref_of,
    refused_fields,
    spec_paths,
)
from functions.core.spec import Study
from functions.core.stop import Decision
from functions.core.store_port import has_study
from functions.core.trial_identity import study_problems
from functions.handlers.asking import complete
from functions.handlers.deps import Deps
from functions.handlers.resource_names import let_go, name_problem, study_of
from functions.handlers.starting import go_on
from functions.handlers.stopping import drop_kept, kept_behind, retire
from functions.handlers.submit import raised_budget, restart, store_study
from functions.handlers.writeback import report

log = logging.getLogger("katuna.resource")


def handle(event: Event, deps: Deps) -> list[Event]:
    if not is_study_resource(event.data) or deps.resources is None:
        return []
    ref = ref_of(event.data)
    if ref.katib and not deps.resources.katib_api:
        return []
    current = deps.resources.get(ref)
    if current is not None and being_deleted(current):
        current = None
    claim = study_of(deps, ref)
    study, stored = claim.name, claim.stored
    origin = origin_of(stored)
    if current is None:
        if stored is None or origin is None or origin.ref != ref:
            return []
        if not stored.terminal:
            return complete(stored, deps, Decision(STOPPED, DELETED))
        if kept_behind(stored, origin, deps):
            drop_kept(stored, origin, deps)
        return []
    uid, generation = current["metadata"]["uid"], current["metadata"].get("generation") or 1
    if stored is not None and origin is not None and origin.ref == ref:
        if origin.uid == uid:
            return _edit(deps, stored, origin, current) if generation > origin.generation else []
        retire(deps, stored, origin)
        stored = None
    if refusal_stands(current):
        return []
    if stored is not None and origin is not None and (claim.holder_gone or let_go(deps.resources, origin)):
        retire(deps, stored, origin)
        stored = None
    if stored is not None:
        _fail(deps, ref, current, "StudyNameTaken", [name_problem(study, ref, origin)])
        return []
    return _create(deps, ref, current, study)


def _fail(deps: Deps, ref: Ref, current: Mapping[str, Any], reason: str, problems: list[Problem],
          more: int = 0) -> None:
    """Write the resource's refusal for ``problems`` (and ``more`` found, not kept) in its status."""
    if deps.resources is not None:
        deps.resources.write_status(ref, current["metadata"]["uid"],
                                    partial(failed_status, reason, problems, current["metadata"], deps.clock(), more))


def _create(deps: Deps, ref: Ref, current: Mapping[str, Any], study: str) -> list[Event]:
    """Submit the resource's study, named ``study`` (:func:`study_of`), as ``POST /studies``
    would, its trials in the resource's namespace
    (:func:`~functions.core.resources.namespace_problems`). The resource is validated under its
    own name, as Katib's webhook checks it."""
    uid, generation = current["metadata"]["uid"], current["metadata"].get("generation") or 1
    try:
        spec, submitted = template_sources.load(definition(current), _templates(deps, ref.namespace), deps.limits,
                                                partial(has_study, deps.store))
        refused = namespace_problems(spec, ref)
        spec = replace(in_namespace(spec, ref.namespace), name=study)
        refused += study_problems(spec, deps.trial_defaults)
        if refused:
            raise InvalidStudy(in_definition(submitted, refused))
        unfit = missing_requests(spec, deps.trial_defaults) or gpu_misfit(spec, deps.trial_defaults)
        if unfit is not None:
            raise InvalidStudy([unfit])
        forbidden = _access_refusal(deps, spec, submitted)
        if forbidden is not None:
            _fail(deps, ref, current, "Forbidden", [Problem("metadata.namespace", forbidden.message)])
            return []
        record, _ = store_study(deps, spec, submitted, Origin(ref, uid, generation).to_dict())
    except NO_ROOM as exc:
        _show_wait(deps, ref, current, exc)
        raise _waits(ref, exc) from exc
    except InvalidStudy as exc:
        _fail(deps, ref, current, "InvalidSpec", spec_paths(ref.kind, exc.problems), exc.more)
        return []
    report(record, deps)
    return [study_created(record.name, record.uid, record.restarts)]


def _waits(ref: Ref, refused: NoRoom) -> NoRoomForStudy:
    """The wait of a resource whose study would be one more than ``KATUNA_MAX_STUDIES`` allows,
    or its node pool one more than ``KATUNA_MAX_POOLS``: nothing stored, and its event answered
    ``429``, so the broker, then the tick, brings it again until room frees (a status written
    Failed would stand for its generation, and a resource applied again unchanged is no new
    generation)."""
    return NoRoomForStudy(f"{ref} waits: {refused.held}; it is taken {refused.frees}")


def _show_wait(deps: Deps, ref: Ref, current: Mapping[str, Any], refused: NoRoom) -> None:
    """Say in the new resource's status that it waits, and for which limit
    (:func:`~functions.core.resource_status.waiting_status`), unless it says so already: the
    update event of that write, however often and late it comes, writes nothing more. The
    study's status replaces it once the resource is taken. A write the API refuses for good is
    logged: the resource waits all the same."""
    if deps.resources is None or waiting_stands(current, refused):
        return
    try:
        deps.resources.write_status(ref, current["metadata"]["uid"],
                                    partial(waiting_status, refused, current["metadata"], deps.clock()))
    except PermanentError as exc:
        log.warning("%s: its status, that it waits, is not written: %s", ref, exc)


def _access_refusal(deps: Deps, spec: Study, submitted: dict[str, Any]) -> Problem | None:
    """Why katuna may not create the study's trial workloads in its namespace, asked of the
    cluster; a ``trialSpec`` the cluster refuses as invalid is ``InvalidStudy``, its paths those
    of the resource as submitted."""
    if deps.access_refusal is None:
        return None
    try:
        return deps.access_refusal(spec)
    except InvalidStudy as exc:
        raise InvalidStudy(in_definition(submitted, exc.problems), exc.more) from exc


def _edit(deps: Deps, stored: StudyRecord, origin: Origin, current: Mapping[str, Any]) -> list[Event]:
    """Apply an edit of the editable fields to the running study, or restart the ended study
    whose budget it raises as Katib would (:mod:`functions.core.resume`); refuse any other. The
    trials stay where the study's ran (one stored before trials followed their resource's
    namespace keeps the service's default, where its Jobs are)."""
    generation = current["metadata"]["generation"]
    kind = origin.ref.kind
    try:
        edited = template_sources.as_stored(definition(current), stored.definition, _templates(deps).home)
        if _unchanged(kind, stored.definition, edited):
            return _taken_unchanged(deps, stored, origin, generation)
        if stored.terminal:
            _restartable(deps, stored, edited)
        else:
            _editable(kind, stored, edited, deps.store.count_trials(stored.name).created)
        spec, submitted = load_definition(edited, limits=deps.limits, stored=partial(has_study, deps.store))
        spec = replace(in_namespace(spec, stored.spec.kubernetes.namespace), name=stored.name)
    except InvalidStudy as exc:
        return _refuse(deps, stored, origin, generation, f"the edit is invalid: {_problems(kind, exc)}")
    except _Refusal as exc:
        return _refuse(deps, stored, origin, generation, str(exc))
    handled = origin.handled(generation).to_dict()
    if stored.terminal:
        try:
            record = restart(deps, stored, spec, submitted, handled)
        except NO_ROOM as exc:
            raise _waits(origin.ref, exc) from exc
        except InvalidStudy as exc:
            return _refuse(deps, stored, origin, generation, f"the study does not restart: {_problems(kind, exc)}")
    else:
        try:
            record = _apply_edit(deps, stored, spec, submitted, handled)
        except InvalidStudy as exc:
            return _refuse(deps, stored, origin, generation, f"the edit is invalid: {_problems(kind, exc)}")
    events = go_on(record, deps, None)
    report(deps.store.get_study(stored.name), deps)
    return events


def _unchanged(kind: str, stored: Mapping[str, Any], edited: Mapping[str, Any]) -> bool:
    """Whether an edited Experiment is the stored one as Katib's webhook compares them: its spec
    the same once both are as Katib stores them, defaults written in
    (:mod:`functions.core.katib_defaults`; as ``kubectl get -o yaml`` gives it back), its
    node-pool annotation the same. Katib takes it, running or ended, with no check of its budget."""
    if kind != "Experiment":
        return False
    before, after = stored.get("spec"), edited.get("spec")
    pools = [katib_metadata.annotated_pool(document.get("metadata") or {}) for document in (stored, edited)]
    return isinstance(before, Mapping) and isinstance(after, Mapping) and katib_defaults.same_spec(before, after) \
        and pools[0] == pools[1]


def _taken_unchanged(deps: Deps, stored: StudyRecord, origin: Origin, generation: int) -> list[Event]:
    """Record the generation that changes nothing as handled (a refusal of an earlier one is
    no longer the resource's: it is as the study runs), the study left as it is."""
    deps.store.update_study(stored.name, origin=origin.handled(generation).to_dict())
    report(deps.store.get_study(stored.name), deps)
    return []


def _apply_edit(deps: Deps, stored: StudyRecord, spec: Study, submitted: dict[str, Any],
                handled: dict[str, Any]) -> StudyRecord:
    """Store the edit of the running study, unless its ``maxTrials`` would take the study's
    Optuna history past ``KATUNA_MAX_HISTORY`` or ``KATUNA_MAX_HISTORY_CELLS``, or its trial cap
    without one would leave it no trial more (:class:`InvalidStudy` at ``maxTrials``, nothing
    changed), as a new study and a restart are refused; a study without ``maxTrials`` takes the
    cap the limits give it now (:mod:`functions.core.trial_cap`). Only the budget changes: the
    study searches on as it began (:func:`~functions.core.resume.as_begun`). In one
    transaction, as a restart is."""
    spec = resume.as_begun(stored.spec, spec)
    with deps.store.transaction():
        cap = raised_budget(deps, stored, spec, submitted)
        deps.store.update_study(stored.name, spec=spec, definition=submitted, origin=handled, trial_cap=cap)
        return deps.store.get_study(stored.name)


def _problems(kind: str, refused: InvalidStudy) -> str:
    """The problems of a refused edit, with their paths in the resource."""
    return "; ".join(str(p) for p in spec_paths(kind, refused.problems))


def _editable(kind: str, stored: StudyRecord, edited: Mapping[str, Any], trials: int) -> None:
    """Refuse an edit of the running study beyond the fields it takes, or, for an Experiment,
    one whose ``maxTrialCount`` is not above the ``trials`` it has made (Katib's webhook's rule)."""
    refused = refused_fields(kind, stored.definition, edited)
    pools = [katib_metadata.annotated_pool(d.get("metadata") or {}) for d in (stored.definition, edited)]
    if pools[0] != pools[1]:
        refused.append(ANNOTATION_FIELD)
    if refused:
        raise _Refusal(f"{', '.join(refused)} cannot change while the study runs (only "
                       f"{', '.join(f'spec.{f}' for f in EDITABLE[kind])} can); delete and re-apply the "
                       "resource to change the rest")
    too_low = resume.too_few_trials(edited, trials) if kind == "Experiment" else None
    if too_low is not None:
        raise _Refusal(f"{too_low}, as Katib refuses it; the study runs on with its budget as it was")


def _restartable(deps: Deps, stored: StudyRecord, edited: Mapping[str, Any]) -> None:
    """Refuse an edit of the ended study that does not restart it as Katib restarts one."""
    refused = resume.refusals(stored, edited, deps.store.count_trials(stored.name).created)
    if refused:
        raise _Refusal(f"the study has ended ({stored.status}: {stored.reason}) and does not restart: "
                       f"{'; '.join(refused)}; delete and re-apply the resource to run it again")


def _templates(deps: Deps, owner: str | None = None) -> ClusterTemplates:
    """Trial templates held in ConfigMaps, read from the cluster the resource lives on: for a
    resource of namespace ``owner``, only from ConfigMaps of a namespace it may name."""
    resources = deps.resources
    if resources is None:
        raise RuntimeError("study resources are handled only where a Kubernetes API is configured")
    return ClusterTemplates(resources.read_config_map, resources.namespace or "default", owner,
                            deps.template_namespaces)


class _Refusal(Exception):
    """An edit the running study cannot take."""


def _refuse(deps: Deps, stored: StudyRecord, origin: Origin, generation: int, message: str) -> list[Event]:
    """Keep running as before; the status says which edit was refused and why, and so does the log."""
    log.warning("%s: generation %d is refused: %s", origin.ref, generation, message)
    deps.store.update_study(stored.name, origin=origin.handled(generation, message, deps.clock()).to_dict())
    report(deps.store.get_study(stored.name), deps)
    return []
