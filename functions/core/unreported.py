"""Trials that never reported the study's objective while reporting other metrics, and the
study that stops once its first trials all ended so.

A study whose objective's name is misspelt (``metric: los`` where the trial prints ``loss=``)
has every trial fail: each prints its metrics under the name it knows, none under the name the
study asks for. Where the default text rule reads a trial's output, the reason of such a trial
names the metrics its last lines report and the field that names the objective (:func:`unreported`),
and once the first :data:`UNREPORTED_TRIALS` trials of a study to end have all failed so, for
the same objective, with none completed or pruned, the study fails saying what to fix
(:func:`misreported`), whatever its ``maxFailedTrials``: every later trial would fail alike. A
trial that printed nothing metric-like, or that exited with an error, is no sign of a misspelt
name: one among those first trials leaves the study to ``maxFailedTrials``. Nor is one whose log
the kubelet rotated, whose objective's reports may have gone with the lines lost: it is marked as
never reporting its objective, without what it printed instead (:func:`after_rotation`).

A trial that prints its objective as ``loss: 0.3`` (Keras' form), which the default rule
(``name=value``) passes over, fails alike, its reason quoting the report and saying what to
print or which field's rule could read it (:func:`unreported`); once the first
:data:`UNREPORTED_TRIALS` trials to end all printed the same objective so, the study fails
saying so (:data:`COLON_REASON`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from functions.core.metrics import names_printed
from functions.core.records import METRICS_UNAVAILABLE, Counts, TrialRecord, Unreported
from functions.core.spec import Study

UNREPORTED_TRIALS = 3
"""The first trials of a study to end that, all failing for the same objective never reported
while they reported other metrics, fail the study."""
PREFIX = f"{METRICS_UNAVAILABLE}: objective "
"""How the reason of a trial that never reported an objective begins."""
STUDY_REASON = "every trial reported other metrics than its objective"
"""How the reason of a study stopped by :func:`misreported` begins."""
COLON_REASON = "every trial printed its objective with a colon"
"""How the reason of a study :func:`misreported` stops for trials that print ``loss: 0.3`` begins."""


def objective_field(spec: Study, katib: bool) -> str:
    """The field that names the study's objective: a Katib Experiment's (``katib``)
    ``spec.objective.objectiveMetricName``, else ``objective.metric`` (``objective.metrics``
    for several)."""
    if katib:
        return "spec.objective.objectiveMetricName"
    return "objective.metrics" if len(spec.objectives) > 1 else "objective.metric"


def unreported(missing: Sequence[str], lines: Sequence[str] | None, spec: Study, katib: bool) -> tuple[str, Unreported]:
    """What the reason of a trial that never reported the ``missing`` objectives adds to
    "objective ... never reported (...", and the mark stored beside its verdict that says the same
    to the stop rule: where the default text rule read its last ``lines`` (None where another rule
    did: nothing), an objective they print as ``name: value`` (:func:`_colon_printed`), and the
    metrics they report with the field that names the objective (:func:`_instead`): none of the
    study's objectives, as one reported is no misspelling of one missing."""
    if lines is None:
        return "", Unreported(tuple(missing))
    printed = names_printed(lines, besides={o.metric for o in spec.objectives})
    field = objective_field(spec, katib)
    rule_field = "spec.metricsCollectorSpec.source.filter.metricsFormat" if katib else "metricsCollector.filters"
    colon = _colon_printed(lines, missing)
    said = (_colon_said(colon, rule_field) if colon else "") + _instead(printed, field)
    return said, Unreported(tuple(missing), tuple(printed), field if printed else "",
                            colon[0] if colon else "", rule_field if colon else "")


def after_rotation(mark: Unreported | None) -> Unreported | None:
    """The mark of a trial whose log lost lines to the kubelet's rotation: the objectives it never
    reported (Katib counts it ``MetricsUnavailable``), without what its last lines print instead,
    since the objective's reports may be among the lines lost: no sign of a misspelt name, nor of
    a report with a colon, for :func:`misreported`."""
    return None if mark is None else Unreported(mark.missing)


def _instead(printed: Sequence[str], field: str) -> str:
    """The metrics the last lines report (``printed``), and the ``field`` that names the
    objective; nothing where they reported none."""
    return f"; its last lines report {', '.join(printed)}: is the name in {field} misspelt?" if printed else ""


