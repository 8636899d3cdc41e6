"""The ports: what handlers need from the outside world beyond the store (executors, node pools,
cluster resources and nodes), as small Protocols. The store's port is :mod:`functions.core.store_port`.

Adapters implement them (``functions.adapters``); handlers and tests depend only on these.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from functions.core.events import Event
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.log_keep import Kept
from functions.core.log_rotation import LogStart
from functions.core.node_hours import NodeSeen
from functions.core.nodepool import NodePool, OperationStatus, PoolChange, PoolStatus
from functions.core.remade_pods import Remade

if TYPE_CHECKING:
    from functions.core.disruptions import Disruption
    from functions.core.resource_events import Happening, Regarding
    from functions.core.resources import Ref


class Place(NamedTuple):
    """Where a study's trials run on a cluster, and as what: its namespace (None: the
    executor's own) and its ``trialSpec`` (None: a Job katuna renders)."""

    namespace: str | None
    trial_spec: Mapping[str, Any] | None


class Strays(Protocol):
    """What the store wants of the trial workloads a sweep finds (:class:`functions.handlers.strays.Wanted`)."""

    def stray(self, study: str, uid: str, number: int, attempt: int) -> bool:
        """Whether the attempt runs though the store, which holds a study of its name, no longer wants it."""

    def orphan(self, study: str, uid: str) -> bool:
        """Whether the store holds no study ``study`` of ``uid`` (none of the name, or one made again)."""

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

    def last_lines(self, launch: TrialLaunch, keep: bool = False, seen: Callable[[str], None] | None = None,
                   after: Kept | None = None) -> KeptTail | None:
        """The last lines of the attempt's log, to keep in the store before :meth:`stop_trials`
        stops it (with ``keep``, keeping its workload), where that stop loses its log (a cluster
        trial's pods go with their Job); None where the log outlives the stop. A read that fails
        keeps no line (a :class:`~functions.core.kept_tails.KeptTail` with no text), and never
        holds the stop back. With ``seen``, the lines of the attempt's output that the same one
        read gives are handed to it as they stream in, each as :meth:`output` gives them: where
        the log outlives the stop, the whole output; on a cluster, the lines among the last read
        that are past what ``after`` kept of the running log (:mod:`functions.core.log_keep`),
        every one of them where nothing was. A read that fails then raises, having handed
        ``seen`` part of them at most."""

    def stop_strays(self, wanted: Strays, places: Collection[Place]) -> None:
        """Stop each attempt this executor runs (on a cluster: each trial workload still running
        in the ``places`` the stored studies' trials run in) that ``wanted`` calls a stray; one
        of a study it says retains its Jobs is kept, stopped, where there is a Job to keep
        (:mod:`functions.handlers.strays`)."""

    def drop_kept(self, study: str, uid: str, place: Place) -> None:
        """Delete every workload of the study (of ``uid``) in ``place``, with its pods, those
        ``retain`` kept once their trials ended included: the resource the study came from was
        deleted, and with it everything it made, as Kubernetes' garbage collector deletes a
        deleted Katib Experiment's Trials and their workloads whatever its ``retain``. A
        workload gone already is no failure."""

    def lingers(self, launch: TrialLaunch) -> bool:
        """Whether the ended attempt's workload is to be deleted once its output is read: a
        Job (its TTL is the backstop), one that still runs pods its end left (an operator that
        leaves them: a PyTorchJob's ``cleanPodPolicy`` is ``None`` by default), or one no TTL of
        its kind would ever delete (a TrainJob, a Tekton PipelineRun)."""

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
    remade: Remade | None = None
    """The pods of the attempt's ``ExitCode`` replicas seen, those of :attr:`TrialLaunch.remade_pods`
    with those seen now, to be kept with the trial (None: none looked at)."""


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

    ``request_id`` names one logical change (:attr:`functions.core.pool_use.PoolUse.request_id`):
    the same when that change is asked for again (a redelivered event, a retry after a timeout),
    new for the next one. A cloud whose calls take an idempotency token (EKS) derives it from
    that id; without one, each call is a change of its own. GKE's calls take none.
    """

    provider: str

    def ensure(self, pool: NodePool, owner: str | None = None, *, request_id: str | None = None,
               raising: bool = True) -> PoolChange:
        """Create the pool if it is missing (labelled with ``owner``, a study uid, when given);
        raise its autoscaling maximum if it is lower than ``pool.max_nodes``. A pool that exists
        already is success once it passes :func:`functions.core.nodepool.claim`
        (``NodePoolFailed`` with that problem otherwise). Without ``raising``, a pool found with
        a lower maximum is not raised yet: the change comes back with an operation to
        :meth:`check`, done once the pool may be changed, and the next ``ensure`` raises it. So
        the settings a study found are stored before anything changes them: a raise whose
        answer is lost would otherwise be found again as the pool's own settings."""

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

    def made(self, skip: Collection[str] = ()) -> list[PoolStatus]:
        """The pools of the cluster this installation created for studies (labelled or tagged
        with its :data:`~functions.core.nodepool.INSTALLATION_KEY` and a study's
        :data:`~functions.core.nodepool.OWNER_KEY`), each with its owner and creation time;
        those named in ``skip`` (pools stored studies use) are left out unread. One list of the
        cloud's, bounded: on a cloud whose list gives names only (EKS), at most a bounded number
        of pools read."""

    def tidy(self, before: float) -> list[str]:
        """Delete what katuna made beside pools the cluster no longer has, made before
        ``before`` (a Unix time), where nothing else will: the launch template of an EKS group
        deleted with no change of katuna's to check (an orphan's); GKE makes nothing beside a
        pool. None outside the service (no installation). The names of those deleted, a
        bounded number a call."""


class Resources(Protocol):
    """Study resources on a Kubernetes API: read and list them, write their status."""

    namespace: str | None
    """The namespace whose study resources the service watches; None where there is no cluster
    to ask (no API address configured, and not running in one)."""

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        """The resource as the API holds it now, or None when there is none; a
        :class:`~functions.core.errors.TemporaryError` where the API cannot tell (it does not
        serve the resource's kind for now)."""

    def write_status(self, ref: Ref, uid: str, status: Callable[[], Mapping[str, Any]]) -> bool:
        """Write what ``status()`` computes (None values left out; its lists cut where the
        resource would outgrow etcd: :mod:`functions.core.status_room`) as the status of the
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

    def put_trials(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> Mapping[str, str]:
        """Make the Katib Trial resources of the Experiment at ``owner`` what ``trials`` say
        (each a resource with its ``status``, owned by the Experiment): write the status of each,
        creating the missing ones and replacing those an earlier Experiment of the same name
        left; the Experiment's other Trials are left as they are. The uid of each Trial
        written, by name."""

    def put_suggestion(self, owner: Ref, uid: str, wanted: Callable[[], Mapping[str, Any]]) -> None:
        """Make the Katib Suggestion of the Experiment at ``owner`` with ``uid`` what ``wanted()``
        computes (the resource with its spec and status: :mod:`functions.core.katib_suggestion`),
        computed after the Suggestion was read and written only over that version (read and
        computed again when another write came between), creating it where there is none and
        replacing one an earlier Experiment of the same name left."""

    def record_events(self, regarding: Regarding, happenings: Sequence[Happening]) -> Sequence[str]:
        """Record a Kubernetes Event of each happening about ``regarding``, once per happening
        however often it is recorded (a handling run again), and return the names of those
        recorded, now or before; best effort: a failure is logged, never raised (and that
        happening's Event is not among the names)."""

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
