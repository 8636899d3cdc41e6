"""Trial workloads of any kind but ``batch/v1`` Job, through the custom objects API (the
dynamic client): create (the attempt's own existing one is success), read, delete with their
pods, the end Katib's ``successCondition`` / ``failureCondition`` read from them, and the sweep
of those running while no study wants them (:meth:`Workloads.stop_strays`).

A TrainJob's pods carry no study uid (they come from its runtime's templates), so they are the
attempt's by their owners: the TrainJob the attempt's own, the JobSet of its name controlled by
that TrainJob, the Jobs controlled by that JobSet, the pods controlled by those Jobs, each link
checked by uid (:meth:`Workloads.makers`). The pods an earlier study's TrainJob of the same name
left Terminating, whose Jobs went with it, are never the attempt's.

The Job executor (:mod:`functions.adapters.kubernetes_executor`) hands a trial here when its
``trialSpec`` is another kind; the two share the client, the translation of API errors, and
what a create answered "already exists" means (:func:`settle_conflict`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import Translate, all_pages, call, delete_options, oversized_workload
from functions.adapters.kubernetes_discovery import served_resource
from functions.adapters.kubernetes_fields import kind_label, strict_refusals
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.core import gjson, trial_kinds
from functions.core.cluster import UID_LABEL
from functions.core.errors import PermanentError, RefusedWorkload, TemporaryError
from functions.core.launch import TrialLaunch
from functions.core.log_context import about
from functions.core.naming import EARLIER, OWN
from functions.core.ports import Strays
from functions.core.trial_spec import PATH as TRIAL_SPEC
from functions.core.workload_labels import STRAY_SELECTOR, attempt_of, holder, study_selector, trial_selector

if TYPE_CHECKING:
    from functions.adapters.kubernetes_orphans import OrphanSweep

log = logging.getLogger("katuna.kubernetes")

T = TypeVar("T")

Found = tuple[Mapping[str, str], str | None]
"""An object's labels and uid."""


@dataclass(frozen=True)
class End:
    """How a workload ended by its conditions: ``succeeded``, and the condition's reason and message."""

    succeeded: bool
    reason: str
    message: str


def settle_conflict(launch: TrialLaunch, what: str, found: Found | None, delete: Callable[[str | None], None]) -> None:
    """After the create of the launch's workload ``what`` answered 409 AlreadyExists, with the
    object ``found`` holding its name: nothing more when it is the attempt's own (the launch
    was delivered again). A trial of an earlier study of the same name is deleted (``delete``
    with its uid, the precondition that spares anything made in its place since), and the
    launch is tried again once it is gone (:class:`TemporaryError`). Anything else is refused
    for good: katuna deletes nothing it did not make for a study of this name."""
    if found is None:
        raise TemporaryError(f"{what} existed when it was created and is gone now; the launch is tried again")
    labels, uid = found
    held = holder(labels, launch)
    if held == OWN:
        return
    if held != EARLIER:
        raise PermanentError(f"{what} exists and is no trial of study {launch.study} (uid {launch.uid}); katuna "
                             "deletes nothing it did not make: delete it, or give the study another name")
    delete(uid)
    raise TemporaryError(f"{what} is a trial of an earlier study named {launch.study} (uid {labels[UID_LABEL]}), "
                         "deleted now; the launch is tried again once it is gone")


def own_pods(launch: TrialLaunch, pods: list[Any], labels_of: Callable[[Any], Mapping[str, str] | None]) -> list[Any]:
    """The ``pods`` but those carrying another study's uid: an earlier study's of the same name,
    left to the garbage collector when its workload was deleted (a pod an operator made from a
    template without katuna's labels is kept)."""
    return [pod for pod in pods if (labels_of(pod) or {}).get(UID_LABEL, launch.uid) == launch.uid]


