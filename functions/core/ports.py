"""The ports: what handlers need from the outside world, as small Protocols.

Adapters implement them (``functions.adapters``); handlers and tests depend only on these.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import optuna

from functions.core.errors import StudyNotFound
from functions.core.events import Event
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.log_keep import Kept, LogRead
from functions.core.log_rotation import LogStart
from functions.core.metrics import Observation
from functions.core.node_hours import NodeSeen
from functions.core.nodepool import NodePool, OperationStatus, PoolChange, PoolStatus
from functions.core.records import Counts, PoolUse, StudyRecord, TrialQuery, TrialRecord

if TYPE_CHECKING:
    from functions.core.disruptions import Disruption, LostPods
    from functions.core.resources import Ref


class Store(Protocol):
    """Studies, trials, observations, processed events and Optuna's state, in one transaction scope."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or not at all (Optuna's writes included)."""

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Call ``effect`` once the transaction under way commits (at once outside one), never
        if it rolls back: an effect on the world that follows a decision is made only once the
        decision is stored (:mod:`functions.handlers.stopping`)."""

    def await_writers(self) -> None:
        """Return once no other process or thread is writing: a read after it sees every
        transaction that was under way when it was called, committed (or rolled back)."""

    def optuna_storage(self) -> optuna.storages.BaseStorage:
        """Optuna's storage of every study, for what wants them all (each is read on first use)."""

    def optuna_stream(self, name: str) -> optuna.storages.BaseStorage:
        """Optuna's storage of the study ``name`` alone, as :meth:`optuna_study` uses it: ids
        read from it are good in it only. ``KeyError`` when Optuna has no such study."""

    def optuna_history(self, name: str) -> int:
        """How many trials Optuna's storage holds for the study ``name`` (0 for none): what any
        process that serves it loads (:attr:`functions.core.limits.Limits.history`)."""

    def optuna_version(self, name: str) -> int:
        """How many records the study's Optuna journal holds (0 for none), each a value or more
        of what a process that serves it loads (:attr:`functions.core.limits.Limits.history_cells`)."""

    def optuna_study(self, name: str, directions: Sequence[str]) -> optuna.Study:
        """Optuna's view of a study, over its own storage (:meth:`optuna_stream`), created on first use."""

    def add_study(self, record: StudyRecord) -> StudyRecord:
        """Store a new study, or return the stored one when the definition is identical.

        Raises ``StudyConflict`` when the name holds a different definition.
        """

    def get_study(self, name: str) -> StudyRecord:
        """Raises ``StudyNotFound``."""

    def list_studies(self) -> list[StudyRecord]: ...

    def unended_studies(self) -> list[StudyRecord]:
        """The studies not ended (running, oldest first): a few, where a long-lived service
        stores thousands."""

    def studies_page(self, limit: int, after: int | None = None, newest_first: bool = False) -> list[tuple[int, StudyRecord]]:
        """Up to ``limit`` studies after the one keyed ``after``, each with its key (keys rise in
        the order studies were stored), oldest first or ``newest_first``."""

    def claim_runner(self, name: str, uid: str, runner: str, alive: Callable[[str], bool]) -> str | None:
        """Name ``runner`` as the process that runs the study, unless another that ``alive``
        says lives is named (returned, nothing changed); of two claiming at once, one is named."""

    def release_runner(self, runner: str) -> None:
        """Give up ``runner``'s claims, as its runner closes: another process may run those
        studies, and each still tells that the process that ran it is gone."""

    def update_study(self, name: str, **fields: Any) -> None:
        """Change fields of the stored record (``spec`` replaces the definition's normal form)."""

    def delete_study(self, name: str, uid: str | None = None) -> None:
        """Remove the study (that very study, given its ``uid``: ``StudyNotFound`` when another
        now holds the name), its trials and observations, and Optuna's twin."""

    def count_failure(self, name: str, uid: str) -> int | None:
        """Count one more failed handling of the study's events: the count so far, or None when
        no study ``name`` has that ``uid``."""

    def add_trial(self, trial: TrialRecord) -> None: ...

    def get_trial(self, study: str, number: int) -> TrialRecord | None: ...

    def update_trial(self, study: str, number: int, **fields: Any) -> None: ...

    def log_read(self, study: str, number: int) -> LogRead:
        """How far the trial's running log was read, as last stored (nothing, for a trial that
        is not stored)."""

    def set_log_cursor(self, study: str, number: int, cursor: Cursor) -> None:
        """Store how far the reports in the trial's running log were handled. Like
        :meth:`set_log_kept`, no change of the trial to report (:meth:`trial_changes`);
        ``StudyNotFound`` for a trial that is not stored."""

    def set_log_kept(self, study: str, number: int, kept: Kept) -> None:
        """Store what was kept of the trial's running log (replacing an earlier attempt's)."""

    def keep_tail(self, study: str, number: int, attempt: int, tail: KeptTail) -> None:
        """Keep the last lines of the attempt's log, read as katuna stopped it (one per attempt):
        a stop made again, once the pods are gone, reads none, and leaves lines kept before."""

    def kept_tail(self, study: str, number: int, attempt: int) -> KeptTail | None:
        """What was kept of the attempt's log as katuna stopped it; None when it kept nothing."""

    def lost_pods(self, study: str, number: int) -> LostPods:
        """The pods of the trial's attempt seen disrupted, as last stored (none, for a trial
        that is not stored)."""

    def set_lost_pods(self, study: str, number: int, lost: LostPods) -> None:
        """Store the pods of the trial's attempt seen disrupted; like :meth:`set_log_cursor`, no
        change of the trial to report; ``StudyNotFound`` for a trial that is not stored."""

    def mark_stopping(self, study: str, numbers: Sequence[int]) -> None:
        """Mark the trials' workloads as still to be stopped."""

    def claim_stopping(self, study: str, numbers: Sequence[int]) -> list[int]:
        """Clear the marks of the trials ``numbers``, returning those that were marked (in a
        transaction: of two stops racing for a mark, one claims it)."""

    def stopping_trials(self, limit: int, study: str | None = None) -> list[tuple[str, int]]:
        """Up to ``limit`` (study, trial number) whose workloads are still to be stopped (of
        ``study`` alone, when given)."""

    def discard_trial(self, study: str, number: int) -> None:
        """Forget a trial that was asked for and never started: it is no trial of the study
        anywhere (listings, counts, ``maxTrials``), and no sampler learns from it."""

    def trials(self, study: str, states: Sequence[str] = ()) -> list[TrialRecord]: ...

    def count_trials(self, study: str) -> Counts:
        """The trials in each state (``stopped_at_end`` left 0: see :meth:`count_stopped_at_end`)."""

    def count_running(self) -> int:
        """The trials running now, across every study."""

    def count_stopped_at_end(self, study: str) -> int:
        """Of the study's pruned trials, those stopped because it ended: counted apart, as only a
        Katib Experiment's status tells them (``trialsKilled``), not every trial's end."""

    def trial_changes(self, study: str, after: int) -> tuple[list[TrialRecord], int]:
        """The study's trials written (added or updated) since its trial change ``after`` (0:
        all of them), by number, and its latest trial change (``after`` when none is later)."""

    def trials_reported(self, study: str) -> int:
        """The trial change up to which the study's trials were reported (0: none yet)."""

    def set_trials_reported(self, study: str, change: int) -> None:
        """Record that the study's trials were reported up to ``change`` (a later one stays)."""

    def trials_after(self, study: str, after: int | None, limit: int) -> Generator[TrialRecord, None, None]:
        """Up to ``limit`` of the study's trials numbered above ``after`` (from the first when
        None), by number, read as they are taken."""

    def query_trials(self, study: str, query: TrialQuery) -> tuple[list[TrialRecord], int]:
        """One page of the trials that match ``query``, and how many match in all."""

    def matching_trials(self, study: str, query: TrialQuery, page: int = 1000) -> Generator[TrialRecord, None, None]:
        """Every trial that matches ``query``, in its order, read a page at a time: a whole
        export's cost is one sort, whatever the study's size."""

    def best_trials(self, study: str, limit: int) -> list[TrialRecord]:
        """Completed trials, best first by the first objective; none of a study not stored (one
        another process deleted), as it has no trials to count."""

    def completed_values(self, study: str) -> list[tuple[int, list[float]]]:
        """The number and objective values of each completed trial that has values, by number."""

    def trials_marker(self, study: str) -> Hashable:
        """A cheap value that differs whenever a write could have changed the study's completed
        trials or their values (equal markers: the same :meth:`completed_values`)."""

    def add_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation]) -> None:
        """Replaces any observations stored earlier for the same attempt."""

    def append_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation],
                            keep: int) -> None:
        """Add observations after those stored for the attempt, then keep at most ``keep`` of
        them: the first half and the latest (as :class:`~functions.core.metrics.Summary` keeps them)."""

    def observations(self, study: str, number: int, attempt: int | None = None) -> list[Observation]:
        """The trial's observations in order (of one attempt, when given)."""

    def add_dead_letter(self, event: Event, reason: str) -> None:
        """Keep an event that could not be delivered, with why."""

    def dead_letters(self, limit: int = 100, before: int | None = None) -> Generator[dict[str, Any], None, None]:
        """Up to ``limit`` dead letters older than the one numbered ``before`` (the newest when
        None), newest first, each with its number (``id``), read as they are taken."""

    def processed(self, event_id: str, handler: str) -> list[Event] | None:
        """The events a handler emitted for this event id, or None if it never handled it."""

    def record_processed(self, event_id: str, handler: str, emitted: Sequence[Event]) -> None: ...

    def pool_use(self, uid: str) -> PoolUse | None:
        """The node-pool use of the study with this uid, if it asked for a pool."""

    def save_pool_use(self, use: PoolUse) -> None:
        """Store a node-pool use, replacing the earlier version of it."""

    def pool_uses(self, phases: Sequence[str] = (), pool: str | None = None,
                  released_after: float | None = None) -> list[PoolUse]:
        """Node-pool uses in the given phases (all if none), of one pool if named, and (if a
        time is given) not released, or released after it."""