def _colon_said(colon: tuple[str, str], rule_field: str) -> str:
    """The last report of an objective printed as ``name: value`` (``colon``: its name and
    value), what to print instead, and the field whose rule could read it as printed (a Katib
    Experiment's ``metricsFormat``)."""
    name, found = colon
    return (f"; its last lines print {name} with a colon ({name}: {found}), which is no name=value: "
            f"print {name}={found}, or give {rule_field} a rule that reads it")


def _colon_printed(lines: Sequence[str], missing: Sequence[str]) -> tuple[str, str] | None:
    """The first of the ``missing`` objectives that ``lines`` print as ``name: value`` (Keras'
    ``- loss: 0.2345``, a ``print(f"loss: {x}")``), which the default rule, reading
    ``name=value`` only, passes over, with its last such value; None where they print none so."""
    for name in missing:
        found = _colon_report(name, lines)
        if found is not None:
            return name, found
    return None


def _colon_report(name: str, lines: Sequence[str]) -> str | None:
    """The number the last of ``lines`` to print ``name: <number>`` gives, or None."""
    pattern = re.compile(rf"(?<![\w|-]){re.escape(name)}\s*:\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
    for line in reversed(lines):
        found = pattern.findall(line)
        if found:
            return str(found[-1])
    return None


def _names(missing: Sequence[str]) -> str:
    """The objectives never reported, as a trial's reason names them."""
    return ", ".join(repr(name) for name in missing)


def _reported(trial: TrialRecord) -> tuple[str, tuple[str, ...], str] | None:
    """The objectives a failed trial never reported, the metrics it reported instead and the
    field that names them, from the mark beside its verdict; None for a trial that failed
    otherwise."""
    mark = trial.unreported
    return None if mark is None or not mark.printed else (_names(mark.missing), mark.printed, mark.field)


def _colon(trial: TrialRecord) -> tuple[str, str, str] | None:
    """The objectives a failed trial never reported, the one it printed as ``name: value`` only
    and the field whose rule would read it, from the mark beside its verdict; None for a trial
    that failed otherwise."""
    mark = trial.unreported
    return None if mark is None or not mark.colon else (_names(mark.missing), mark.colon, mark.rule_field)


def may_be_misreported(counts: Counts, finished: TrialRecord) -> bool:
    """Whether the study may stop for :func:`misreported` as ``finished`` ends: it never
    reported its objective while reporting other metrics, none of the study's trials completed or
    were pruned, and enough failed. Asked first, so that no trial is read for any other end."""
    return not (counts.complete or counts.pruned) and counts.failed >= UNREPORTED_TRIALS \
        and (_reported(finished) is not None or _colon(finished) is not None)


def misreported(first: Iterable[TrialRecord], counts: Counts) -> str | None:
    """Why the study stops, and what to fix, where the ``first`` failed trials to end
    (:data:`UNREPORTED_TRIALS` of them, none completed or pruned by ``counts``) all never
    reported the same objectives, printing them with a colon or reporting other metrics; None
    otherwise."""
    trials = list(first)
    if len(trials) < UNREPORTED_TRIALS or counts.complete or counts.pruned:
        return None
    return _with_colons(trials) or _misspelt(trials)


def _with_colons(trials: list[TrialRecord]) -> str | None:
    """Why the study stops where each of ``trials`` printed the same objective as ``name: value``."""
    found = [_colon(trial) for trial in trials]
    if found[0] is None or any(colon != found[0] for colon in found):
        return None
    missing, name, field = found[0]
    return (f"{COLON_REASON}: objective {missing} never reported, while the first {len(trials)} trials print "
            f"{name}: <number>, which is no name=value; every later trial would fail alike, so the study "
            f"stops. Have the trials print {name}=<number>, or give {field} a rule that reads it, then delete "
            "this study and submit it again (submitted again as it is, a failed study stays failed)")


def _misspelt(trials: list[TrialRecord]) -> str | None:
    """Why the study stops where each of ``trials`` reported other metrics than the same objective."""
    found = [_reported(trial) for trial in trials]
    if None in found:
        return None
    reports = [report for report in found if report is not None]
    if len({(missing, field) for missing, _, field in reports}) != 1:
        return None
    missing, _, field = reports[0]
    printed = list(dict.fromkeys(name for _, names, _ in reports for name in names))
    return (f"{STUDY_REASON}: objective {missing} never reported, while the first {len(reports)} trials "
            f"report {', '.join(printed)}; every later trial would fail alike, so the study stops. Fix the "
            f"name in {field} (or have the trials print the objective under it), then delete this study and "
            "submit it again (submitted again as it is, a failed study stays failed)")
