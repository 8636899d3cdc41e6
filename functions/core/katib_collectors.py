"""Katib's metrics collectors in katuna's terms: StdOut (with its filters), File and
TensorFlowEvent, with Katib's defaults and its webhook's rules; the others are refused, each
with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import re2

from functions.core.errors import Problem
from functions.core.limits import DEFAULTS
from functions.core.metric_filters import compile_filter

COLLECTORS_REFUSED = {
    "PrometheusMetric": "katuna reads metrics from text lines, and scrapes no trial",
    "Custom": "katuna runs no collector container of its own beside a trial",
    "Push": ("Katib's Push collector stores what the trial sends to Katib's DB manager over gRPC (its SDK's "
             "report_metrics, or tune's metrics_collector_config={'kind': 'Push'}), and katuna runs no DB manager: it "
             "reads every trial's metrics from its output and takes no pushed metrics: print each metric as "
             "name=value instead (print(f'loss={loss}'), in place of report_metrics({'loss': loss})) and leave out "
             "the collector (StdOut, Katib's default, under which the Experiment runs on Katib too)"),
}
"""Katib metrics collectors katuna does not run, each with the reason."""
FORMER_PUSH = "None"
"""The kind Katib 0.17 and earlier gave a trial that writes its own metrics, ``Push`` since 0.18."""
RUN = "StdOut, File or TensorFlowEvent"
"""The collector kinds katuna runs, as a refusal names what it expected."""
KINDS = ("StdOut", "File", "TensorFlowEvent", *COLLECTORS_REFUSED)
"""Every collector kind Katib's webhook takes (``CollectorKind`` in Katib's ``common_types.go``)."""
EVENTS_DIRECTORY = "/var/log/katib/tfevent/"
"""Katib's default directory of the TensorFlowEvent collector."""
METRICS_FILE = "/var/log/katib/metrics.log"
"""Katib's default file of the File collector."""
TWO_GROUPS = re2.compile(r".*\(.*\).*\(.*\).*")
"""What Katib's webhook requires a filter's text to match (``validateMetricsCollector``)."""
UNCHECKED = ("as Katib's webhook says of a File collector's filter (it takes a StdOut filter unchecked, and "
             "Katib's collector then reads no metric through this one)")
"""Whose rule a StdOut filter without two groups one after the other breaks."""
FILE_FORMATS = {"TEXT": "text", "JSON": "json"}
"""The File collector's formats, as Katib spells them, each with the native one it becomes."""


def collector(spec: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any] | None:
    """The native ``metricsCollector`` of a ``metricsCollectorSpec``; None for Katib's default,
    StdOut without filters, which is katuna's default too."""
    given = spec.get("collector")
    kind = given.get("kind") if isinstance(given, Mapping) else "StdOut"
    if not kind:
        # Katib defaults a missing collector to StdOut, not a collector without a kind (validator.go).
        problems.append(Problem("spec.metricsCollectorSpec.collector.kind",
                                f"required: the collector given has no kind; expected {RUN} "
                                "(or leave out spec.metricsCollectorSpec.collector for StdOut)"))
        return None
    source = spec.get("source") or {}
    filters = list((source.get("filter") or {}).get("metricsFormat") or [])
    problems += _filter_problems(filters, kind)
    if kind == "StdOut":
        return {"kind": "stdout", "filters": filters} if filters else None
    custom = (spec.get("collector") or {}).get("customCollector") is not None
    if custom:
        problems.append(Problem("spec.metricsCollectorSpec.collector.customCollector",
                                f"a custom collector container is not run by katuna: {COLLECTORS_REFUSED['Custom']}; "
                                f"expected the collector's kind {RUN}, without a customCollector"))
    if kind == "File":
        return _file_collector(source, filters, problems)
    if kind == "TensorFlowEvent":
        return _event_collector(source, problems)
    if not (custom and kind == "Custom"):  # the custom collector's refusal says why already
        problems.append(Problem("spec.metricsCollectorSpec.collector.kind", _refused_kind(kind)))
    return None


def _refused_kind(kind: Any) -> str:
    """Why a collector kind is refused: one of Katib's katuna does not run, with the reason; or
    no kind of Katib's at all (``None``, ``stdout``), as Katib's webhook refuses it, with the
    kind it is spelt like where there is one (Katib's kinds are case-sensitive), or the kind it
    became (``None``, :data:`FORMER_PUSH`)."""
    if kind in COLLECTORS_REFUSED:
        return f"{kind} is not supported: {COLLECTORS_REFUSED[kind]}; expected {RUN}"
    like = next((known for known in KINDS if known.lower() == str(kind).lower()), None)
    hint = f", though it is spelt like {like} (Katib's kinds are case-sensitive)" if like else ""
    if kind == FORMER_PUSH:
        hint = (", though Katib 0.17 and earlier had it: the trial writes its own metrics to Katib's database, the "
                f"kind Katib 0.18 renamed Push, which katuna does not take ({COLLECTORS_REFUSED['Push']})")
    return (f"{kind!r} is no metrics collector kind of Katib's (its webhook refuses it: invalid metrics collector "
            f"kind){hint}; expected {RUN}, the kinds katuna runs")