def stored_study(store: Store, name: str, uid: str | None = None) -> StudyRecord | None:
    """The study named ``name`` as ``store`` holds it now (with ``uid``, only while it is that
    very study, not one of its name made since); None when it holds none."""
    try:
        found = store.get_study(name)
    except StudyNotFound:
        return None
    return found if uid is None or found.uid == uid else None


def has_study(store: Store, name: str, uid: str | None = None) -> bool:
    """Whether ``store`` holds a study named ``name`` (with ``uid``, that very study)."""
    return stored_study(store, name, uid) is not None


class Place(NamedTuple):
    """Where a study's trials run on a cluster, and as what: its namespace (None: the
    executor's own) and its ``trialSpec`` (None: a Job katuna renders)."""

    namespace: str | None
    trial_spec: Mapping[str, Any] | None


class Strays(Protocol):
    """What the store wants of the trial workloads a sweep finds (:class:`functions.handlers.strays.Wanted`)."""

    def stray(self, study: str, uid: str, number: int, attempt: int) -> bool:
        """Whether the attempt runs though the store, which holds a study of its name, no longer wants it."""

    def retained(self, study: str, uid: str) -> bool:
        """Whether the study is stored under ``uid`` and keeps its trials' Jobs (``retain``)."""

    def ended(self, study: str, uid: str, workload: Mapping[str, Any]) -> bool:
        """Whether a trial workload (not a Job) has ended, by the conditions of the study stored
        under ``uid`` (else its kind's)."""


