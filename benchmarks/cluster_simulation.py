"""The cost benchmark's cluster: katuna's runtime against the stand-ins on a simulated clock, with
this module playing Knative's parts (``benchmarks/cluster_cost.py`` runs the policies on it).

:class:`Simulation` delivers each event to the handlers (retrying what fails for now), sends every
change of a trial Job as the ApiServerSource would, and ticks as the PingSource does once a
simulated minute (``knative/pingsource.yaml``: ``* * * * *``). It also keeps, from the same
changes, when each study's trial Jobs were created, when each trial first ran and when each ended
(:class:`Timeline`), so that a run says where its time went.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from standins import Cloud, KubeStub, Run, SimulatedContainers

from functions.core.cluster import STUDY_LABEL, TRIAL_LABEL
from functions.core.errors import TemporaryError
from functions.core.events import Event, pool_check
from functions.core.records import StudyRecord
from functions.core.store_port import has_study
from functions.core.template_sources import load
from functions.dispatch import Dispatcher
from functions.runtime import Runtime
from functions.settings import Settings

PRICES = {"gke": {"machine": "e2-standard-4", "on_demand": 0.134, "spot": 0.040},
          "eks": {"machine": "m5.xlarge", "on_demand": 0.192, "spot": 0.076}}
NAMESPACE = "katuna"
MAX_SIMULATED = 86400.0
"""Simulated seconds after which a run that has not ended is an error, not a wait."""
TICK_SECONDS = 60.0
"""The PingSource's period: provision and reconcile look at the studies once a simulated minute."""
RETRY_SECONDS = 10.0
"""When an event whose handling failed for now is delivered again (a Trigger's retry)."""
BOOT_SECONDS = 210.0
"""From the autoscaler's request to a Ready node: the middle of its FAQ's 3 to 4 minutes on GCE."""
IDLE_SECONDS = 600.0
"""The autoscaler's ``--scale-down-unneeded-time``, and its ``--scale-down-delay-after-add``."""
JOB_BACKOFF_SECONDS = 10.0
"""The Job controller's first delay before it replaces a failed pod (``DefaultJobPodFailureBackOff``),
doubled with each failure of the Job's: a preempted pod's too, which the ``podFailurePolicy``
ignores (Kubernetes 1.28 on, kubernetes/kubernetes#119434)."""
SOURCE_CHANGES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}
"""The ApiServerSource's event type for each kind of change it watches."""
ENDED = ("SuccessCriteriaMet", "Complete", "FailureTarget", "Failed")
"""The conditions of a Job that ended, as katuna reads its end: Kubernetes 1.31 on writes the
interim ``SuccessCriteriaMet`` or ``FailureTarget`` first, ``Complete`` or ``Failed`` once none
of its pods is terminating."""


@dataclass(frozen=True)
class Reference:
    """The study's size: trials, how many at once, and their run times (seconds)."""

    trials: int = 500
    parallelism: int = 100
    shortest: float = 180.0
    longest: float = 360.0
    seed: int = 18

    def seconds(self, number: int) -> float:
        """Trial ``number``'s run time, the same under every policy."""
        return random.Random(self.seed * 100_003 + number).uniform(self.shortest, self.longest)

    def container(self, pod: dict) -> Run:
        """How a trial's container runs: its trial's run time, then its loss, ``(x - 2)^2``. It
        handles no SIGTERM, as a training script run as its container's PID 1 does not (the
        kernel gives PID 1 no signal it has no handler for): its pod stopped, it runs on to its
        end or, once the grace period is over, to SIGKILL, killed with nothing printed."""
        number = int(pod["metadata"]["labels"][TRIAL_LABEL])
        container = pod["spec"]["containers"][0]
        x = float([*container.get("command", []), *container.get("args", [])][-1])
        return Run(self.seconds(number), f"loss={(x - 2.0) ** 2!r}\n", term_seconds=None)


def definition(ref: Reference, cloud: str, capacity: str | None, name: str = "reference",
               shared_pool: str | None = None) -> dict[str, Any]:
    """The reference study, named ``name``, on a pool of ``capacity`` machines (no pool: the fixed
    nodes): the study's own pool, or the pool ``shared_pool`` that studies share."""
    study: dict[str, Any] = {
        "name": name, "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": ref.seed}, "parallelism": ref.parallelism,
        "maxTrials": ref.trials,
        "trialTemplate": {"image": "python:3.12", "command": ["train", "${trialParameters.x}"],
                          "resources": {"cpu": "3", "memory": "4Gi"}},
    }
    if capacity is not None:
        machine = {"machineType": PRICES[cloud]["machine"]} if cloud == "gke" else {
            "instanceTypes": [PRICES[cloud]["machine"]]}
        shared = {} if shared_pool is None else {"name": shared_pool, "shared": True}
        study["nodePool"] = {"provider": cloud, "capacity": capacity, "maxNodes": ref.parallelism, **machine,
                             **shared}
    return study


@dataclass
class Timeline:
    """One study's trials as the cluster saw them: when each Job was created, when the first
    container ran, when each Job ended (simulated seconds since the epoch)."""

    created: list[float] = field(default_factory=list)
    ended: dict[str, float] = field(default_factory=dict)
    first_running: float | None = None

    def first_trial(self, submitted: float) -> float:
        """Seconds from the submission to the first trial's container running."""
        return (self.first_running if self.first_running is not None else submitted) - submitted

    def launch_wait(self, parallelism: int) -> float:
        """The longest a trial slot freed by a trial's end waited for katuna's next Job: the k-th
        end (in time) frees the slot of the ``parallelism + k``-th Job. 0 when every next Job was
        created at the moment of the end that made room for it, with no tick waited for."""
        created, ended = sorted(self.created), sorted(self.ended.values())
        waits = [created[parallelism + k] - end for k, end in enumerate(ended) if parallelism + k < len(created)]
        return max(waits, default=0.0)