def _filter_problems(filters: list[Any], kind: Any) -> list[Problem]:
    """Katib's webhook's rule for a filter that compiles: its text must match
    :data:`TWO_GROUPS`, two parenthesised parts one after the other on one line (the name's
    group, then the value's). A filter whose groups nest (``((\\w+)=\\d+)``) is refused, though it
    has two; one that does not compile is refused as the native study refuses it. The webhook
    checks the filters of every ``kind`` but ``StdOut`` (and ``Push``), whose filters it takes unread;
    katuna refuses them alike, saying so: Katib's collector reads no metric through them."""
    found = []
    for i, pattern in enumerate(filters):
        if not isinstance(pattern, str) or len(pattern) > DEFAULTS.text or TWO_GROUPS.search(pattern):
            continue  # a filter too long is refused as the native study refuses it
        try:
            compile_filter(pattern)
        except re2.error:
            continue
        said = "as Katib's webhook says" if kind != "StdOut" else UNCHECKED
        found.append(Problem(f"spec.metricsCollectorSpec.source.filter.metricsFormat[{i}]",
                             f"two top subexpressions are required, {said}: two parenthesised groups, one after "
                             f"the other, the metric's name then its value, got {pattern!r:.200}"))
    return found


def _file_collector(source: Mapping[str, Any], filters: list[Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's File collector, with its defaults and its webhook's rules (``validator.go``,
    ``validateMetricsCollector``): one file (``/var/log/katib/metrics.log`` unless given) at an
    absolute path, its format exactly ``TEXT`` (the default) or ``JSON``, and no filter beside
    JSON."""
    where = "spec.metricsCollectorSpec.source"
    file = source.get("fileSystemPath") or {}
    path, fmt = file.get("path") or METRICS_FILE, file.get("format") or "TEXT"
    if (file.get("kind") or "File") != "File":  # Katib's defaulting webhook fills in an empty kind
        problems.append(Problem(f"{where}.fileSystemPath.kind",
                                f"expected File: the File collector reads one file, got {file.get('kind')!r} "
                                "(a Directory is read by the TensorFlowEvent collector)"))
    if not str(path).startswith("/"):
        problems.append(Problem(f"{where}.fileSystemPath.path",
                                f"expected an absolute path (Katib's webhook: file path where metrics file exists is "
                                f"required), got {path!r}"))
    if fmt not in FILE_FORMATS:
        problems.append(Problem(f"{where}.fileSystemPath.format",
                                f"expected TEXT or JSON, in capitals (Katib's webhook: format of metrics file is "
                                f"required for metrics collector), got {fmt!r}"))
    if fmt == "JSON" and source.get("filter") is not None:
        problems.append(Problem(f"{where}.filter", "filter must be nil when format of metrics file is json: each "
                                                   "JSON line's keys name its metrics, and no filter applies"))
    return {"kind": "file", "path": path, "format": FILE_FORMATS.get(fmt, "text"),
            **({"filters": filters} if filters else {})}


def _event_collector(source: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's TensorFlowEvent collector, with its defaults and its webhook's rules: an absolute
    directory (``/var/log/katib/tfevent/`` unless given), no format, and (katuna's own rule)
    no filters, which apply to text."""
    path = "spec.metricsCollectorSpec.source"
    file = source.get("fileSystemPath") or {}
    directory = file.get("path") or EVENTS_DIRECTORY
    if (file.get("kind") or "Directory") != "Directory":
        problems.append(Problem(f"{path}.fileSystemPath.kind", f"expected Directory: the TensorFlowEvent collector "
                                                               f"reads every event file under one, got {file.get('kind')!r}"))
    if not str(directory).startswith("/"):
        problems.append(Problem(f"{path}.fileSystemPath.path", f"expected an absolute directory path where the "
                                                               f"TensorFlow event files are written, got {directory!r}"))
    if file.get("format"):
        problems.append(Problem(f"{path}.fileSystemPath.format", "must be empty: the TensorFlowEvent collector reads "
                                                                 "TensorFlow event files"))
    if (source.get("filter") or {}).get("metricsFormat"):
        problems.append(Problem(f"{path}.filter.metricsFormat", "filters apply to text lines; the TensorFlowEvent "
                                                                "collector matches event tags to the metric names"))
    return {"kind": "tfevent", "path": directory}
