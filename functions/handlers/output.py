"""What an attempt's output gave: its observations stored, every metric reduced by its
strategy, and the last lines it printed (for a failure's reason). Read by ``collect`` at a
trial's end and by ``prune`` when a pruned trial's last values are kept; and, for a trial its
study's end stops, parsed as the stop reads its last lines (:class:`~functions.handlers.stopped_output.StoppedOutput`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from functions.core import log_keep, template
from functions.core.errors import OutputLost, RefusedFile
from functions.core.file_collector import EndCopy
from functions.core.launch import TrialLaunch, trial_launch
from functions.core.log_keep import Kept, format_parser, keeps, line_parser, lost_run, new_summary, unread
from functions.core.log_rotation import LogStart
from functions.core.metric_summary import Summary
from functions.core.ports import RunningLogs
from functions.core.records import StudyRecord, TrialRecord
from functions.handlers.deps import Deps
from functions.handlers.parsed import ParsedOutput

TAIL_LINES = 10
TAIL_LINE_CHARS = 500
"""The last lines of an attempt's output go into its trial's reason, each cut to this length."""


class Output(NamedTuple):
    """What an attempt's output gave: every metric reduced by its strategy, the last lines it
    printed (for failure reasons), the bytes of output read, and its reports of the (first) objective."""

    metrics: dict[str, float]
    tail: list[str]
    size: int
    reports: int
    start: LogStart | None = None
    """Where the attempt's cluster log began as its output was read, when that was asked for."""


def record_output(record: StudyRecord, trial: TrialRecord, deps: Deps, log_start: bool = False,
                  launch: TrialLaunch | None = None) -> Output:
    """Store the attempt's observations (at most ``MAX_OBSERVATIONS``); every metric reduced by
    its strategy over all of them, the last lines the attempt printed, and the bytes read.
    The output is read once, line by line: memory stays bounded whatever the trial printed.
    Where observations were kept as the running log was read (:mod:`functions.core.log_keep`),
    they count with those of the lines read now past them; but where the File collector's
    wrapper printed the whole metrics file once the command ended, that file alone gives them,
    as Katib's collector reads it then (:class:`~functions.core.file_collector.EndCopy`), unless
    the log read now lost the copy's start to the kubelet's rotation: then the file's lines
    kept as the running log was read give them.

    With ``log_start``, where the attempt's cluster log began is read with it (:attr:`Output.start`).

    The output parsed before the handling's transaction (``deps.parsed``) is taken when the
    state it was parsed against is the stored one still (and it has the log's start if that is
    asked for); else it is parsed now (:mod:`functions.handlers.parsed`). ``launch`` is the
    attempt's, where the caller made it already (:func:`_basis`)."""
    kept = kept_log(record, trial, deps)
    basis = parse_basis(record, trial, kept, launch)
    parsed = deps.parsed
    if parsed is None or parsed.basis != basis or (log_start and not parsed.start_read):
        parsed = _parse(record, trial, deps, kept, basis, log_start)
    if parsed.lost is not None:
        raise parsed.lost
    return _stored(record, trial, deps, parsed)


def record_parsed(record: StudyRecord, trial: TrialRecord, deps: Deps, parsed: ParsedOutput) -> Output | None:
    """Store the observations of an output ``parsed`` before the caller's transaction, and give
    what it holds as :func:`record_output` does, while the state it was parsed against is the
    stored one still; None where it is not, or the output was lost: nothing is read here, so
    the transaction holds its write lock for no read of a log, whatever its size."""
    if parsed.lost is not None or parsed.basis != parse_basis(record, trial, kept_log(record, trial, deps)):
        return None
    return _stored(record, trial, deps, parsed)


def _stored(record: StudyRecord, trial: TrialRecord, deps: Deps, parsed: ParsedOutput) -> Output:
    """Store the observations of the attempt's output ``parsed``, and give what it holds."""
    summary = parsed.summary
    deps.store.add_observations(record.name, trial.number, trial.attempt, summary.kept)
    return Output(summary.reduced(), list(parsed.tail), parsed.size,
                  summary.counts.get(record.spec.objectives[0].metric, 0), parsed.start)


def parse_output(record: StudyRecord, trial: TrialRecord, deps: Deps, log_start: bool = False,
                 launch: TrialLaunch | None = None) -> ParsedOutput:
    """The attempt's output parsed against the stored state, outside any transaction: what
    :func:`record_output` takes in the handling's transaction while that state holds. ``launch``
    is the attempt's, where the handling made it already (else made here); with ``log_start``,
    where its log began on the cluster is read too."""
    kept = kept_log(record, trial, deps)
    return _parse(record, trial, deps, kept, parse_basis(record, trial, kept, launch), log_start)


def parse_basis(record: StudyRecord, trial: TrialRecord, kept: Kept | None,
           launch: TrialLaunch | None = None) -> tuple[Any, ...]:
    """What a parse of the attempt's output depends on in the store: which attempt of which
    trial it is (its launch: ``launch``, made from the same record and trial, or made here),
    how the study reads metrics (its spec), and what was kept of the attempt's running log.
    The parse reads the output through that same launch, made once a handling."""
    return launch if launch is not None else trial_launch(record, trial), record.spec, kept


