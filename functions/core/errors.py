"""The exception tree: one root, split by whether retrying the same request can help.

Every error katuna raises on purpose is a ``KatunaError``; catch ``TemporaryError`` (or read
``retryable``) for what may pass when tried again, ``PermanentError`` for what will not. Over
HTTP each is an answer of the code its class names in snake_case (``study_not_found``: docs/api.md,
Errors) with ``retryable``; a permanent error is answered with the status named, ``422`` where
none is, and an event function answers ``422`` where this says ``404`` or ``409``, which Knative
would retry. Classes defined beside what raises them name their module.

``KatunaError``
    ``PermanentError`` (retrying cannot help; HTTP 422)
        ``InvalidStudy``         a study definition with one or more problems
            ``UnparseableStudy``   not YAML or JSON, or empty (400)
            ``RefusedWorkload``    a trial's workload refused at launch for what its values made of it
            ``TooManyStudies``     one more than the studies not ended the database may hold (409)
            ``TooManyPools``       one more node pool than the studies may hold at once (409)
        ``MalformedRequest``     a request that cannot be read (400)
            ``MalformedEvent``     not a CloudEvent 1.0 (400; :mod:`functions.adapters.cloudevents_data`)
            ``MalformedEventData`` an event whose data lacks a field or holds a wrong one (400; :mod:`functions.dispatch`)
            ``PageRefused``        a trial table's page that is no page's number (400; :mod:`functions.adapters.web.tables`)
        ``StudyConflict``        another definition already uses the name (409)
            ``RestartThroughResource``  an ended study of a cluster resource, posted to restart it (409)
        ``StudyRunsElsewhere``   the study's trials run where this service does not run trials (409)
        ``FollowsResource``      the study is deleted through the resource it follows (409)
        ``StudyNotFound``        no study by that name (404)
        ``LogGone``              an attempt's log is no longer there (404)
        ``OutputLost``           an ended attempt's output went before it was read
        ``ForgedEvent``          an event that does not prove it comes from katuna (403)
            ``ForgedReport``       a progress report without its attempt's token (403)
        ``NoKubernetesApi``      an event about a Kubernetes resource, where no cluster's API is configured
        ``InvalidSetting``       a ``KATUNA_*`` setting katuna cannot use (also a ``ValueError``)
        ``UnreadableFile``       a file given to the CLI is not a readable, small, UTF-8 regular file
        ``RefusedFile``          a file a local trial left is not one the service reads (under /proc)
        ``DamagedJournal``       a record of a study's Optuna journal cannot be read
        ``UnknownEventType``     a type nothing handles, not of katuna's own (:mod:`functions.dispatch`)
        ``NodePoolFailed``       the cloud refused a node-pool request (:mod:`functions.core.nodepool`)
        ``NoNodePools``          a node pool asked where no cloud is configured (:mod:`functions.handlers.releasing`)
        ``ConfigMapForbidden``   a ConfigMap the Kubernetes API refuses katuna (:mod:`functions.core.cluster_templates`)
        ``NotRenderable``        a study lacking what a Kubernetes trial needs (:mod:`functions.core.job`)
        ``NoCommand``            a container with no command to wrap (:mod:`functions.core.file_collector`)
        ``CheckpointClash``      a pod already has what checkpoints add (:mod:`functions.core.checkpoint_volume`)
        ``UnreadableSpec``       a stored spec no study can be rebuilt from (:mod:`functions.core.stored`)
    ``TemporaryError`` (retrying later may help; HTTP 503 with ``Retry-After``; a Kubernetes API
    address answering as no API server does, a web page, among them: the operator fixes the
    address, and nothing in the request is to blame, :mod:`functions.adapters.kubernetes_answers`)
        ``StorageUnavailable``   the database cannot be opened or written (read-only, missing rights)
            ``StorageFull``        the disk holding the database is full
            ``ForeignDatabase``    an SQLite database that is not katuna's
            ``NewerDatabase``      a database a newer katuna migrated
            ``LogsUnavailable``    the trial-log folder cannot be written
        ``ServiceBusy``          the service runs as many trials as it allows; the trial waits
        ``QuotaFull``            a namespace's ResourceQuota has no room now; the trial waits
        ``NoRoomForStudy``       a study resource past ``KATUNA_MAX_STUDIES`` or ``KATUNA_MAX_POOLS``; its event waits (429)
        ``Stopping``             katuna is stopping while it read a trial's output
        ``NewerEventType``       a ``dev.katuna.*`` type of a newer katuna's (:mod:`functions.dispatch`)
        ``UnknownFunction``      a function of a newer katuna's Trigger (:mod:`functions.dispatch`)
        ``UnreadKey``            a delivery token's key, not read again yet (:mod:`functions.adapters.web.oidc`)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a dotted field path) and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class KatunaError(Exception):
    """Root of every error katuna raises on purpose."""

    retryable = False


class PermanentError(KatunaError):
    """The request is wrong; sending it again unchanged fails again."""


class TemporaryError(KatunaError):
    """A dependency is busy or unreachable; the same request may succeed later."""

    retryable = True


PROBLEMS_LISTED = 100
"""The most problems of an invalid study an answer, a message or the CLI lists, the first found;
how many more there are is said. A body of 45,000 unknown fields (570 KB) has as many problems,
and listing each, with the fields expected there, made an answer of 12 MB. A study's reader
(:class:`functions.core.reader.Reader`, and the YAML reader's ambiguous scalars) keeps as many,
and counts the rest: a 1 MiB body of a problem in each field built 20 to 100 MB of them."""


class InvalidStudy(PermanentError):
    """A study definition failed validation; ``problems`` lists the problems kept of those found,
    ``more`` counts the others (found past :data:`PROBLEMS_LISTED`, where a reader stops keeping
    them), ``count`` is all of them, and ``listed`` the first :data:`PROBLEMS_LISTED`, which is
    what is shown."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], more: int = 0) -> None:
        self.problems = tuple(problems)
        self.more = more
        self.count = len(self.problems) + more
        lines = "\n".join(f"  - {p}" for p in self.listed)
        unlisted = f"\n  ({self.unlisted:,} more problems not listed)" if self.unlisted else ""
        super().__init__(f"invalid study ({self.count} problem(s)):\n{lines}{unlisted}")

    @property
    def listed(self) -> tuple[Problem, ...]:
        """The problems shown: the first :data:`PROBLEMS_LISTED`."""
        return self.problems[:PROBLEMS_LISTED]

    @property
    def unlisted(self) -> int:
        """How many problems are not shown."""
        return self.count - len(self.listed)


class RefusedWorkload(InvalidStudy):
    """A trial's workload refused at launch for what its parameters' values made of it (a label
    Kubernetes would refuse, a pod reaching the node, an account katuna keeps): that trial fails,
    and the study's others, of other values, may run."""


class TooManyStudies(InvalidStudy):
    """The study would be one more than the studies not ended that the database may hold at once
    (``KATUNA_MAX_STUDIES``): submitted again once one ends, is stopped or is deleted, it is
    taken. A conflict with the service's state, not a flaw of the definition (``409`` from the
    API). ``held`` says what is held and which setting bounds it, ``frees`` when room frees."""

    frees = "once one ends, or is stopped or deleted"

    def __init__(self, held: str) -> None:
        super().__init__([Problem("name", f"{held}; submit the study again once one ends, or stop or delete one")])
        self.held = held


class TooManyPools(InvalidStudy):
    """The study's node pool would be one more than katuna's studies may hold at once
    (``KATUNA_MAX_POOLS``): a study gives its pool back once it ends, and submitted again then,
    it is taken; a conflict with the service's state, as :class:`TooManyStudies` is (``409``)."""

    frees = "once a study that ended has given its node pool back"

    def __init__(self, held: str) -> None:
        super().__init__([Problem("nodePool", f"{held}; submit the study again once one is given back, or name a "
                                              "pool a running study uses (nodePool.name)")])
        self.held = held


NoRoom = TooManyStudies | TooManyPools
"""A study refused for room that frees as studies end (``409``; a study resource waits:
:class:`NoRoomForStudy`); each says what is ``held`` and when room ``frees``."""

NO_ROOM = (TooManyStudies, TooManyPools)
"""The refusals of :data:`NoRoom`, to catch."""


class UnparseableStudy(InvalidStudy):
    """The definition is not YAML or JSON at all, or empty."""


class MalformedRequest(PermanentError):
    """The request itself cannot be read (as opposed to asking for something impossible)."""


class StudyConflict(PermanentError):
    """A different definition is already stored under the same study name; ``changed`` lists
    the field paths that differ (:mod:`functions.core.conflicts`), ``deleting`` the ``katuna
    delete`` command the message names (none where it names none)."""

    def __init__(self, message: str, changed: list[str] | tuple[str, ...] = (), deleting: str = "") -> None:
        super().__init__(message)
        self.changed = tuple(changed)
        self.deleting = deleting

    def on_database(self, option: str) -> str:
        """The message with ``option`` (`` --db PATH``) after the ``katuna delete`` command it
        names: followed as printed, that command deletes the study of the database that refused
        this one, never another's of the same name."""
        message = str(self)
        at = message.rfind(self.deleting) if self.deleting else -1
        if at < 0 or not option:
            return message
        end = at + len(self.deleting)
        return message[:end] + option + message[end:]


class RestartThroughResource(StudyConflict):
    """An ended study that came from a Kubernetes resource (a Katib Experiment, a katuna Study)
    was submitted over the HTTP API or the CLI to restart it: it restarts only through that
    resource, edited in the cluster; a resource deleted since leaves the study as it ended, and
    applied again starts a new study in its place (:func:`functions.core.resume.resource_refusal`)."""


class StudyRunsElsewhere(PermanentError):
    """The study's trials run where this service does not run trials (a Kubernetes cluster, for
    a service that runs them as local processes, or the reverse): it leaves the study alone
    (:meth:`functions.core.records.StudyRecord.runs_away_from`), and refuses to run it."""


class FollowsResource(PermanentError):
    """The study follows a Kubernetes resource that is still there: deleting the study alone
    would leave the resource, and katuna would submit it again, so it is deleted through it."""


class StudyNotFound(PermanentError):
    """No study is stored under the given name."""


class OutputLost(PermanentError):
    """An attempt ended but its output is gone before it was read (its pods, and their logs,
    removed with their node): what it measured is unknowable, so the run is lost, not failed."""


class LogGone(PermanentError):
    """An attempt's log is not there to read: its file was removed, or the pods that hold it on
    Kubernetes are gone (deleted with their Job once its ``ttlSecondsAfterFinished`` passed, or
    with their node, or by katuna as it ended the trial, with none of its lines kept). Before an attempt starts its log is empty rather than gone: the reader,
    who knows whether the attempt has ended, tells the two apart."""


class InvalidSetting(PermanentError, ValueError):
    """A setting (a ``KATUNA_*`` variable, or ``K_CE_OVERRIDES`` from Knative's SinkBinding) holds
    what katuna cannot use: the message names the variable and what was expected. Nothing starts
    with it: a command exits 2, the service stops."""


class UnreadableFile(PermanentError):
    """A file given to the CLI is not something katuna reads: not a regular file, too large,
    or not UTF-8 text. The message names the file and what was expected, never its content."""


class RefusedFile(PermanentError):
    """A file the service would read back from a local trial is not a trial's file: of another
    kind than expected, or, however a link led there, under ``/proc``, ``/sys`` or ``/dev``
    (:mod:`functions.core.system_paths`). The message names the path and why, never the content.
    ``whole`` is False where the files hold more than katuna reads of them: what was read is
    then not the attempt's whole measure, and counts for nothing."""

    def __init__(self, message: str, whole: bool = True) -> None:
        super().__init__(message)
        self.whole = whole


class ForgedEvent(PermanentError):
    """An event of a kind only katuna sends, posted without the API token and without katuna's
    signature (:mod:`functions.core.event_signature`): refused, and never counted against the
    study it names, which did nothing wrong. ``event_type`` is the type it claimed."""

    def __init__(self, message: str, event_type: str) -> None:
        super().__init__(message)
        self.event_type = event_type


class ForgedReport(ForgedEvent):
    """A progress report that does not carry its attempt's token, so neither the attempt nor
    katuna sent it (a trial posting as another trial of its study, say)."""


class NoKubernetesApi(PermanentError):
    """An event about a Kubernetes resource came to a service with no Kubernetes API configured
    (not in a cluster, no ``KATUNA_K8S_API``, no usable kubeconfig): the resource cannot be
    read, however often the event comes, so it is refused for good (``422``), not answered with
    a ``503`` that a broker would retry until it gives up."""


class Stopping(TemporaryError):
    """katuna is stopping (``katuna run`` was interrupted) while a trial's output was being read:
    the read is given up, and with it the handling's transaction, so the attempt's end is left
    as it was stored, to be handled when the study resumes."""


class ServiceBusy(TemporaryError):
    """The service runs as many trials at once, across every study, as it allows
    (``KATUNA_MAX_RUNNING_TRIALS``): the trial waits, and its launch is tried again later."""


class NoRoomForStudy(TemporaryError):
    """A study resource's study would be one more than the studies not ended the database may
    hold (``KATUNA_MAX_STUDIES``), or its node pool one more than the studies may hold
    (``KATUNA_MAX_POOLS``): :data:`NoRoom` over the API. Nobody is there to submit it again, so
    its event waits instead, answered ``429`` with ``Retry-After``, which the broker retries,
    then the tick sends again; the resource is taken once room frees, its status saying
    meanwhile that it waits, and why (:func:`functions.core.resource_status.waiting_status`)."""


class QuotaFull(TemporaryError):
    """A namespace's ResourceQuota has no room now for what katuna creates (a 403 ``exceeded
    quota``): room frees as Jobs end and go, so it is retried; a trial whose Job it refuses waits,
    its reason naming the quota. ``why`` is the API server's refusal after ``is forbidden: ``."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why


class DamagedJournal(PermanentError):
    """A record of a study's Optuna journal in the database cannot be read (the file damaged in
    place): the study's sampler cannot be rebuilt, so the study cannot go on; deleting it works."""


class StorageUnavailable(TemporaryError):
    """The database cannot be opened or written: a read-only directory or file, missing rights,
    an I/O error. Temporary for the service (an operator can fix it while it runs)."""


class ForeignDatabase(StorageUnavailable):
    """The file is an SQLite database, but not katuna's (or a pre-release katuna's that no
    migration upgrades): it is left as it is, never migrated."""


class NewerDatabase(StorageUnavailable):
    """The database is katuna's, migrated past the schema this katuna knows by a newer one: it
    is left as it is, neither read nor written, until katuna is upgraded."""


class LogsUnavailable(StorageUnavailable):
    """The trial-log folder (``KATUNA_LOG_DIR``, by default ``<db name>-logs`` beside the
    database) cannot be written: no trial can start. ``katuna run`` and ``katuna serve`` refuse
    to start; a folder that breaks later is temporary, as the operator can fix it."""


class StorageFull(StorageUnavailable):
    """The disk holding the database is full; writes succeed again once space is freed."""