class Simulation:
    """One policy's run: the stand-ins on a simulated clock, katuna's runtime, the events in flight."""

    def __init__(self, folder: Path, cloud: Cloud, ref: Reference) -> None:
        self.clock = cloud.clock
        self.kube = KubeStub(namespaces=(NAMESPACE,), pools=cloud.pools, resize=cloud.resize,
                             boot_seconds=BOOT_SECONDS, idle_seconds=IDLE_SECONDS, clock=self.clock)
        self.kube.backoff_seconds = JOB_BACKOFF_SECONDS
        self.kube.kubelets.containers = SimulatedContainers(self.clock, ref.container)
        self.autoscaler = self.kube.autoscaler
        self.autoscaler.interruptions = cloud.interruptions
        self.settings = Settings.from_env({"KATUNA_DB": str(folder / "katuna.db"), "KATUNA_EXECUTOR": "kubernetes",
                                           "KATUNA_K8S_API": self.kube.url, "KATUNA_K8S_NAMESPACE": NAMESPACE,
                                           **cloud.settings})
        self.runtime = Runtime(self.settings, clock=self.clock.time)
        self.deps = self.runtime.deps()
        self.dispatcher = Dispatcher(self.deps)
        self.queue: deque[Event] = deque()
        self.retries: list[tuple[float, Event]] = []
        self.seen = self.kube.history.version
        self.next_tick = self.clock.now
        self.events = 0
        self.timelines: dict[str, Timeline] = {}
        """Each study's :class:`Timeline`, by its name."""

    def submit(self, study: dict[str, Any]) -> StudyRecord:
        """Submit the study as ``POST /studies`` does: read it, then :meth:`Runtime.submit` (the
        service's checks, the access review asked of the cluster, the store, and
        ``study.created`` put on the runtime's queue, which :meth:`_sources` takes it from)."""
        spec, definition = load(study, self.runtime.templates, self.settings.limits, partial(has_study, self.deps.store))
        record, _ = self.runtime.submit(spec, definition)
        return record

    def until(self, done: Callable[[], bool]) -> None:
        """Move the clock from one due moment to the next, settling each, until ``done``."""
        while True:
            self.settle()
            if done():
                return
            if self.clock.now - self.clock.start > MAX_SIMULATED or not self.clock.advance():
                raise RuntimeError(f"stuck at {(self.clock.now - self.clock.start) / 3600:.2f} simulated hours")

    def settle(self) -> None:
        """Step the cluster and deliver events until nothing more happens at this moment."""
        while True:
            self.kube.settle()
            self._sources()
            if not self.queue:
                return
            while self.queue:
                self._deliver(self.queue.popleft())

    def _sources(self) -> None:
        """The PingSource's tick when due, the ApiServerSource's events of the trial Jobs that
        changed (those labelled with a study, in katuna's namespace, as its manifest selects), the
        retries that are due, and what the runtime put on its queue (a submission's ``study.created``)."""
        if self.clock.now >= self.next_tick:
            self.queue.append(pool_check())
            self.next_tick = self.clock.now + TICK_SECONDS
            self.clock.wake_at(self.next_tick)
        with self.kube.lock:
            changes = self.kube.changes_since(self.seen)
            self.seen = self.kube.history.version
        for change in changes:
            labels = change.object["metadata"].get("labels") or {}
            if change.namespace != NAMESPACE or STUDY_LABEL not in labels or change.resource not in ("jobs", "pods"):
                continue
            self._note(change.type, change.resource, change.object, labels[STUDY_LABEL])
            if change.resource == "jobs":
                self.queue.append(Event(f"dev.knative.apiserver.resource.{SOURCE_CHANGES[change.type]}",
                                        change.object))
        due = [event for when, event in self.retries if when <= self.clock.now]
        self.retries = [(when, event) for when, event in self.retries if when > self.clock.now]
        self.queue.extend(due)
        while (delivery := self.runtime.queue.take(timeout=0)) is not None:
            self.queue.append(delivery.event)
            self.runtime.queue.done(delivery)

    def _note(self, change: str, resource: str, obj: dict, study: str) -> None:
        """Keep the moments of the study's timeline this change of a Job or pod shows."""
        timeline = self.timelines.setdefault(study, Timeline())
        status, name = obj.get("status") or {}, obj["metadata"]["name"]
        if resource == "pods":
            if timeline.first_running is None and status.get("phase") == "Running":
                timeline.first_running = self.clock.now
        elif change == "ADDED":
            timeline.created.append(self.clock.now)
        elif name not in timeline.ended and any(c["type"] in ENDED and c["status"] == "True"
                                                for c in status.get("conditions") or []):
            timeline.ended[name] = self.clock.now

    def _deliver(self, event: Event) -> None:
        self.events += 1
        try:
            self.queue.extend(self.dispatcher.deliver(event))
        except TemporaryError:
            self.retries.append((self.clock.now + RETRY_SECONDS, event))
            self.clock.wake_at(self.clock.now + RETRY_SECONDS)

    def released(self, record: StudyRecord) -> bool:
        """The study ended, and katuna saw the last node of its pool go (a fixed pool stays)."""
        current = self.deps.store.get_study(record.name)
        use = self.deps.store.pool_use(record.uid)
        return current.terminal and (use is None or not use.watching(self.clock.now))

    def machines_running(self) -> int:
        """The machines the cloud bills now: those created and not yet gone."""
        return sum(1 for machine in self.autoscaler.machines.values() if machine.removed is None)

    def close(self) -> None:
        self.runtime.close()
        self.deps.store.close()
        self.kube.close()
