"""The trial workloads this installation made whose study the store does not hold (or holds
under another uid), found and stopped: after a lost database, a backup restored over a newer
state, or a create that landed after its trial was discarded, a Job without a timeout would run
for ever, its nodes never scaled back.

Each workload katuna creates carries its installation's identity
(:data:`~functions.core.installation.INSTALLATION_LABEL`). The sweep of the stored studies'
namespaces takes such a workload of its own for an orphan (:meth:`OrphanSweep.takes`) once it
is older than the grace (a workload whose launch a handling has not committed yet is never
taken), at most :data:`ORPHANS_PER_SWEEP` a sweep. Then, by the installation's label, it lists
each trial kind across every namespace katuna may list it in (:meth:`Orphans.sweep`): where its
grant allows a list across namespaces (a ClusterRoleBinding), every namespace it ever wrote to;
else those of the stored studies and its own. A workload of another installation, or without
the label (an older katuna's), is never taken.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import all_pages, delete_options, translate
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.adapters.kubernetes_workloads import created_at
from functions.core import trial_kinds
from functions.core.installation import INSTALLATION_LABEL
from functions.core.log_context import about
from functions.core.ports import Strays
from functions.core.workload_labels import STRAY_SELECTOR, attempt_of

log = logging.getLogger("katuna.kubernetes")

ORPHANS_PER_SWEEP = 100
"""The most orphaned workloads one sweep stops: a lost database of thousands of running trials
is cleared over a few minutes' ticks, each tick's cost bounded."""

REFUSED_FOR = 3600.0
"""Seconds a list the API refused (a kind not served, or katuna not granted it there) is not
asked again: each tick would otherwise ask every kind in every namespace."""

FORBIDDEN, NOT_FOUND = 403, 404


class OrphanSweep:
    """One sweep's view of which workloads are the installation's orphans, and how many more it may stop."""

    def __init__(self, installation: str, grace: float, now: float, wanted: Strays) -> None:
        self._installation = installation
        self._grace = grace
        self._now = now
        self._wanted = wanted
        self.left = ORPHANS_PER_SWEEP

    def takes(self, labels: Mapping[str, str], created: float | None, study: str, uid: str) -> bool:
        """Whether to stop a running workload of ``study`` (``uid``) with ``labels``, made at
        ``created``: this installation's, older than the grace, of a study the store does not
        hold under ``uid``, and the sweep's bound not reached (counted)."""
        if labels.get(INSTALLATION_LABEL) != self._installation or created is None:
            return False
        if self._now - created < self._grace or self.left <= 0 or not self._wanted.orphan(study, uid):
            return False
        self.left -= 1
        return True