def controller_uid(references: Iterable[Any] | None) -> str | None:
    """The uid of the controller among an object's ``ownerReferences`` (the API's dicts or the
    typed client's objects); None when nothing controls it."""
    for ref in references or ():
        controller, uid = (ref.get("controller"), ref.get("uid")) if isinstance(ref, Mapping) else (ref.controller, ref.uid)
        if controller:
            return cast(str | None, uid)
    return None


def made_by(pods: list[Any], makers: Collection[str]) -> list[Any]:
    """The ``pods`` (the typed client's) a Job of the uids ``makers`` controls."""
    return [pod for pod in pods if pod.metadata is not None and controller_uid(pod.metadata.owner_references) in makers]


def end(launch: TrialLaunch, workload: Mapping[str, Any]) -> End | None:
    """The workload's end by the study's conditions (else its kind's): failure is read first, as
    Katib reads it, then success; then, where neither holds, the end its controller gave up on it
    at (:func:`~functions.core.trial_kinds.error`: an Argo Workflow's ``Error``), a failure. None
    while none holds. A failure's reason is its condition's (else the Workflow's phase), its
    message the condition's with the steps that failed (:func:`~functions.core.trial_kinds.failed_steps`)."""
    spec = launch.trial_spec or {}
    success, failure = trial_kinds.conditions(spec, launch.success_condition, launch.failure_condition)
    for path, succeeded in ((failure, False), (success, True), (trial_kinds.error(spec), False)):
        found = gjson.holds(workload, path) if path else None
        if found is not None:
            message = "; ".join(part for part in (str(found.get("message") or ""),
                                                  *([] if succeeded else trial_kinds.failed_steps(workload))) if part)
            return End(succeeded, str(found.get("reason") or found.get("phase") or ""), message)
    return None


