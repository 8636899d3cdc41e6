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

Only what the API serves and grants is listed: a kind whose operator is not installed would
answer 404, and one whose ``knative/trial-kinds/`` component is not applied, or a list across
namespaces without a ClusterRoleBinding, 403, which the API server's audit log keeps as a
forbidden request, each worker process's at its first tick. So the sweep first reads the API's
discovery (``GET /apis``, then the resources of each group version served that it needs), which
every account may read, and then asks a SelfSubjectAccessReview whether katuna may list the kind
there; both answers are kept for :data:`REFUSED_FOR` seconds. A workload katuna could have
made is of a kind the API serves, so none is missed by not asking of the others.
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

from functions.adapters.kubernetes_client import all_pages, call, delete_options, translate
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.adapters.kubernetes_workloads import created_at
from functions.core import trial_kinds
from functions.core.errors import KatunaError
from functions.core.installation import INSTALLATION_LABEL
from functions.core.log_context import about
from functions.core.ports import Strays
from functions.core.workload_labels import STRAY_SELECTOR, attempt_of

log = logging.getLogger("katuna.kubernetes")

ORPHANS_PER_SWEEP = 100
"""The most orphaned workloads one sweep stops: a lost database of thousands of running trials
is cleared over a few minutes' ticks, each tick's cost bounded."""

REFUSED_FOR = 3600.0
"""Seconds the answer to whether a kind may be listed in a namespace (or across namespaces) is
kept, and a list the API refused not asked again: each tick would otherwise ask every kind in
every namespace. An operator installed, or a grant given, since is swept within the hour."""

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
        self._reviews = client.AuthorizationV1Api(api)
        self._apis = client.ApisApi(api)
        self._listable: dict[tuple[tuple[str, str, str], str | None], tuple[bool, float]] = {}
        self._discovered: dict[str, tuple[frozenset[str], float]] = {}

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
        (None: across namespaces), read a page at a time; None where it may not be listed there
        (:meth:`_may_list`), or the API refused the list, remembered for :data:`REFUSED_FOR` seconds."""
        key = (resource, namespace)
        if not self._may_list(resource, namespace):
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
            self._listable[key] = (False, self._clock() + REFUSED_FOR)
            return None
        except HTTPError as exc:
            return self._failed(translate(exc, f"list katuna's {plural}"))

    def _may_list(self, resource: tuple[str, str, str], namespace: str | None) -> bool:
        """Whether the API serves ``resource`` (its discovery) and lets katuna list it in
        ``namespace`` (None: across namespaces; a SelfSubjectAccessReview), the answer kept for
        :data:`REFUSED_FOR` seconds; a question that failed is logged, asked at the next sweep."""
        key, now = (resource, namespace), self._clock()
        known = self._listable.get(key)
        if known is not None and now < known[1]:
            return known[0]
        try:
            listable = self._served(resource) and self._granted(resource, namespace)
        except KatunaError as exc:
            self._failed(exc)
            return False
        self._listable[key] = (listable, now + REFUSED_FOR)
        return listable

    def _served(self, resource: tuple[str, str, str]) -> bool:
        """Whether the API serves ``resource``: Jobs always; another kind where ``GET /apis``
        lists its group version and that version's discovery lists its plural."""
        group, version, plural = resource
        if group == "batch":
            return True
        if f"{group}/{version}" not in self._discovery("", self._group_versions):
            return False
        return plural in self._discovery(f"{group}/{version}", partial(self._plurals, group, version))

    def _discovery(self, key: str, read: Callable[[], frozenset[str]]) -> frozenset[str]:
        """The names discovery lists at ``key`` (``""``: the group versions), read once in
        :data:`REFUSED_FOR` seconds."""
        now = self._clock()
        kept = self._discovered.get(key)
        if kept is None or now >= kept[1]:
            kept = self._discovered[key] = (read(), now + REFUSED_FOR)
        return kept[0]

    def _group_versions(self) -> frozenset[str]:
        listed = call(self._apis.get_api_versions, "read the API groups the API serves")
        return frozenset(version.group_version for group in listed.groups or [] for version in group.versions or [])

    def _plurals(self, group: str, version: str) -> frozenset[str]:
        listed = call(lambda: self._objects.get_api_resources(group, version),
                      f"read the resources the API serves in {group}/{version}", tolerate=(404,))
        return frozenset(found.name for found in (listed.resources if listed is not None else []) or [])

    def _granted(self, resource: tuple[str, str, str], namespace: str | None) -> bool:
        """Whether katuna may list ``resource`` in ``namespace`` (None: across namespaces, which
        an access review asks as the namespace ``""``)."""
        group, _, plural = resource
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
                namespace=namespace or "", verb="list", group=group, resource=plural)))
        answer = call(lambda: self._reviews.create_self_subject_access_review(review),
                      f"review whether katuna may list {plural} {f'in namespace {namespace}' if namespace else 'across namespaces'}")
        return answer.status is not None and bool(answer.status.allowed)

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
