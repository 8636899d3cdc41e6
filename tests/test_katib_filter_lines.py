"""A Katib Experiment's ``metricsFormat`` filters are matched against each whole output line, as
Katib's collector matches them: a leading RFC 3339 timestamp is the observation's time, and it
stays part of the line the filters see, so a filter that reads it, or is anchored at the line's
start, finds what it finds on Katib."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from test_katib import experiment

from functions.core.formats import load_study
from functions.core.metrics import parse_text

LOGGED = ("import sys\n"
          "for value in (0.5, 0.25):\n"
          "    print(f'2024-03-04T17:55:08Z INFO loss={value}')\n"
          "print('INFO loss=9.0')\n")
"""A trial logging each report behind an RFC 3339 time and its level, as a logging formatter
with an ISO time writes it, and one line without them (a plain print)."""


def run_filtered(embedded, tmp_path: Path, name: str, filters: list[str]) -> list:
    """The trials of a Katib Experiment whose trial prints :data:`LOGGED`, read with ``filters``."""
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss",
                                "metricStrategies": [{"name": "loss", "value": "min"}]},
                     metricsCollectorSpec={"source": {"filter": {"metricsFormat": filters}}})
    doc["metadata"]["name"] = name
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", LOGGED, "${trialParameters.position}"]
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    embedded.run(name)
    return embedded.store.trials(name)


def test_a_filter_that_reads_the_timestamp_finds_the_timestamped_reports(embedded, tmp_path: Path):
    """Katib's collector matches ``Z INFO +(\\w+)=(...)`` in ``2024-03-04T17:55:08Z INFO loss=0.5``
    (its filters see the whole line), and not in the plain ``INFO loss=9.0``."""
    trials = run_filtered(embedded, tmp_path, "stamped", [r"Z INFO +([\w|-]+)=([+-]?\d*(\.\d+)?)"])
    assert [(t.state, t.values) for t in trials] == [("COMPLETE", [0.25])], trials[0].reason


def test_a_filter_anchored_at_the_line_start_skips_timestamped_lines(embedded, tmp_path: Path):
    """``^INFO ...`` matches only the line that starts with ``INFO``, as on Katib, where a
    timestamped line starts with its time."""
    trials = run_filtered(embedded, tmp_path, "anchored", [r"^INFO ([\w|-]+)=([+-]?\d*(\.\d+)?)"])
    assert [(t.state, t.values) for t in trials] == [("COMPLETE", [9.0])], trials[0].reason


def test_the_timestamp_stays_the_observations_time_with_a_filter_that_reads_it():
    found = parse_text(["2024-03-04T17:55:08Z INFO loss=0.5"], ["loss"], [r"Z INFO (\w+)=(\S+)"])
    assert [(o.value, o.timestamp) for o in found] == [(0.5, "2024-03-04T17:55:08Z")]
    assert parse_text(["2024-03-04T17:55:08Z loss=0.5"], ["loss"], [r"^(\w+)=(\S+)"]) == []
