"""A local attempt's end as a ``trial.finished`` event, and its publication, tried again while
publishing fails (a full disk, a database locked for longer than its busy timeout)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable

from functions.adapters.local_exits import Memory
from functions.core.events import Event, trial_finished
from functions.core.launch import TIMEOUT_FIELD, TrialLaunch, past_deadline

PREEMPTION_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
"""Signals from outside that end an attempt the way a preemption does."""

PUBLISH_DELAYS = (0.1, 0.3, 1.0, 3.0, 5.0)
"""Seconds to wait before each new try of publishing an attempt's end, while publishing fails."""


INTERRUPTED = "the katuna process running it stopped, and ended it"
"""The message of an attempt katuna killed as its own process stopped."""


def finished_event(launch: TrialLaunch, code: int, timed_out: bool, interrupted: bool = False,
                   memory: Memory | None = None, output_bytes: int | None = None) -> Event:
    """The end of an attempt whose main process exited with ``code`` (negative: a signal). The
    message of a failed one says its peak ``memory`` where it was measured (one killed by the
    out-of-memory killer among them), and the event carries a measured peak for the trial's record,
    and the size of the output its metrics are read from where that is known (``output_bytes``)."""
    ids = launch.study, launch.uid, launch.number, launch.attempt
    peak = memory.peak if memory is not None and memory.exact else None
    if interrupted:
        return trial_finished(*ids, outcome="interrupted", exit_code=code, message=INTERRUPTED, peak_memory=peak,
                              output_bytes=output_bytes)
    outcome, message = _described(launch, code, timed_out)
    if memory is not None and (outcome != "exited" or code):
        message = f"{message}; {memory}" if message else str(memory)
    return trial_finished(*ids, outcome=outcome, exit_code=code, message=message, peak_memory=peak,
                          output_bytes=output_bytes)


def _described(launch: TrialLaunch, code: int, timed_out: bool) -> tuple[str, str]:
    """The outcome of an attempt that was not interrupted, and what ended it."""
    if timed_out and past_deadline(launch):
        return "timeout", (f"ran past its Job's spec.activeDeadlineSeconds of {launch.deadline}s (DeadlineExceeded: "
                           "Kubernetes fails the Job there, and the trial with it)")
    if timed_out:
        return "timeout", f"ran past its timeout of {launch.timeout:g}s ({TIMEOUT_FIELD})"
    if code < 0 and -code in PREEMPTION_SIGNALS:
        return "preempted", killed_from_outside(-code)
    if code < 0:
        return "exited", f"died of {signal.Signals(-code).name}"
    return "exited", shell_status(code) or ""


def killed_from_outside(signum: int) -> str:
    """Why an attempt ended by a preemption signal ended: SIGKILL is also how the kernel's
    out-of-memory killer ends a process, which a person reading the reason should consider."""
    name = signal.Signals(signum).name
    if signum == signal.SIGKILL:
        return f"killed by {name} from outside katuna (another process, or the kernel's out-of-memory killer)"
    return f"killed by {name} from outside"


def shell_status(code: int) -> str | None:
    """What an exit status of 128+N means, where N is a signal: how a shell reports a command
    it ran that a signal ended (``exit 137`` behind ``sh -c``: SIGKILL); None for another."""
    try:
        name = signal.Signals(code - 128).name if 128 < code < 128 + signal.NSIG else None
    except ValueError:
        return None
    return None if name is None else f"128+{code - 128}: a process under the shell was killed by {name}"


def publish_with_retries(publish: Callable[[Event], None], event: Event, delays: Iterable[float],
                         give_up: Callable[[], bool]) -> Exception | None:
    """Publish ``event``, waiting each of ``delays`` before trying again while it fails, unless
    ``give_up()`` says to stop (a shutdown must not wait); the last error, or None once sent."""
    error: Exception | None = None
    for delay in (0.0, *delays):
        if error is not None:
            if give_up():
                return error
            time.sleep(delay)
        try:
            publish(event)
            return None
        except Exception as exc:
            error = exc
    return error
