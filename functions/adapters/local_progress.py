"""A local trial attempt's progress while it runs, reported for early stopping.

When a study's early stopping judges intermediate values, each new step of the objective is
published as a ``trial.progress`` event as it appears, paced
(:mod:`functions.adapters.local_pace`) and up to :data:`MAX_STEPS`: read from the attempt's
output as it is printed (copied to its log on the way), or from the File collector's metrics
file, followed as it grows (:mod:`functions.adapters.file_follow`). Each runs on its own thread, beside the one
that waits for the attempt's end; kept apart from the executor, which starts that thread.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from functions.adapters import local_exits
from functions.adapters.file_follow import follow
from functions.adapters.local_outputs import CHUNK
from functions.adapters.local_pace import Held, Pace
from functions.adapters.local_run import LocalRun, ids
from functions.core.errors import KatunaError, RefusedFile, Stopping
from functions.core.events import Event, trial_progress
from functions.core.launch import Progress, TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.log_context import about, of_event
from functions.core.metrics import MAX_STEPS, StepCounter, parse_json_lines, parse_text

log = logging.getLogger("katuna.executor")

def streamed(launch: TrialLaunch) -> bool:
    """Whether progress is read from the output as it is printed (not from a metrics file)."""
    return launch.progress is not None and launch.metrics_file is None


class ProgressReports:
    """Publishes through ``publish`` each new step of an attempt's objective, until it is stopped."""

    def __init__(self, publish: Callable[[Event], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._publish = publish
        self._clock = clock

    def stream(self, run: LocalRun, log: BinaryIO, progress: Progress) -> None:
        """Copy the output to the log, and report each new step of the objective as it appears;
        then close the pipe read: the executor keeps its latest ended runs
        (:data:`~functions.adapters.local_book.ENDED_KEPT`), which would each hold its descriptor."""
        # Started with stdout=PIPE and the default buffering: a buffered reader, which has read1.
        output = cast(io.BufferedReader, run.started.stdout)

        def chunks() -> Iterator[bytes]:
            for chunk in iter(partial(output.read1, CHUNK), b""):
                log.write(chunk)
                log.flush()
                yield chunk

        with output, log:
            self._report_steps(run, progress, bounded_lines(chunks()))

    def follow(self, run: LocalRun, progress: Progress) -> None:
        """Report each new step of the objective as the File collector's file gets it, until the
        file proves no trial's (the trial's end then says why its metrics are missing)."""
        path = Path(run.launch.working_dir) / (run.launch.metrics_file or "")
        try:
            self._report_steps(run, progress, follow(path, lambda: local_exits.ended(run.started), mark=run.mark))
        except RefusedFile as refused:
            log.warning("progress of %s trial %d is not followed: %s", run.launch.study, run.launch.number, refused,
                        extra=about(run.launch.study, run.launch.number))

    def _report_steps(self, run: LocalRun, progress: Progress, lines: Iterable[str]) -> None:
        """Report each new step of the objective in ``lines`` (each report is a step, as Katib
        counts them, unless the line names its step and the study reads named steps), as the
        attempt's pace lets (:mod:`functions.adapters.local_pace`: none of the first
        ``progress.keep``, which the study's rule needs, is passed over), up to :data:`MAX_STEPS`."""
        parse = parse_json_lines if progress.format == "json" else partial(parse_text, filters=progress.filters)
        counter = StepCounter(progress.metric, progress.every_report)
        held = Held(self._publish_progress, Pace(self._clock), lambda: run.stopped)
        seen: set[int] = set()
        try:
            for line in lines:
                for step, value in counter.steps(parse([line], [progress.metric])):
                    if step not in seen and len(seen) < MAX_STEPS and not run.stopped:
                        seen.add(step)
                        event = trial_progress(*ids(run.launch), step, value, progress.token,
                                               counted=not counter.named)
                        held.offer(event, keep=len(seen) <= progress.keep)
        finally:
            held.close()

    def _publish_progress(self, event: Event) -> None:
        """A step that cannot be reported is skipped: the output must go on being read. One
        given up as katuna stops (the database held elsewhere) is no failure: the trial is
        being ended, and said of at debug level only, where each of its steps would warn."""
        try:
            self._publish(event)
        except Stopping as exc:
            log.debug("progress %s not reported: %s", event.id, exc, extra=of_event(event))
        except Exception as exc:
            log.warning("could not report progress %s: %s", event.id, exc, exc_info=not isinstance(exc, KatunaError),
                        extra=of_event(event))
