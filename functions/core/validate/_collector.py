"""The ``metricsCollector`` of a study: where a trial's metrics are read from (its output, a
file, TensorFlow event files), in which format and through which filters, and whether katuna
can wrap a ``trialSpec``'s primary container to read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import file_collector, trial_spec
from functions.core.limits import PREFIX, Limits
from functions.core.metric_filters import check_filter
from functions.core.reader import Reader, join
from functions.core.spec import MetricsCollector, TrialTemplate

COLLECTOR_KINDS = ("stdout", "file", "tfevent")
COLLECTOR_FORMATS = ("text", "json")
NON_FINITE_RULES = ("fail", "skip")
STEP_RULES = ("named", "reports")
"""The values these fields take; the ``studies.katuna.dev`` schema lists the same (a test compares them)."""


def parse_collector(r: Reader, data: Any, limits: Limits) -> MetricsCollector:
    """The metrics collector (stdout and text by default); problems go to ``r``, and its filters
    are kept only within ``limits``."""
    path = "metricsCollector"
    item = r.mapping(data, path, {"kind", "path", "format", "filters", "nonFinite", "steps"})
    kind = r.get(item, "kind", path, "str") or "stdout"
    file_path = r.get(item, "path", path, "str")
    fmt = r.get(item, "format", path, "str") or "text"
    filters = r.get(item, "filters", path, "list") or []
    non_finite = r.get(item, "nonFinite", path, "str") or "fail"
    if non_finite not in NON_FINITE_RULES:
        r.fail(join(path, "nonFinite"), f"expected fail (a NaN or infinite objective fails the trial) or skip (such a "
                                        f"report is no value, as in Katib), got {non_finite!r}")
    steps = r.get(item, "steps", path, "str") or "named"
    if steps not in STEP_RULES:
        r.fail(join(path, "steps"), f"expected named (a line's step or epoch key names its step) or reports (each "
                                    f"report of the objective is the next step, as Katib counts them), got {steps!r}")
    if kind not in COLLECTOR_KINDS:
        r.fail(join(path, "kind"), f"expected stdout, file or tfevent, got {kind!r}")
    if kind in ("file", "tfevent") and file_path is None:
        r.fail(join(path, "path"), f"required when kind is {kind}")
    if kind == "stdout" and file_path is not None:
        r.fail(join(path, "path"), "only used when kind is file or tfevent")
    if kind == "tfevent":
        _event_collector(r, item)
    if fmt not in COLLECTOR_FORMATS:
        r.fail(join(path, "format"), f"expected text or json, got {fmt!r}")
    if len(filters) > limits.filters:
        r.fail(join(path, "filters"), f"expected at most {limits.filters:,} (set by {PREFIX}MAX_FILTERS), "
                                      f"got {len(filters):,}")
        return MetricsCollector(kind, file_path, fmt, (), non_finite, steps)
    for i, pattern in enumerate(filters):
        message = check_filter(pattern, limits.text)
        if message:
            r.fail(f"{path}.filters[{i}]", message)
    return MetricsCollector(kind, file_path, fmt, tuple(filters), non_finite, steps)


def _event_collector(r: Reader, item: Mapping[str, Any]) -> None:
    """The tfevent collector reads the scalars of TensorFlow event files, not lines of text."""
    if item.get("format") not in (None, "text"):
        r.fail("metricsCollector.format", "only used when kind is stdout or file: the tfevent collector reads "
                                          "TensorFlow event files")
    if item.get("filters"):
        r.fail("metricsCollector.filters", "only used when kind is stdout or file: the tfevent collector matches "
                                           "event tags to the metric names, not lines to filters")


def check_wrappable(r: Reader, trial: TrialTemplate, collector: MetricsCollector) -> None:
    """A ``trialSpec`` whose metrics a file or tfevent collector reads has a primary container
    katuna can wrap on Kubernetes (:func:`file_collector.unwrappable`): refused here, not at its
    first trial."""
    if collector.kind not in ("file", "tfevent") or trial.trial_spec is None:
        return
    name = trial_spec.primary_container_name(trial.trial_spec, trial.primary_container,
                                             dict(trial.primary_pod_labels) or None)
    why = None if name is None else file_collector.unwrappable(
        trial.trial_spec, name, "File" if collector.kind == "file" else "TensorFlowEvent")
    if why is not None:
        r.add([why])
