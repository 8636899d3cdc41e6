"""What the driving adapters (the HTTP service, the broker) need from the application.

The composition root (:mod:`functions.runtime`, :mod:`functions.embedded`) builds the
dispatcher, the store and the settings, and hands them to the driving adapters through these
Protocols. The adapters import only this module and the rest of the core, never the modules
that build them, so every arrow between the layers points one way: composition root, then
adapters, then handlers, then the core.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from functions.core.cluster_templates import ClusterTemplates
from functions.core.events import Event
from functions.core.limits import Limits
from functions.core.log_reads import LogReads
from functions.core.ports import Executor, Resources
from functions.core.records import Census, StudyRecord
from functions.core.spec import Study
from functions.core.store_port import Store

if TYPE_CHECKING:
    import optuna


class Delivers(Protocol):
    """Runs the handlers an event is routed to (``functions.dispatch.Dispatcher``)."""

    def deliver(self, event: Event) -> list[Event]:
        """The events to emit after handling ``event``; safe to call twice with one event."""


class DispatchesFunctions(Delivers, Protocol):
    """Also runs one named function, as a Knative Trigger addresses it."""

    def deliver_to(self, function: str, event: Event) -> list[Event]:
        """The events to emit after the function ``function`` handles ``event``."""

    def forged(self, event_type: str) -> None:
        """Count an event refused as forged before any handler ran."""


class ServiceSettings(Protocol):
    """The settings the HTTP service reads (``functions.settings.Settings`` documents each)."""

    @property
    def max_body(self) -> int: ...

    @property
    def max_log(self) -> int: ...

    @property
    def max_dead_letters(self) -> int: ...

    @property
    def allowed_hosts(self) -> tuple[str, ...]: ...

    @property
    def api_token(self) -> str | None: ...

    @property
    def metrics_token(self) -> str | None: ...

    @property
    def event_key(self) -> bytes | None: ...

    @property
    def session_ttl(self) -> float: ...

    @property
    def tick_floor(self) -> float: ...

    @property
    def oidc_audience(self) -> str | None: ...

    @property
    def oidc_issuer_url(self) -> str: ...

    @property
    def oidc_subjects(self) -> tuple[str, ...]: ...

    @property
    def events(self) -> str: ...

    @property
    def sink(self) -> str | None: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def executor(self) -> str: ...


class TickClaim(NamedTuple):
    """A claim on handling a tick nobody vouches for (:meth:`ServiceStore.claim_tick`)."""

    function: str
    at: float
    """When it was claimed, seconds since the epoch."""
    previous: float | None
    """When the claim it replaced was made (None: there was none), which giving it back restores."""


class HistoryCut(NamedTuple):
    """Where a study's Optuna history read for its charts stopped, at ``cells`` values
    (:data:`functions.core.history.CHART_CELLS`): its first ``trials`` of the ``held`` its
    journal holds."""

    trials: int
    held: int
    cells: int


class ChartHistory(NamedTuple):
    """A study's Optuna state as its charts read it: whole, or ``cut`` short."""

    storage: optuna.storages.BaseStorage
    cut: HistoryCut | None


class ServiceStore(Store, Protocol):
    """The store as the HTTP service uses it: the port, plus dashboard sessions, bounded dead
    letters and what identifies a version of the stored Optuna state."""

    @property
    def path(self) -> Path: ...

    def optuna_version(self, name: str) -> int:
        """A number that changes whenever Optuna's state of the study ``name`` changes."""

    def chart_history(self, name: str, version: int) -> ChartHistory | None:
        """Optuna's state of the study ``name`` at ``version`` or later (or as far as a chart
        reads), read for charts, shared by the process's threads; None when Optuna has no such study."""

    def add_dead_letter(self, event: Event, reason: str, keep: int = 1000, vouched: bool = True) -> None:
        """Keep an event that could not be delivered, with why; only the newest ``keep`` of those
        ``vouched`` for, and apart the newest ``keep`` of those nobody vouches for."""

    def census(self) -> Census:
        """Counts across studies: studies by status, trials by state, node-pool uses by phase."""

    def studies_version(self, newest: int, skip: int = 0) -> str:
        """A text that changes as a study is stored or deleted, as one of the ``newest`` (past the
        ``skip`` newest) restarts, changes status or has a trial change state, and as studies
        start or end running; cheap, however many trials the studies hold."""

    def study_version(self, name: str) -> str | None:
        """A text that changes whenever a write could change the study's view (``GET
        /studies/{name}``), read without building it; None while the view follows the clock (a
        node pool in use); ``StudyNotFound`` without the study."""

    def trials_version(self, name: str) -> str:
        """A text that changes whenever a write could change a listing of the study's trials,
        read without reading them; ``StudyNotFound`` without the study."""

    def add_session(self, session_id: str, csrf: str, host: str, expires_at: float, token_mac: str) -> None: ...

    def claim_tick(self, function: str, floor: float) -> TickClaim | None:
        """A claim on handling a tick nobody vouches for by ``function`` now, recorded; None when
        one was claimed in the last ``floor`` seconds, by any process of the service."""

    def release_tick(self, claim: TickClaim) -> None:
        """Give back a claim whose tick was not handled, unless a later one was made since."""

    def session(self, session_id: str) -> dict[str, Any] | None: ...

    def delete_session(self, session_id: str) -> None: ...


class Application(Protocol):
    """One service process as the HTTP service sees it."""

    @property
    def settings(self) -> ServiceSettings: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def executor(self) -> Executor:
        """Runs the trials."""

    @property
    def log_reads(self) -> LogReads:
        """The trials' logs, read in part: the web serves them through it."""

    def store(self) -> ServiceStore:
        """This thread's store."""

    def dispatcher(self) -> DispatchesFunctions:
        """Runs handlers with this thread's store."""

    @property
    def resources(self) -> Resources:
        """Study resources on Kubernetes: what a study that came from one follows."""

    @property
    def templates(self) -> ClusterTemplates | None:
        """Where trial templates held in ConfigMaps are read; None where trials do not run on Kubernetes."""

    def submit(self, spec: Study, definition: dict[str, Any]) -> tuple[StudyRecord, bool]:
        """Store a study and start it: the stored record, and whether it is new."""

    def stop(self, name: str, reason: str = "stopped by user") -> None:
        """End the study, or finish ending it: its running trials stopped where they run; a
        failure to stop them raises once the stop is stored (a later call, or the tick, stops them)."""

    def drop_checkpoints(self, record: StudyRecord) -> None:
        """Delete the study's checkpoints (population-based training) as it is deleted, before
        its record goes: its local trials' at once, what still runs of them ended first, those on
        the cluster's claim by a Job asked for; a failure raises, the study kept. Safe to repeat."""

    def publish(self, event: Event) -> None:
        """Send an event on, to be delivered later."""

    def fail_dead_letter(self, event: Event, reason: str) -> bool:
        """Fail the study a dead letter names, with the reason its delivery was refused for good;
        whether a study ended (not one missing, ended already, or another of the same name)."""

    def metrics(self, accept: str) -> tuple[bytes, str]:
        """The service's metrics in the Prometheus format ``accept`` asks for, and its content type."""

    def not_ready(self) -> str | None:
        """Why the process cannot serve yet (None when it can); raises when the store is down."""

    def start(self) -> None:
        """Start delivering queued events."""

    def close(self) -> None:
        """Stop delivering events and the process's own trials."""
