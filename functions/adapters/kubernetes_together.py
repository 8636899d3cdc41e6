"""Reads of many running attempts' Jobs and pods made together: a list of each per namespace for
up to :data:`~functions.core.workload_labels.TRIALS_PER_SELECTOR` trials, where looking at them one by one
made a Job read and a pod list each.

The watcher looks at every running trial of a study every two seconds; with a hundred running,
that was a hundred requests a second to the API server from one katuna process, enough for its
priority and fairness limits to answer 429. Within :meth:`Together.reading`, the executor's reads
of the attempts it names are answered from lists made at the first read of each kind (a moment
old, as a look one by one would have been by the end of the loop; a scan of logs, which reads no
Job, lists none); the lists select by katuna's labels the trials named, so the retained Jobs and
pods of ended trials are not read again and again. An
attempt whose pods carry no katuna label (a TrainJob's), or whose lists could not be made, is
read one by one as before. The lists belong to the block's context (:mod:`contextvars`): the
thread that opened it, and threads it runs work in with a copy of its context (the reads of the
last lines of many trials' logs at once, :mod:`functions.handlers.tail_reads`), share them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.core import workload_pods
from functions.core.cluster import TRIAL_LABEL, UID_LABEL
from functions.core.job import is_job
from functions.core.launch import TrialLaunch
from functions.core.workload_labels import selector_chunks, trials_selector

log = logging.getLogger("katuna.kubernetes")

Key = tuple[str, str, int]
"""(namespace, study uid, trial number)."""


class _Lists:
    """The trials read together, in chunks a selector names, and of each kind (``jobs``,
    ``pods``) listed so far the objects by trial and the trials whose list was made."""

    def __init__(self, chunks: list[tuple[str, list[TrialLaunch]]]) -> None:
        self.chunks = chunks
        self.trials = {(namespace, launch.uid, launch.number) for namespace, chunk in chunks for launch in chunk}
        self.made: dict[str, tuple[dict[Key, list[Any]], set[Key]]] = {}
        self.lock = threading.Lock()
        """Held while a list is made: threads sharing the lists make each once."""


class Together:
    """Lists of running attempts' Jobs and pods, made once for a loop over them, per context."""

    def __init__(self, batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
        self._batch = batch
        self._core = core
        self._lists: ContextVar[_Lists | None] = ContextVar(f"katuna_together_{id(self)}", default=None)

    @contextmanager
    def reading(self, launches: Sequence[TrialLaunch], namespace_of: Callable[[TrialLaunch], str]) -> Iterator[None]:
        """Within the block, :meth:`job` and :meth:`pods` answer for the ``launches`` (of one
        study) that katuna's labels select, from lists made at their first read."""
        token = self._lists.set(_Lists(selector_chunks([launch for launch in launches if _labelled(launch)],
                                                       namespace_of)))
        try:
            yield
        finally:
            self._lists.reset(token)

    def job(self, namespace: str, launch: TrialLaunch) -> tuple[bool, Any | None]:
        """Whether the launch's Job was listed, and the Job of its name listed (None if none)."""
        jobs = self._listed("jobs", namespace, launch)
        if jobs is None:
            return False, None
        return True, next((job for job in jobs if job.metadata.name == launch.job_name), None)

    def pods(self, namespace: str, launch: TrialLaunch, selector: str) -> list[Any] | None:
        """The listed pods of the launch's trial that ``selector`` (equality terms) selects;
        None when they were not listed."""
        pods = self._listed("pods", namespace, launch)
        if pods is None:
            return None
        terms = dict(term.split("=", 1) for term in selector.split(","))
        return [pod for pod in pods if _has(pod.metadata.labels if pod.metadata else None, terms)]

    def _listed(self, kind: str, namespace: str, launch: TrialLaunch) -> list[Any] | None:
        """The listed objects of ``kind`` of the launch's trial, the lists made now if not yet;
        None when the trial is not read together, or its list could not be made."""
        lists = self._lists.get()
        key = (namespace, launch.uid, launch.number)
        if lists is None or key not in lists.trials:
            return None
        with lists.lock:
            if kind not in lists.made:
                lists.made[kind] = self._list(kind, lists.chunks)
            by_trial, covered = lists.made[kind]
        return by_trial.get(key, []) if key in covered else None

    def _list(self, kind: str, chunks: list[tuple[str, list[TrialLaunch]]]) -> tuple[dict[Key, list[Any]], set[Key]]:
        """The objects of ``kind`` of the chunks' trials, by trial, and the trials listed; a
        chunk whose list fails is left to be read one by one."""
        read = self._batch.list_namespaced_job if kind == "jobs" else self._core.list_namespaced_pod
        by_trial: dict[Key, list[Any]] = {}
        covered: set[Key] = set()
        for namespace, chunk in chunks:
            try:
                items = read(namespace, label_selector=trials_selector(chunk)).items
            except (ApiException, HTTPError) as exc:
                log.warning("listing the %s of %d running trials together in %s: %s; each is read alone",
                            kind, len(chunk), namespace, exc)
                continue
            for item in items:
                labels = (item.metadata.labels if item.metadata else None) or {}
                by_trial.setdefault((namespace, labels[UID_LABEL], int(labels[TRIAL_LABEL])), []).append(item)
            covered.update((namespace, launch.uid, launch.number) for launch in chunk)
        return by_trial, covered


def _labelled(launch: TrialLaunch) -> bool:
    """Whether the attempt's workload is a Job whose pods carry katuna's labels, as the lists select them."""
    return is_job(launch) and (launch.trial_spec is None or workload_pods.labels_pods(launch.trial_spec))


def _has(labels: Mapping[str, str] | None, terms: Mapping[str, str]) -> bool:
    """Whether ``labels`` hold every ``terms`` key with its value."""
    return all((labels or {}).get(key) == value for key, value in terms.items())