class Executor(Protocol):
    """Runs trial attempts and reports each end as a ``trial.finished`` event."""

    def launch(self, launch: TrialLaunch) -> None:
        """Start the attempt; launching one that exists already does nothing."""

    def exists(self, launch: TrialLaunch) -> bool:
        """Whether the attempt has (or had) a run that is not lost."""

    def stop(self, launch: TrialLaunch, keep: bool = False) -> None:
        """Stop every attempt of the trial; no ``trial.finished`` follows. With ``keep`` (the
        template's ``retain``: a trial early-stopped, or stopped as its study ended) its
        workload is kept where the executor has one to keep, stopped."""

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Stop every attempt of these trials, all of one study, as :meth:`stop` stops each: a
        study's end stops all it runs, in as few calls as the executor can (a handler makes
        them inside its transaction)."""

    def last_lines(self, launch: TrialLaunch, keep: bool = False) -> KeptTail | None:
        """The last lines of the attempt's log, to keep in the store before :meth:`stop_trials`
        stops it (with ``keep``, keeping its workload), where that stop loses its log (a cluster
        trial's pods go with their Job); None where the log outlives the stop. A read that fails
        keeps no line (a :class:`~functions.core.kept_tails.KeptTail` with no text), and never
        holds the stop back."""

    def stop_strays(self, wanted: Strays, places: Collection[Place]) -> None:
        """Stop each attempt this executor runs (on a cluster: each trial workload still running
        in the ``places`` the stored studies' trials run in) that ``wanted`` calls a stray; one
        of a study it says retains its Jobs is kept, stopped, where there is a Job to keep
        (:mod:`functions.handlers.strays`)."""

    def lingers(self, launch: TrialLaunch) -> bool:
        """Whether the ended attempt's workload still runs pods its end left (an operator that
        leaves them: a PyTorchJob's ``cleanPodPolicy`` is ``None`` by default)."""

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """A block within which the executor's reads of these running attempts (of one study:
        :meth:`poll`, a look, a running log) may be answered from one read of them all, made as
        it begins, where one read each would cost a request each."""

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The ``trial.finished`` of the attempt if it ended, for executors that learn it by
        asking; executors that report ends themselves answer None."""

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        """The ``trial.finished`` of an attempt no process runs any more (:meth:`exists` said so)
        that is proven to have ended on its own before its end was handled (its exit recorded),
        to be handled from its output when its study resumes; None when nothing proves it ended
        so (the run was lost)."""

    def running(self, study: str) -> int:
        """How many attempts of the study this process is still waiting for."""

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """The attempt's output (stdout and stderr) as lines."""

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        """Lines of a file the attempt wrote (the file metrics collector); none if it is absent.
        For a directory (the tfevent collector), the scalars of the TensorFlow event files under
        it, one JSON object a line (:func:`functions.core.tfevents.directory_records`)."""

    def stop_reads(self) -> None:
        """End every read of an attempt's output or files under way, and refuse any later one,
        with a :class:`~functions.core.errors.Stopping`: the process is stopping, and must not
        wait for a handler to read a log of hundreds of megabytes to its end. That handler's
        transaction is rolled back, so the attempt's end is handled again later."""


class Look(NamedTuple):
    """What an executor found of an attempt: its ``trial.finished`` if it ended; while it has not,
    why something other than katuna holds it back from running, if something does."""

    finished: Event | None
    held: str | None = None
    lost: Mapping[str, Disruption] | None = None
    """The pods of the attempt lost to disruptions, by uid: those of :attr:`TrialLaunch.lost_pods`
    and those seen now, to be kept with the trial."""
    running: frozenset[str] | None = None
    """The uids of the attempt's pods running now, to be kept with the trial (None: not looked at)."""


class RunnerClaims(Protocol):
    """This process, against the runner a study's row names (``StudyRecord.runner``: a ``katuna
    run`` of it), where trials are processes of this machine: a process on the database leaves a
    study to the live process named there, so two never run its trials each as lost to the other."""

    @property
    def identity(self) -> str:
        """How a claim names this process (``pid:start time``)."""

    def other(self, claim: str | None) -> int | None:
        """The pid of the live process other than this one that ``claim`` names, else None."""


class Admissions(Protocol):
    """Where attempts wait to be admitted after they are launched: a cluster whose admission
    controller (Kueue) keeps each new trial Job suspended until a queue admits it."""

    def look(self, launch: TrialLaunch) -> Look:
        """The attempt's end, as :meth:`Executor.poll` reads it, and while it has not ended, why
        it is held back from running (None when it is not)."""


class RunningLogs(Protocol):
    """Running trials' logs, read a piece at a time: where the executor cannot watch a trial's
    output as it is written (Jobs on a cluster), its progress is read from them."""

    def running_log(self, launch: TrialLaunch, after: Cursor | None, limit_bytes: int) -> RunningLog | None:
        """At most ``limit_bytes`` of the attempt's running log, each line behind the time it was
        written: from the start, or, when ``after`` is of the same pod, from about the time of
        its last line. None when no pod of the attempt runs."""

    def stamped_output(self, launch: TrialLaunch) -> Iterator[tuple[str, Iterator[str]]]:
        """The ended attempt's output as :meth:`Executor.output` reads it, each pod's apart: the
        pod's uid and its lines (read before the next pod's), each behind the time it was written."""

    def counted_pods(self, launch: TrialLaunch) -> frozenset[str]:
        """The uids of the attempt's pods whose output is the attempt's now: not a disrupted pod
        that a later one replaced, which ran the trial again from its start. What was kept of the
        log of a pod not among them is of a run lost (:mod:`functions.core.log_keep`)."""

    def log_start(self, launch: TrialLaunch) -> LogStart | None:
        """Where the log of the attempt's last run begins, to tell whether it was rotated
        (:mod:`functions.core.log_rotation`); None when no container of the attempt started."""


class NodePools(Protocol):
    """One cluster's node pools in one cloud. Requests return at once: a long-running change
    comes back as an operation to :meth:`check` later, never waited for.

    Raises ``NodePoolFailed`` when the cloud refuses for good (bad machine type, quota,
    permission) and ``TemporaryError`` for throttling, 5xx answers and an unreachable API.

    ``request_id`` names one logical change (:attr:`functions.core.records.PoolUse.request_id`):
    the same when that change is asked for again (a redelivered event, a retry after a timeout),
    new for the next one. A cloud whose calls take an idempotency token (EKS) derives it from
    that id; without one, each call is a change of its own. GKE's calls take none.
    """

    provider: str

    def ensure(self, pool: NodePool, owner: str | None = None, *, request_id: str | None = None) -> PoolChange:
        """Create the pool if it is missing (labelled with ``owner``, a study uid, when given);
        raise its autoscaling maximum if it is lower than ``pool.max_nodes``. A pool that exists
        already is success once it passes :func:`functions.core.nodepool.claim`
        (``NodePoolFailed`` with that problem otherwise)."""

    def scale_back(self, pool: NodePool, adopted: Mapping[str, Any] | None = None, *,
                   request_id: str | None = None) -> PoolChange:
        """Give an adopted pool back its autoscaling settings as found (``adopted``, from
        :class:`PoolChange`); without them, let the autoscaler go down to 0 nodes (minimum 0)
        and up to ``pool.max_nodes`` (lowering a maximum an earlier study raised)."""

    def delete(self, name: str) -> PoolChange:
        """Delete the pool; deleting one that is absent is success."""

    def empty(self, name: str) -> PoolChange:
        """Remove the pool's nodes now, leaving the pool (a ``shared`` pool katuna made, once no
        running study uses it): resize it to 0 nodes, its trials' pods drained, rather than
        leave each node to the cluster autoscaler's unneeded time. An absent pool, or a cloud
        where katuna does not resize a pool the autoscaler sizes (EKS), is no change and no
        operation."""

    def check(self, operation: str) -> OperationStatus:
        """How an operation returned earlier stands now."""

    def describe(self, name: str) -> PoolStatus | None:
        """The pool's state and limits, or None when it does not exist."""


class Resources(Protocol):
    """Study resources on a Kubernetes API: read and list them, write their status."""

    namespace: str | None
    """The namespace whose study resources the service watches; None where there is no cluster
    to ask (no API address configured, and not running in one)."""

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        """The resource as the API holds it now, or None when there is none."""

    def write_status(self, ref: Ref, uid: str, status: Callable[[], Mapping[str, Any]]) -> bool:
        """Write what ``status()`` computes (whole; None values left out) as the status of the
        resource with this ``uid``, computed after the resource was read and written only over
        that version (computed again when another write came between); False when that resource
        is gone (deleted, or replaced by another of the same name)."""

    def list(self, namespace: str) -> list[Mapping[str, Any]]:
        """Every study resource (Study and Experiment) in ``namespace`` as the API holds them
        now, each with its ``apiVersion`` and ``kind``."""

    katib_api: bool
    """Whether Katib's own kinds (``kubeflow.org``, served by the overlay) are watched too."""

    def list_katib(self) -> Sequence[Mapping[str, Any]]:
        """Every Katib Experiment and StudyJob in every namespace (none where ``katib_api`` is off)."""

    def put_trials(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> None:
        """Make the Katib Trial resources of the Experiment at ``owner`` what ``trials`` say
        (each a resource with its ``status``, owned by the Experiment): write the status of each,
        creating the missing ones and replacing those an earlier Experiment of the same name
        left; the Experiment's other Trials are left as they are."""

    def delete_trials(self, owner: Ref, uid: str, names: Sequence[str]) -> None:
        """Delete the Katib Trial resources ``names`` of the Experiment at ``owner`` with ``uid``;
        one that is not there, or is not that Experiment's, is no error and is left."""

    def read_config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The ``data`` of the ConfigMap ``name`` in ``namespace`` (a trial template held in one),
        or None when there is none. Raises ``ConfigMapForbidden``
        (:mod:`functions.core.template_sources`) when katuna may not read it, ``TemporaryError``
        when the API cannot be asked now."""


class Nodes(Protocol):
    """The cluster's Node objects, read through the Kubernetes API."""

    def list(self, labels: Mapping[str, str]) -> list[NodeSeen]:
        """Every node carrying all of ``labels``. Raises ``TemporaryError`` when the API cannot
        be asked now, ``PermanentError`` when it refuses (no permission to list nodes)."""


Clock = Callable[[], float]
