"""Reads of many running attempts' Jobs and pods made together: a list of each per namespace for
up to :data:`~functions.core.job.TRIALS_PER_SELECTOR` trials, where looking at them one by one
made a Job read and a pod list each.

The watcher looks at every running trial of a study every two seconds; with a hundred running,
that was a hundred requests a second to the API server from one katuna process, enough for its
priority and fairness limits to answer 429. Within :meth:`Together.reading`, the executor's reads
of the attempts it names are answered from the lists made as the block began (a moment old, as a
look one by one would have been by the end of the loop); the lists select by katuna's labels the
trials named, so the retained Jobs and pods of ended trials are not read again and again. An
attempt whose pods carry no katuna label (a TrainJob's), or whose lists could not be made, is
read one by one as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.core import trial_kinds
from functions.core.cluster import TRIAL_LABEL, UID_LABEL
from functions.core.job import TRIALS_PER_SELECTOR, is_job, trials_selector
from functions.core.launch import TrialLaunch

log = logging.getLogger("katuna.kubernetes")

Key = tuple[str, str, int]
"""(namespace, study uid, trial number)."""


class _Lists:
    """The Jobs and pods of the trials listed together, by trial."""

    def __init__(self) -> None:
        self.covered: set[Key] = set()
        self.jobs: dict[tuple[str, str], Any] = {}
        self.pods: dict[Key, list[Any]] = {}


class Together:
    """Lists of running attempts' Jobs and pods, made once for a loop over them, per thread."""

    def __init__(self, batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
        self._batch = batch
        self._core = core
        self._local = threading.local()

    @contextmanager
    def reading(self, launches: Sequence[TrialLaunch], namespace_of: Callable[[TrialLaunch], str]) -> Iterator[None]:
        """Within the block, :meth:`job` and :meth:`pods` answer for the ``launches`` (of one
        study) that katuna's labels select, from lists made now."""
        outer = getattr(self._local, "lists", None)
        self._local.lists = self._listed(launches, namespace_of)
        try:
            yield
        finally:
            self._local.lists = outer

    def job(self, namespace: str, launch: TrialLaunch) -> tuple[bool, Any | None]:
        """Whether the launch's Job was listed, and the Job of its name listed (None if none)."""
        lists = self._covering(namespace, launch)
        return (False, None) if lists is None else (True, lists.jobs.get((namespace, launch.job_name)))

    def pods(self, namespace: str, launch: TrialLaunch, selector: str) -> list[Any] | None:
        """The listed pods of the launch's trial that ``selector`` (equality terms) selects;
        None when they were not listed."""
        lists = self._covering(namespace, launch)
        if lists is None:
            return None
        terms = dict(term.split("=", 1) for term in selector.split(","))
        return [pod for pod in lists.pods.get((namespace, launch.uid, launch.number), [])
                if _has(pod.metadata.labels if pod.metadata else None, terms)]

    def _covering(self, namespace: str, launch: TrialLaunch) -> _Lists | None:
        lists: _Lists | None = getattr(self._local, "lists", None)
        return lists if lists is not None and (namespace, launch.uid, launch.number) in lists.covered else None

    def _listed(self, launches: Sequence[TrialLaunch], namespace_of: Callable[[TrialLaunch], str]) -> _Lists:
        lists = _Lists()
        groups: dict[tuple[str, str], list[TrialLaunch]] = {}
        for launch in launches:
            if is_job(launch) and (launch.trial_spec is None or trial_kinds.labels_pods(launch.trial_spec)):
                groups.setdefault((namespace_of(launch), launch.uid), []).append(launch)
        for (namespace, _), group in groups.items():
            for start in range(0, len(group), TRIALS_PER_SELECTOR):
                self._list(lists, namespace, group[start:start + TRIALS_PER_SELECTOR])
        return lists

    def _list(self, lists: _Lists, namespace: str, launches: Sequence[TrialLaunch]) -> None:
        """List the Jobs and pods of the ``launches``' trials; on failure, leave them to be read one by one."""
        selector = trials_selector(launches)
        try:
            jobs = self._batch.list_namespaced_job(namespace, label_selector=selector).items
            pods = self._core.list_namespaced_pod(namespace, label_selector=selector).items
        except (ApiException, HTTPError) as exc:
            log.warning("listing the Jobs and pods of %d running trials together in %s: %s; each is read alone",
                        len(launches), namespace, exc)
            return
        for job in jobs:
            if job.metadata is not None and job.metadata.name:
                lists.jobs[(namespace, job.metadata.name)] = job
        for pod in pods:
            labels = (pod.metadata.labels if pod.metadata else None) or {}
            lists.pods.setdefault((namespace, labels[UID_LABEL], int(labels[TRIAL_LABEL])), []).append(pod)
        lists.covered.update((namespace, launch.uid, launch.number) for launch in launches)


def _has(labels: Mapping[str, str] | None, terms: Mapping[str, str]) -> bool:
    """Whether ``labels`` hold every ``terms`` key with its value."""
    return all((labels or {}).get(key) == value for key, value in terms.items())