class Orphans:
    """The installation's identity on the workloads it creates, and the sweep across namespaces."""

    def __init__(self, api: client.ApiClient, installation: str | None, grace: float,
                 clock: Callable[[], float]) -> None:
        self._batch = client.BatchV1Api(api)
        self._objects = client.CustomObjectsApi(api)
        self._installation = installation
        self._grace = grace
        self._clock = clock
        self._refused: dict[tuple[tuple[str, str, str], str | None], float] = {}

    def label(self, workload: dict[str, Any]) -> None:
        """Label the workload to be created with the installation's identity, where it has one."""
        if self._installation is not None:
            workload.setdefault("metadata", {}).setdefault("labels", {})[INSTALLATION_LABEL] = self._installation

    def start(self, wanted: Strays) -> OrphanSweep | None:
        """A sweep's view of the orphans; None where the installation has no identity."""
        if self._installation is None:
            return None
        return OrphanSweep(self._installation, self._grace, self._clock(), wanted)

    def sweep(self, orphans: OrphanSweep, swept: Collection[tuple[tuple[str, str, str], str]],
              namespaces: Collection[str]) -> None:
        """Stop the installation's orphans of every trial kind that the sweep of the stored
        studies' namespaces did not list (``swept``: each kind's resource and namespace): across
        every namespace where katuna may list the kind, else in each of ``namespaces``."""
        for kind in trial_kinds.KINDS.values():
            group, _, version = kind.api_versions[0].rpartition("/")
            resource = (group, version, kind.plural)
            items = self._listed(resource, None)
            if items is None:
                items = [item for namespace in sorted(namespaces) if (resource, namespace) not in swept
                         for item in self._listed(resource, namespace) or []]
            for item in items:
                metadata = item.get("metadata") or {}
                if (resource, metadata.get("namespace")) not in swept:
                    self._settle(orphans, resource, kind.kind, item)

    def _settle(self, orphans: OrphanSweep, resource: tuple[str, str, str], kind: str, item: Mapping[str, Any]) -> None:
        """Delete the listed workload, with its pods, where it runs and is an orphan."""
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        attempt = attempt_of(labels)
        if attempt is None:
            return
        if not orphans.takes(labels, created_at(item), attempt[0], attempt[1]):
            return
        namespace, name = metadata.get("namespace"), metadata.get("name")
        log.warning("%s %s in namespace %s runs while the store holds no study %s of uid %s: deleted", kind, name,
                    namespace, attempt[0], attempt[1], extra=about(attempt[0]))
        self._delete(resource, str(namespace), str(name), metadata.get("uid"))

    def _listed(self, resource: tuple[str, str, str], namespace: str | None) -> list[Mapping[str, Any]] | None:
        """The running workloads of ``resource`` with the installation's label, in ``namespace``
        (None: across namespaces), read a page at a time; None where the API refused the list
        (not served, or not granted there), remembered for :data:`REFUSED_FOR` seconds."""
        key = (resource, namespace)
        if self._clock() < self._refused.get(key, 0.0):
            return None
        group, version, plural = resource
        selector = f"{STRAY_SELECTOR},{INSTALLATION_LABEL}={self._installation}"

        def page(token: str) -> Any:
            if group == "batch":
                if namespace is None:
                    return self._batch.list_job_for_all_namespaces(label_selector=selector, limit=LIST_PAGE,
                                                                   _continue=token or None, _preload_content=False)
                return self._batch.list_namespaced_job(namespace, label_selector=selector, limit=LIST_PAGE,
                                                       _continue=token or None, _preload_content=False)
            if namespace is None:
                return self._objects.list_cluster_custom_object(group, version, plural, label_selector=selector,
                                                                limit=LIST_PAGE, _continue=token or None)
            return self._objects.list_namespaced_custom_object(group, version, namespace, plural,
                                                               label_selector=selector, limit=LIST_PAGE,
                                                               _continue=token or None)
        try:
            return all_pages(lambda token: _decoded(page(token)),
                             lambda listed: (listed.get("metadata") or {}).get("continue") or "",
                             partial(_running, resource))
        except ApiException as exc:
            if exc.status not in (FORBIDDEN, NOT_FOUND):
                return self._failed(translate(exc, f"list katuna's {plural}"))
            self._refused[key] = self._clock() + REFUSED_FOR
            return None
        except HTTPError as exc:
            return self._failed(translate(exc, f"list katuna's {plural}"))

    @staticmethod
    def _failed(error: Exception) -> None:
        """A list that failed otherwise is logged; the next sweep asks again."""
        log.warning("looking for trial workloads whose study the store does not hold: %s", error)

    def _delete(self, resource: tuple[str, str, str], namespace: str, name: str, uid: str | None) -> None:
        """Delete one workload with its pods, only while ``uid`` is its uid; one gone already,
        or replaced since, is left; a refusal is logged."""
        group, version, plural = resource
        try:
            if group == "batch":
                self._batch.delete_namespaced_job(name, namespace, body=delete_options(uid))
            else:
                self._objects.delete_namespaced_custom_object(group, version, namespace, plural, name,
                                                              body=delete_options(uid))
        except ApiException as exc:
            if exc.status not in (404, 409):
                self._failed(translate(exc, f"delete {plural} {name}"))
        except HTTPError as exc:
            self._failed(translate(exc, f"delete {plural} {name}"))


def _decoded(answer: Any) -> Mapping[str, Any]:
    """A list's answer as JSON: a Job list read raw (``_preload_content=False``), as a custom
    object list is, so both are read the same way."""
    return answer if isinstance(answer, Mapping) else cast(Mapping[str, Any], json.loads(answer.data))


def _running(resource: tuple[str, str, str], listed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The workloads of ``resource`` on a page that are not being deleted and have not ended by
    their kind's conditions; a suspended Job is left too (stopped already, or kept)."""
    group, version, plural = resource
    kind = next(known.kind for known in trial_kinds.KINDS.values() if known.plural == plural)
    typed = {"apiVersion": f"{group}/{version}".lstrip("/"), "kind": kind}
    return [item for item in listed.get("items") or [] if not (item.get("metadata") or {}).get("deletionTimestamp")
            and not (group == "batch" and (item.get("spec") or {}).get("suspend"))
            and not trial_kinds.ended({**item, **typed})]
