"""The TensorFlowEvent collector's records read back from lines, as katuna reads them from a
cluster pod's log (where :func:`functions.core.tfevents.main` printed them) or from a local
trial's event files: each report of a study's metrics, in step order, in bounded memory."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from functions.core.tfevents import KEEP, kept_reports, matches, step_of


def records(lines: Iterable[str]) -> Iterator[dict[str, object]]:
    """The records among lines of JSON (as :func:`~functions.core.tfevents.main` prints them); other
    lines are skipped."""
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's recursion limit
            continue
        if isinstance(record, dict) and {"dir", "tag", "step", "value"} <= record.keys():
            yield record


def metric_lines(lines: Iterable[str], metrics: Iterable[str], keep: int = KEEP) -> list[str]:
    """Each report of ``metrics`` among the records in ``lines`` as a JSON line
    ``{"name": "value"}``, in step order (each report of the objective is one step, as Katib
    counts them): those that reduce as all of them do, in bounded memory
    (:func:`~functions.core.tfevents.kept_reports`)."""
    names = list(metrics)
    reports = ((name, step_of(record), str(record["value"]), None) for record in records(lines) for name in names
               if matches(str(record["tag"]), name, str(record["dir"])))
    return [json.dumps({name: value}) for _, _, name, value, _ in kept_reports(reports, keep)]
