"""The provisioning script's changes carried out: asked of the cloud, asked again while it
refuses them for now, waited for, and told (progress and errors on stderr, how the pool stands
as JSON on stdout).

Everything a change does happens within the command's ``--timeout``: the pauses between tries
of a change refused for now (a cluster busy with another operation, throttling, a server's
failure: :func:`infra.polling.retrying`) and the wait for its operation alike. ``up`` settles:
a change that only waited for a pool found pending (one an interrupted run was creating, or
another's change) is asked again once that is done, so the pool ends with the flags' settings
(a maximum raised), not as it was found. A pool its cloud could not create (:data:`BROKEN`) is
told with its cloud's reason and what brings it back: ``down``, then ``up``.

A change that goes on in the cloud when the command ends (its ``--timeout`` up, or the command
interrupted: exit code 130 for Ctrl-C, 143 for SIGTERM) is told so, with how to check it: ``status``, or the command again,
which waits for it. ``up`` that leaves a pool's maximum above ``--max-nodes`` says so, since it
never lowers one.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from functions.core.durations import tell_seconds
from functions.core.errors import KatunaError, TemporaryError
from functions.core.nodepool import ANY_POOL_FLAG, SCRIPT_MARK, NodePoolFailed, PoolChange, PoolStatus
from functions.interrupts import on_dropped, send_again
from infra.polling import retrying

BROKEN = frozenset({"ERROR", "CREATE_FAILED"})
"""The states of a pool its cloud could not create (GKE's ``ERROR``, EKS's ``CREATE_FAILED``):
it stays so until it is deleted."""
UNHEALTHY = frozenset({"DEGRADED", "DELETE_FAILED", "RUNNING_WITH_ERROR"})
"""The states of a pool that exists but that its cloud says is not well (an EKS group's health
issues, one whose delete failed; GKE nodes that failed): told on stderr with the cloud's words."""


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, allow_nan=False))


INTERRUPTED = 130
"""The exit code of a command interrupted (Ctrl-C), as a shell gives one a SIGINT ended."""
TERMINATED = 143
"""The exit code of a command terminated (SIGTERM: a CI job cancelled, ``timeout``, ``kill``), as
a shell gives one a SIGTERM ended."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, as Ctrl-C raises :class:`KeyboardInterrupt`: the
    command ends as an interrupted one does, saying what goes on in the cloud."""


def _terminate(_signal: int, _frame: Any) -> None:
    raise Terminated


def on_stopping_signals() -> None:
    """Have SIGTERM end the command as Ctrl-C does (:func:`interrupted`), with exit code 143; and
    either one whose exception Python dropped, having raised it in code whose exceptions it drops
    (a finalizer, the import system's callback run at every import, as a client library's first
    call of a kind may import), sent again once that code is done: dropped, it left the command
    waiting for the cloud, to its ``--timeout``."""
    signal.signal(signal.SIGTERM, _terminate)
    on_dropped(_dropped)