def _strays(wanted: Strays, orphans: OrphanSweep | None,
            items: list[Mapping[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    """The kind, name, uid and study of each of the workloads ``items`` (katuna's trial labels select
    them) that has not ended, nor is being deleted, and that ``wanted`` calls a stray, or
    ``orphans`` takes for this installation's orphan."""
    found = []
    for item in items:
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        attempt = attempt_of(labels)
        if attempt is None or metadata.get("deletionTimestamp") or wanted.ended(attempt[0], attempt[1], item):
            continue
        if not wanted.stray(*attempt) and not (orphans is not None and orphans.takes(
                labels, created_at(item), attempt[0], attempt[1])):
            continue
        found.append((str(item.get("kind")), str(metadata.get("name")), metadata.get("uid"), attempt[0]))
    return found


def _names(items: list[Mapping[str, Any]]) -> list[str]:
    """The names of the workloads ``items``."""
    return [item["metadata"]["name"] for item in items]


def created_at(workload: Mapping[str, Any]) -> float | None:
    """When the workload was created (seconds since the epoch), from its metadata."""
    stamp = (workload.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if isinstance(stamp, str) else None


class Workloads:
    """Create, read and delete trial workloads through the custom objects API."""

    def __init__(self, api: client.ApiClient, translate: Translate) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._batch = client.BatchV1Api(api)
        self._translate = translate

    def resource(self, workload: Mapping[str, Any]) -> tuple[str, str, str]:
        """``(group, version, plural)`` of a workload, an added kind's as the API's discovery
        lists it (:mod:`functions.adapters.kubernetes_discovery`)."""
        return served_resource(self._objects, workload, self._translate)

    def create(self, namespace: str, workload: Mapping[str, Any], launch: TrialLaunch) -> str:
        """Create the launch's workload; its uid (the one there already when the launch was
        delivered before). What a name already taken (409) means is :func:`settle_conflict`'s.
        A kind the cluster does not serve (404: its operator is not installed) is refused for good.
        Strict field validation, as the submission's dry run: a field the kind's schema does not
        have is a :class:`RefusedWorkload` naming it, not dropped by the API server for the trial
        to run without it (a study taken before its kind's CRD changed, or whose dry run its
        first trial's parameters skipped)."""
        group, version, plural = self.resource(workload)
        what = f"{workload.get('kind')} {launch.job_name}"
        try:
            created = self._objects.create_namespaced_custom_object(group, version, namespace, plural, dict(workload),
                                                                    field_validation="Strict")
            return cast(str, cast(Mapping[str, Any], created)["metadata"]["uid"])
        except ApiException as exc:
            if (refused := oversized_workload(exc, TRIAL_SPEC, what)) is not None:
                raise refused from exc
            if unknown := strict_refusals(exc, TRIAL_SPEC, kind_label(workload)):
                raise RefusedWorkload(unknown) from exc
            if exc.status != 409:
                raise self._translate(exc, f"create {what} ({plural}.{group}/{version}; "
                                           "is its operator installed and katuna's Role granted it?)") from exc
            found = self._read(self.resource(launch.trial_spec or {}), namespace, launch.job_name)
            metadata = (found or {}).get("metadata") or {}
            settle_conflict(launch, what, None if found is None else (metadata.get("labels") or {}, metadata.get("uid")),
                            lambda uid: self._delete(launch, namespace, launch.job_name, uid))
            return cast(str, metadata["uid"])
        except HTTPError as exc:
            raise self._translate(exc, f"create {what}") from exc

    def get(self, launch: TrialLaunch, namespace: str) -> Mapping[str, Any] | None:
        """The attempt's workload as the API has it; None when it is not there, or when the one
        of its name is another's (an earlier study's of the same name)."""
        found = self._read(self.resource(launch.trial_spec or {}), namespace, launch.job_name)
        labels = ((found or {}).get("metadata") or {}).get("labels")
        return found if found is not None and holder(labels, launch) == OWN else None

    def makers(self, launch: TrialLaunch, namespace: str) -> frozenset[str] | None:
        """The uids of the Jobs that make the attempt's pods, for a kind run as another kind's
        workload (:func:`~functions.core.trial_kinds.runner`: a TrainJob's JobSet), each link
        checked by uid: the attempt's own workload (katuna's labels), the runner of its name
        it controls, the Jobs that runner controls. None for any other kind (its pods carry
        katuna's labels); empty while no such chain is there (not made yet, or the JobSet of
        the name an earlier study's TrainJob's)."""
        runner = trial_kinds.runner(launch.trial_spec or {})
        if runner is None:
            return None
        run = self._own_run(launch, namespace, runner)
        if run is None:
            return frozenset()
        selector = f"{runner.owner_label}={launch.job_name}"
        jobs = call(lambda: self._batch.list_namespaced_job(namespace, label_selector=selector),
                    f"list the Jobs of {runner.kind} {launch.job_name}", translator=self._translate)
        return frozenset(str(job.metadata.uid) for job in jobs.items if job.metadata is not None
                         and controller_uid(job.metadata.owner_references) == run["metadata"]["uid"])

    def _own_run(self, launch: TrialLaunch, namespace: str, runner: trial_kinds.TrialKind) -> Mapping[str, Any] | None:
        """The ``runner`` workload of the launch's name while the attempt's own workload controls
        it; None otherwise (none made yet, or one an earlier study's workload controls)."""
        workload = self.get(launch, namespace)
        run = self._read(runner.resource, namespace, launch.job_name) if workload is not None else None
        if workload is None or run is None:
            return None
        return run if controller_uid(run["metadata"].get("ownerReferences")) == workload["metadata"]["uid"] else None

    def _read(self, resource: tuple[str, str, str], namespace: str, name: str) -> Mapping[str, Any] | None:
        """The custom object ``name`` of ``resource`` (group, version, plural), whoever's it is;
        None when there is none."""
        group, version, plural = resource
        try:
            return cast(Mapping[str, Any], self._objects.get_namespaced_custom_object(
                group, version, namespace, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._translate(exc, f"read {plural} {name} ({plural}.{group}/{version}; "
                                       "is its operator installed and katuna's Role granted it?)") from exc
        except HTTPError as exc:
            raise self._translate(exc, f"read {plural} {name}") from exc

    def stop_strays(self, namespace: str, resource: tuple[str, str, str], wanted: Strays,
                    orphans: OrphanSweep | None = None) -> None:
        """Delete, with their pods, the workloads of ``resource`` katuna made in ``namespace``
        that ``wanted`` calls strays and that have not ended (nor are being deleted), each only
        while its uid is the one listed; a ``retain`` study's too, as a stopped trial's workload of
        a kind other than Job is deleted; so is one ``orphans`` takes for this installation's orphan.
        A kind the cluster no longer serves has none."""
        strays = self._listed(namespace, resource, STRAY_SELECTOR, partial(_strays, wanted, orphans))
        for kind, name, uid, study in strays:
            log.warning("%s %s of study %s runs while its trial is no longer wanted: deleted", kind, name, study,
                        extra=about(study))
            self._delete_object(resource, namespace, name, uid)

    def _listed(self, namespace: str, resource: tuple[str, str, str], selector: str,
                kept: Callable[[list[Mapping[str, Any]]], list[T]]) -> list[T]:
        """What ``kept`` keeps of the workloads of ``resource`` in ``namespace`` that ``selector``
        selects, read page by page, each page let go once what it keeps is kept (a ``retain``
        study of thousands of trials keeps a workload for each); none where the kind is not
        served (404: its operator removed)."""
        group, version, plural = resource

        def page(token: str) -> Mapping[str, Any]:
            return cast(Mapping[str, Any], self._objects.list_namespaced_custom_object(
                group, version, namespace, plural, label_selector=selector, limit=LIST_PAGE,
                _continue=token or None))
        found = call(lambda: all_pages(page, lambda listed: (listed.get("metadata") or {}).get("continue") or "",
                                       lambda listed: kept(listed.get("items") or [])),
                     f"list katuna's {plural}.{group} in namespace {namespace}", tolerate=(404,),
                     translator=self._translate)
        return found or []

    def _delete(self, launch: TrialLaunch, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete one of the launch's workloads (:meth:`_delete_object`)."""
        self._delete_object(self.resource(launch.trial_spec or {}), namespace, name, uid)

    def _delete_object(self, resource: tuple[str, str, str], namespace: str, name: str, uid: str | None) -> None:
        """Delete one workload with its pods (``Background``), only while ``uid`` is its uid
        (when given); one gone already, or replaced since (409), is left."""
        group, version, plural = resource
        call(lambda: self._objects.delete_namespaced_custom_object(group, version, namespace, plural, name,
                                                                   body=delete_options(uid)),
             f"delete {plural} {name}", tolerate=(404, 409), translator=self._translate)

    def delete_own(self, launch: TrialLaunch, namespace: str, uid: str) -> None:
        """Delete the attempt's workload, only while ``uid`` is its uid, with its pods."""
        self._delete(launch, namespace, launch.job_name, uid)

    def drop(self, namespace: str, resource: tuple[str, str, str], study: str, uid: str) -> None:
        """Delete every workload of ``resource`` of the study (of ``uid``) in ``namespace``, with
        its pods, ended or not: its resource was deleted. Read page by page, only their names
        kept, as a ``retain`` study of thousands of trials keeps one for each. A kind the
        cluster no longer serves has none."""
        for name in self._listed(namespace, resource, study_selector(study, uid), _names):
            self._delete_object(resource, namespace, name, None)

    def delete_trial(self, launch: TrialLaunch, namespace: str) -> None:
        """Delete every workload of the trial (each attempt's), with their pods (``Background``)."""
        group, version, plural = self.resource(launch.trial_spec or {})
        found = cast(Mapping[str, Any], call(lambda: self._objects.list_namespaced_custom_object(
            group, version, namespace, plural, label_selector=trial_selector(launch)),
            f"list the {plural} of trial {launch.number}", translator=self._translate))
        for item in found.get("items") or []:
            self._delete(launch, namespace, item["metadata"]["name"])
