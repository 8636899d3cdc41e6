"""The TensorFlowEvent collector with a long run's per-step scalars: the reports read (by katuna,
and by the reader printing them to a cluster pod's log) are bounded, and reduce to the metrics
and the observation log that all of them in step order give."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import tfevent_writer as writer

from functions.core import tfevent_lines, tfevents
from functions.core.metric_summary import MAX_OBSERVATIONS, Summary
from functions.core.metrics import parse_json_lines

NAMES = ["accuracy", "test/accuracy", "loss"]
VALUES = [float("nan"), float("inf"), float("-inf")] + [round(random.Random(v).uniform(-5, 5), 3) for v in range(40)]


def _records(seed: int, count: int) -> list[str]:
    """``count`` records of three folders, steps with ties and out of order, values with NaNs
    and infinities, as :func:`tfevents.main` prints them."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        folder, tag = rng.choice([("/logs/train", "accuracy"), ("/logs/test", "accuracy"), ("/logs/test", "loss")])
        lines.append(json.dumps({"dir": folder, "tag": tag, "step": rng.randrange(count // 3),
                                 "value": repr(rng.choice(VALUES))}))
    return lines


def _all_in_step_order(lines: list[str]) -> list[str]:
    """Every report, in step order: what the collector read before it was bounded."""
    found = [(int(r["step"]), json.dumps({name: r["value"]})) for r in tfevent_lines.records(lines) for name in NAMES
             if tfevents.matches(str(r["tag"]), name, str(r["dir"]))]
    return [line for _, line in sorted(found, key=lambda item: item[0])]


def _summary(lines: list[str], keep: int, skip: bool) -> tuple[str, str]:
    summary = Summary({"accuracy": "max", "test/accuracy": "latest", "loss": "min"}, keep, ["loss"], skip)
    summary.add(parse_json_lines(lines, NAMES))
    return repr(summary.reduced()), repr(summary.kept)


def test_the_kept_reports_reduce_as_all_of_them_do():
    """Whatever the order and the values, the reports kept give the same metrics (NaN, infinities,
    latest and skipped non-finite values included) and the same observations kept, and keeping
    them again keeps them all."""
    for seed in range(40):
        lines = _records(seed, 600)
        kept = tfevent_lines.metric_lines(lines, NAMES, keep=10)
        assert len(kept) <= 10 + 8 * len(NAMES)
        for skip in (False, True):
            assert _summary(kept, 10, skip) == _summary(_all_in_step_order(lines), 10, skip), seed
        again = [json.dumps({"dir": "/logs/test" if name != "accuracy" else "/logs/train",
                             "tag": name.split("/")[-1], "step": 0, "value": json.loads(line)[name]})
                 for line in kept for name in json.loads(line)]
        assert len(tfevent_lines.metric_lines(again, ["accuracy", "loss"], keep=10)) <= len(kept)


def test_a_long_runs_scalars_are_read_and_printed_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """30,000 steps of two metrics: the reader prints a bounded share of them to the pod log, and
    katuna reads those (or every record) to the metrics all of them give."""
    steps = 30_000
    writer.write(tmp_path / "test" / "events.out.tfevents.1",
                 [writer.event(step, [("accuracy", step / steps), ("loss", 1 - step / steps)], writer.SIMPLE)
                  for step in range(steps)])
    tfevents.main(["katuna-metrics-file| ", str(tmp_path), json.dumps(["accuracy", "loss"])])
    printed = capsys.readouterr().out.split("\n")[:-1]
    assert len(printed) <= MAX_OBSERVATIONS + 16, "a bounded number of records, far under the kubelet's log size"
    records = [line.removeprefix("\rkatuna-metrics-file| ") for line in printed]
    every = [json.dumps(record) for record in tfevents.directory_records(str(tmp_path))]
    read = tfevent_lines.metric_lines(records, ["accuracy", "loss"])
    assert len(tfevent_lines.metric_lines(every, ["accuracy", "loss"])) <= MAX_OBSERVATIONS + 16
    summaries = [Summary({"accuracy": "max", "loss": "min"}) for _ in range(2)]
    summaries[0].add(parse_json_lines(read, ["accuracy", "loss"]))
    summaries[1].add(parse_json_lines(_all_in_step_order(every), ["accuracy", "loss"]))
    assert summaries[0].reduced() == summaries[1].reduced() == pytest.approx({"accuracy": 1, "loss": 0}, abs=1e-4)
    assert summaries[0].kept == summaries[1].kept
    assert tfevents.KEEP == MAX_OBSERVATIONS