def _dropped(exc: BaseException | None) -> bool:
    """Send again the signal of a dropped :class:`KeyboardInterrupt` (SIGTERM's :class:`Terminated`)."""
    if not isinstance(exc, KeyboardInterrupt):
        return False
    send_again(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    return True


def change(ask: Callable[[Any], PoolChange], pool: str, done: str, timeout: float, *,
           settle: bool = False, max_nodes: int | None = None,
           worst: Callable[[PoolStatus], str | None] | None = None) -> Callable[[Any], None]:
    """What the command does with its adapter: ``ask`` the change of it, wait for the change and
    print how the pool stands, all within ``timeout`` seconds; ``settle`` for ``up``, whose
    ``max_nodes`` asked is compared with the pool's, and whose ``worst`` case (the most its pool
    costs at once, where the operator gave a price) is told. A failed change, or one still
    pending when the time is up, is an error and exit code 1; an interrupted one, exit code 130
    (143 for SIGTERM)."""
    def act(pools: Any) -> None:
        run = Run(pool, time.monotonic() + timeout, timeout, "up" if settle else "down")
        _finish(pools, ask, run, done, settle, max_nodes, worst)
    return act


@dataclass(frozen=True)
class Run:
    """The pool a command changes, and when its time is up (``deadline``, after ``timeout`` seconds)."""

    pool: str
    deadline: float
    timeout: float
    command: str = "up"
    pending: list[str] = field(default_factory=list)
    """The operation the command waits for, while it does: what goes on in the cloud if it is interrupted."""

    def goes_on(self, operation: str) -> str:
        """What to tell of an operation the command leaves running (``it``, once named)."""
        return (f"{operation} goes on in the cloud; `status` shows how the pool stands, and `{self.command}` again "
                "waits for it")


def _finish(pools: Any, ask: Callable[[Any], PoolChange], run: Run, done: str, settle: bool,
            max_nodes: int | None, worst: Callable[[PoolStatus], str | None] | None) -> None:
    def again() -> PoolChange:
        return retried(lambda: ask(pools), run)

    try:
        made = again()
        told = made.changed or ("nothing to change" if settle else "it is absent: nothing to delete")
        while made.operation is not None:
            run.pending[:] = [made.operation]
            also = _wait(pools, made.operation, run)
            made = again() if settle and not made.created else PoolChange()
            told = f"{done}; {also}" if also else done
        run.pending.clear()
        described = retried(lambda: pools.describe(run.pool), run)
    except NodePoolFailed as exc:
        raise (_advised(pools, run.pool, exc) if settle else exc) from exc
    except KeyboardInterrupt as exc:
        interrupted(run, exc)
    click.echo(f"node pool {run.pool}: {told}{kept(described, max_nodes)}", err=True)
    cost = worst(described) if worst is not None and described is not None else None
    if cost:
        click.echo(f"node pool {run.pool}: {cost}", err=True)
    show_status(described, run.pool)


def interrupted(run: Run | None = None, exc: KeyboardInterrupt | None = None) -> NoReturn:
    """Ctrl-C: no traceback, what is left running in the cloud, and exit code 130; SIGTERM
    (:class:`Terminated`) the same with exit code 143. Without a ``run`` (``status``, a
    ``--dry-run`` plan, or a command stopped before it asked anything) nothing was changed. Later
    signals are ignored meanwhile: one more Ctrl-C, or a dropped one sent again, would cut the
    message short with a traceback."""
    if run is None:
        said = "nothing was changed"
    elif run.pending:
        said = f"node pool {run.pool}: {run.goes_on(spoken(run.pending[0]))}"
    else:
        said = (f"node pool {run.pool}: no change of it was under way, unless the cloud took one as the command "
                "was stopped; `status` shows how the pool stands")
    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, signal.SIG_IGN)
    terminated = isinstance(exc, Terminated)
    click.echo(f"\n{'terminated' if terminated else 'interrupted'}: {said}", err=True)
    sys.exit(TERMINATED if terminated else INTERRUPTED)


def kept(described: PoolStatus | None, max_nodes: int | None) -> str:
    """A maximum ``up`` left above ``--max-nodes``: it raises a maximum, never lowers one (a
    study may be using the nodes above it)."""
    if described is None or max_nodes is None or described.max_nodes <= max_nodes:
        return ""
    return (f"; its maximum stays {described.max_nodes} nodes, above --max-nodes {max_nodes}: `up` raises a pool's "
            "maximum, never lowers it")


def retried(call: Callable[[], Any], run: Run) -> Any:
    """``call()``, asked again while the cloud refuses it for now, until the time is up; each
    refusal is told on stderr, and the one still there then is the error."""
    def told(exc: TemporaryError, pause: float) -> None:
        click.echo(f"node pool {run.pool}: refused for now ({exc}); trying again in {tell_seconds(pause)} s", err=True)

    try:
        return retrying(call, run.deadline, told)
    except TemporaryError as exc:
        raise TemporaryError(f"node pool {run.pool}: still refused for now when --timeout ({run.timeout:g} s) was "
                             f"up: {exc}") from exc


FOUND_UNDER_WAY = {"pool:": "the create or update GKE has under way on it",
                   "gone:": "the delete GKE has under way on it"}
"""GKE's changes of a pool found under way, by the prefix of the operation the adapter waits for
them as (:data:`infra.gke_found.POOL_TOKEN`, :data:`infra.gke.GONE_TOKEN`: katuna's own, which
no GKE tool knows), in the operator's words: the pool is named before them."""


def spoken(operation: str) -> str:
    """The operation as the operator is told it: GKE's operation path (which ``gcloud container
    operations describe`` takes) and EKS's ``create:``/``update:``/``delete:`` as they are, a
    change GKE has under way on a pool found pending by what it is."""
    return next((said for prefix, said in FOUND_UNDER_WAY.items() if operation.startswith(prefix)), operation)