def _parse(record: StudyRecord, trial: TrialRecord, deps: Deps, kept: Kept | None,
           basis: tuple[Any, ...], log_start: bool) -> ParsedOutput:
    """The attempt's output parsed, or why it was lost; with ``log_start`` and a cluster's logs,
    where the attempt's log began, read once the output was."""
    try:
        summary, tail, size = _observations(record, trial, deps, kept, basis[0])
    except OutputLost as lost:
        return ParsedOutput(basis, new_summary(record.spec), lost=lost)
    if not log_start or deps.logs is None:
        return ParsedOutput(basis, summary, tuple(tail), size)
    return ParsedOutput(basis, summary, tuple(tail), size, start_read=True,
                        start=deps.logs.log_start(basis[0]))


def kept_log(record: StudyRecord, trial: TrialRecord, deps: Deps) -> Kept | None:
    """What was kept of the attempt's running log, None when nothing was (or nothing is kept there)."""
    if deps.logs is None or not keeps(record.spec):
        return None
    kept = deps.store.log_read(record.name, trial.number).kept_of(trial.attempt)
    return kept if kept.cursors else None


class _Seen:
    """The output's lines as they go by: the last ones, each cut to :data:`TAIL_LINE_CHARS`, and
    the bytes of them all."""

    def __init__(self) -> None:
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.size = 0

    def __call__(self, line: str) -> str:
        self.size += len(line.encode()) + 1
        self.tail.append(line if len(line) <= TAIL_LINE_CHARS else
                         f"{line[:TAIL_LINE_CHARS]} [katuna: {len(line) - TAIL_LINE_CHARS} more characters cut]")
        return line


def _observations(record: StudyRecord, trial: TrialRecord, deps: Deps, kept: Kept | None,
                  launch: TrialLaunch) -> tuple[Summary, list[str], int]:
    """The attempt's observations, the last lines it printed (for failure reasons), and the
    bytes of its output. What was kept of a run lost (a disrupted pod, replaced since:
    :func:`~functions.core.log_keep.lost_run`) counts for nothing: its replacement's output,
    read now, is the attempt's (:func:`_read_whole`); else the lines past what was kept are
    read (:func:`_past_kept`)."""
    seen = _Seen()
    if kept is not None and deps.logs is not None and lost_run(kept, deps.logs.counted_pods(launch)):
        kept = None  # what was kept is of a run lost: the output read now gives every observation
    if kept is not None and deps.logs is not None:
        summary = _pastkept_log(record, trial, deps, deps.logs, kept, launch, seen)
    else:
        summary = _read_whole(record, trial, deps, launch, seen)
    return summary, list(seen.tail), seen.size


def _pastkept_log(record: StudyRecord, trial: TrialRecord, deps: Deps, logs: RunningLogs, kept: Kept,
               launch: TrialLaunch, seen: _Seen) -> Summary:
    """The observations kept as the running log was read, with those of the lines read now past
    them; or, where the File collector's wrapper printed the whole metrics file once the command
    ended, that file's alone (:class:`~functions.core.file_collector.EndCopy`)."""
    spec = record.spec
    summary = new_summary(spec)
    summary.resume(kept.tally, deps.store.observations(record.name, trial.number, trial.attempt))
    parse_line, parse_file = line_parser(spec, launch), format_parser(spec)
    ended, whole = EndCopy(), new_summary(spec)
    for text, new in unread(logs.stamped_output(launch), kept):
        seen(text)
        if new:
            summary.add(parse_line([text]))
        whole.add(parse_file(ended.lines([text])))
    return whole if ended.whole else summary


def _read_whole(record: StudyRecord, trial: TrialRecord, deps: Deps, launch: TrialLaunch, seen: _Seen) -> Summary:
    """The observations of the attempt's whole output, or of its metrics file once its output was
    read through. A file the executor refused to read (a local trial's metrics file that is a
    link to the service's own ``/proc/self/environ``) gives no more observations, and its
    refusal is the last line, which a failure's reason shows; one it read only part of (more
    than it reads) gives none at all, so the trial fails naming the limit."""
    spec = record.spec
    summary, parse = new_summary(spec), format_parser(spec)
    try:
        for line in _observed(record, trial, deps, launch, seen):
            summary.add(parse([line]))
    except RefusedFile as refused:
        seen.tail.append(f"katuna: {refused}")
        if not refused.whole:
            summary = new_summary(spec)  # a part of the attempt's measure is not its measure
    return summary


def _observed(record: StudyRecord, trial: TrialRecord, deps: Deps, launch: TrialLaunch, seen: _Seen) -> Iterator[str]:
    """The lines that hold the attempt's observations: its output's (each ``seen``), or, for a
    File or TensorFlowEvent collector, its metrics file's, read once its output was read through."""
    collector = record.spec.metrics_collector

    def output() -> Iterator[str]:
        for line in deps.executor.output(launch):
            yield seen(line.rstrip("\n"))

    if collector.kind in ("file", "tfevent") and collector.path is not None:
        deque(output(), maxlen=0)
        found = deps.executor.read_file(launch, template.substitute(collector.path, trial.params, launch.job_name))
        yield from log_keep.observed_lines(record.spec, found)
    else:
        yield from output()
