"""What the tick's passes over every stored study read of each: a few fields, never its spec.

The tick's check of the study resources and its sweep of the trial workloads no study wants
(:func:`functions.handlers.resource_check.resource_events`, :func:`functions.handlers.strays.sweep`)
look at every stored study, the ended ones among them, of which a long-lived service keeps
thousands. Rebuilding each one's spec at every period made their cost grow with every study that
ended; a brief holds only what they read of it, taken by the store from the stored row
(:meth:`~functions.core.store_port.Store.study_briefs`). A study they must look at closer (one
whose resource's status they compare with the store's) is read whole, a bounded few a tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.records import TERMINAL_STATUSES, StudyRecord


@dataclass(frozen=True)
class StudyBrief:
    """A stored study as the tick's passes over every study see it."""

    name: str
    uid: str
    status: str
    completed_at: float | None = None
    origin: Mapping[str, Any] | None = None
    """The cluster resource the study follows, as :attr:`StudyRecord.origin`."""
    runs_on: str | None = None
    """Where its trials run, as :attr:`StudyRecord.runs_on`."""
    namespace: str | None = None
    """Its trials' namespace (``kubernetes.namespace``; None: the executor's own)."""
    trial_kind: Mapping[str, str] | None = None
    """The ``apiVersion`` and ``kind`` of its ``trialTemplate.trialSpec`` (None: a Job katuna renders)."""
    retain: bool = False
    """Whether its trials' workloads are kept once they end (``trialTemplate.retain``)."""
    algorithm: str = ""
    """Its sampler's name."""
    node_pool: tuple[str, str] | None = None
    """The provider and name of the node pool it asks for, if any."""
    whole: StudyRecord | None = field(default=None, compare=False, repr=False)
    """The study read whole, where the store read it so (one not ended): the tick's reconciling
    takes it from here rather than read the running studies a second time."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def brief_of(record: StudyRecord) -> StudyBrief:
    """The brief of a study read whole: what the store's would be."""
    spec = record.spec
    trial_spec = spec.trial_template.trial_spec
    pool = spec.node_pool
    return StudyBrief(
        name=record.name, uid=record.uid, status=record.status, completed_at=record.completed_at,
        origin=record.origin, runs_on=record.runs_on, namespace=spec.kubernetes.namespace,
        trial_kind=None if trial_spec is None else kind_of(trial_spec.get("apiVersion"), trial_spec.get("kind")),
        retain=spec.trial_template.retain, algorithm=spec.algorithm.name,
        node_pool=None if pool is None else (pool.provider, pool.name), whole=record)


def kind_of(api_version: Any, kind: Any) -> dict[str, str]:
    """A ``trialSpec``'s ``apiVersion`` and ``kind``, those that are text."""
    given = {"apiVersion": api_version, "kind": kind}
    return {key: value for key, value in given.items() if isinstance(value, str)}
