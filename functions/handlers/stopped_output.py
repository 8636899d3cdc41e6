"""The output of an attempt its study's end stops, parsed as the stop's one read of its log's
last lines streams in: what :func:`functions.handlers.output.record_parsed` keeps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from functions.core import log_keep
from functions.core.errors import RefusedFile
from functions.core.file_collector import EVENT_MARK, EVENTS_DONE, MARK, EndCopy, event_lines, file_lines
from functions.core.launch import trial_launch
from functions.core.log_keep import format_parser, line_parser, new_summary
from functions.core.metric_summary import Summary
from functions.core.records import StudyRecord, TrialRecord
from functions.handlers.deps import Deps
from functions.handlers.output import kept_log, parse_basis
from functions.handlers.parsed import ParsedOutput


class StoppedOutput:
    """The output of an attempt its study's end stops, parsed line by line as the stop's one
    read of its log's last lines streams in (:func:`~functions.handlers.tail_reads.read_in_rounds`,
    in a reader's thread: nothing here reads the store then), for
    :func:`~functions.handlers.output.record_parsed` to keep. Where the cluster's reads of its running log kept observations (:mod:`functions.core.log_keep`:
    :attr:`after`), they count with those of the lines printed since, which that read hands
    over alone (:meth:`~functions.core.ports.Executor.last_lines`). Where the metrics are in a
    file on this machine's disk (a local trial's File or TensorFlowEvent collector: :attr:`file`),
    which the stop leaves, that file's are (:meth:`read_file`); where they are in event files
    on a cluster (the TensorFlowEvent collector), those of the records its wrapper printed to
    the log as they were written, among the lines read (:meth:`_add_events`). Made in the stop's
    own thread, before the read."""

    def __init__(self, record: StudyRecord, trial: TrialRecord, deps: Deps) -> None:
        self.after = kept_log(record, trial, deps)
        """What was kept of the running log: only the lines past it are parsed."""
        launch = trial_launch(record, trial)
        self.basis = parse_basis(record, trial, self.after, launch)
        self.file = launch.metrics_file if deps.logs is None else None
        """The metrics file (or event folder) to read once the output was, where no running log
        is read (the trial is a process here); None where the output holds the metrics."""
        self._spec = record.spec
        self._parse = line_parser(record.spec, launch)
        self._events: list[str] | None = [] if self.file is None and record.spec.metrics_collector.kind == "tfevent" \
            else None
        """The event files' records the wrapper printed, where a cluster trial's TensorFlowEvent
        collector reads them (:meth:`_add_events`); None for any other trial."""
        self._observed = [] if self.after is None else \
            deps.store.observations(record.name, trial.number, trial.attempt)
        self.failed = False
        """Whether what was kept cannot be resumed: nothing of the output is kept then."""
        self.summary = self._resumed()
        self.size = 0

    def _resumed(self) -> Summary:
        """A summary of what was kept of the running log alone (empty where nothing was)."""
        summary = new_summary(self._spec)
        if self.after is not None:
            try:
                summary.resume(self.after.tally, self._observed)
            except ValueError:
                self.failed = True
        return summary

    def __call__(self, line: str) -> None:
        """Parse one line of the output (only count it, where the metrics are in a file)."""
        text = line.rstrip("\n")
        self.size += len(text.encode()) + 1
        if self._events is not None:
            if text.startswith((EVENT_MARK, MARK)) or text == EVENTS_DONE:
                self._events.append(text)
        elif self.file is None:
            self.summary.add(self._parse([text]))

    def _add_events(self) -> None:
        """Add the observations of the event files' records read (at most the last lines
        read's): those the wrapper printed once the command ended where the read holds them
        all (the trial ended as it was stopped), else those it printed as they were written
        (a read while the reader at the end printed its records holds a part of them only:
        :attr:`~functions.core.file_collector.EndCopy.followed_only`), reduced as a trial's end
        reduces the former (:func:`~functions.core.tfevent_lines.metric_lines`)."""
        if not self._events:
            return
        ended = EndCopy()
        deque(ended.lines(self._events), maxlen=0)
        records = list(event_lines(self._events) if ended.followed_only else file_lines(self._events))
        self._events = []
        self._observe(records)

    def read_file(self, lines: Iterable[str]) -> None:
        """Parse the metrics file's lines (the event folder's records), as a trial's end reads
        them: a file refused (not the trial's) gives no more observations, and one read only in
        part (more than katuna reads), none at all."""
        try:
            self._observe(lines)
        except RefusedFile as refused:
            if not refused.whole:
                self.lost()

    def _observe(self, lines: Iterable[str]) -> None:
        """Add the observations of a File or TensorFlowEvent collector's ``lines`` (the metrics
        file's, or the event files' records), read as a trial's end reads them."""
        parse = format_parser(self._spec)
        for line in log_keep.observed_lines(self._spec, lines):
            self.summary.add(parse([line]))

    def lost(self) -> None:
        """The read failed: what it gave counts for nothing, what was kept of the running log stays."""
        self.summary = self._resumed()
        self.size = 0
        if self._events is not None:
            self._events = []

    def parsed(self) -> ParsedOutput | None:
        """What the output held, None where what was kept could not be resumed."""
        self._add_events()
        return None if self.failed else ParsedOutput(self.basis, self.summary, size=self.size)


def stopped_output(record: StudyRecord, trial: TrialRecord, deps: Deps) -> StoppedOutput | None:
    """The parse of the output of a trial its study's end stopped, to feed as its log is read;
    None for another trial."""
    if not trial.stopped_at_end:
        return None
    return StoppedOutput(record, trial, deps)