def _wait(pools: Any, operation: str, run: Run) -> str | None:
    """Wait for the operation until the time is up: what it did besides, once done (an EKS
    delete's launch templates); a failed one is a refusal; one still pending then, or one whose
    polls are refused (a permission to read operations missing), is an error and exit code 1,
    saying that it goes on."""
    said = spoken(operation)
    click.echo(f"node pool {run.pool}: waiting for {said}", err=True)
    try:
        status = pools.wait(operation, timeout=max(run.deadline - time.monotonic(), 0.0))
    except TemporaryError as exc:
        raise TemporaryError(f"node pool {run.pool}: {str(exc).replace(operation, said)}; {run.goes_on('it')}") from exc
    except NodePoolFailed as exc:
        raise NodePoolFailed(f"node pool {run.pool}: {said} could not be followed: {exc.reason.rstrip('.')}; "
                             f"{run.goes_on('it')}", exc.field) from exc
    if status.error:
        raise NodePoolFailed(f"node pool {run.pool}: {status.error}")
    if not status.done:
        click.echo(f"error: node pool {run.pool}: {said} is still pending after {run.timeout:g} s; "
                   f"{run.goes_on('it')}", err=True)
        print_status(pools, run.pool)
        sys.exit(1)
    return status.also


def _advised(pools: Any, pool: str, exc: NodePoolFailed) -> NodePoolFailed:
    """The refusal, told what to do where the pool is one its cloud could not create, or one
    EKS does not bring back by itself (:func:`advised`)."""
    try:
        found = pools.describe(pool)
    except KatunaError:
        return exc
    return advised(exc, found)


STUCK = frozenset({"DEGRADED", "DELETE_FAILED"})
"""The states of an EKS group refused as one EKS does not bring back by itself
(:func:`infra.eks_errors.stuck`: ``DEGRADED`` with a lasting issue, a failed delete)."""


def advised(exc: NodePoolFailed, found: PoolStatus | None) -> NodePoolFailed:
    """``up``'s refusal (or its plan's) of the pool ``found``, told what the script does about a
    pool its cloud could not create, or an EKS group refused as stuck, in the script's commands
    (:func:`broken`), not the cloud's."""
    if found is None:
        return exc
    if found.state in BROKEN or (found.state in STUCK and exc.reason.startswith(f"EKS node group {found.name} ")):
        return NodePoolFailed(f"{exc.reason}; {broken(found, exc.reason)}", exc.field)
    return exc


def broken(found: PoolStatus, said: str = "") -> str:
    """What to do about a pool its cloud could not create, or an EKS group stuck
    (:data:`STUCK`), with the cloud's reason unless ``said`` already holds it: deleted as ``down``
    takes it (:func:`infra.pool_checks.check_delete`: one ``up`` did not make only with
    ``--any-katuna-pool``, one without the trial taint not at all), then created again; what
    EKS names fixed first where the group is stuck."""
    cause = f" ({found.message})" if found.message and found.message not in said else ""
    if not found.tainted:
        delete, then = ("delete it with the cloud's own tools (`down` deletes only pools with katuna's trial taint)",
                        "then run `up`")
    elif found.made_by == SCRIPT_MARK:
        delete, then = "run `down`", "then `up`"
    else:
        delete, then = f"run `down {ANY_POOL_FLAG}` (`up` did not make it, so `down` alone refuses it)", "then `up`"
    if found.state == "DELETE_FAILED":
        return f"node pool {found.name} is DELETE_FAILED{cause}: fix what EKS names, then {delete} again"
    fix = "EKS does not bring it back by itself: fix what it names, then " if found.state in STUCK else ""
    return f"node pool {found.name} is {found.state}{cause}: {fix}{delete}, {then} to create it again"


def print_status(pools: Any, pool: str) -> None:
    """How the pool stands, as JSON on stdout; a pool its cloud could not create is told on stderr too."""
    show_status(pools.describe(pool), pool)


def show_status(described: PoolStatus | None, pool: str) -> None:
    """The pool as described, as JSON on stdout (``ABSENT`` when there is none); a pool its cloud
    could not create, or says is not well (:data:`UNHEALTHY`), is told on stderr too, with the
    cloud's reason."""
    if described is not None and described.state in BROKEN:
        click.echo(f"warning: {broken(described)}", err=True)
    elif described is not None and described.state in UNHEALTHY:
        click.echo(f"warning: node pool {described.name} is {described.state}: "
                   f"{described.message or 'the cloud gives no reason'}", err=True)
    print_json(described.to_dict() if described else {"pool": pool, "state": "ABSENT"})
