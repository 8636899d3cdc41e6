"""A cluster trial's output lines holding a carriage return (a progress bar redrawn in place,
then a report on the same line) are read as a local trial's are, and as Katib's collector reads
them: the report after the ``\\r`` counts, in the observations katuna keeps as it reads the
running log as in the log it reads at the end."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest
import yaml
from http_helpers import Service
from kube_stub import KubeStub
from test_log_rotation import wait_for

from functions.core.launch import Progress, TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.log_cursor import RunningLog, complete_lines, reports
from functions.core.log_keep import Kept, take, unread
from functions.core.metrics import parse_text

KUBE_NAMESPACES = ("returns",)


def progress_then_reports(signal: Path) -> str:
    """Redraws a progress line, ends it with its best loss after a carriage return, waits until
    katuna read its running log to that line, then prints a worse loss."""
    return f"""
import os, sys, time
for done in range(0, 100, 25):
    print(f"\\repoch 1: {{done}}%", end="", flush=True)
print("\\repoch 1: 100% loss=0.1", flush=True)
{wait_for(signal)}
time.sleep(1.0)
print("loss=0.5", flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_report_after_a_carriage_return_counts_in_a_cluster_trials_kept_log(kube: KubeStub, tmp_path: Path):
    signal = tmp_path / "read"

    def read(pod: str, last: str) -> None:
        if "loss=0.1" in last:
            signal.touch()

    kube.kubelets.on_log_read = read
    definition = {
        "name": "returns", "objective": {"metric": "loss", "direction": "minimize", "strategies": {"loss": "min"}},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 1}, "parallelism": 1, "maxTrials": 1,
        "trialTemplate": {"image": "python:3.12",
                          "command": [sys.executable, "-c", progress_then_reports(signal), "--x=${trialParameters.x}"]},
    }
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="returns", KATUNA_K8S_KEEP_SECONDS="0.3")
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        service.wait_for("returns", timeout=60)
        trial = service.json("GET", "/studies/returns/trials/0")[1]
    finally:
        kube.kubelets.on_log_read = None
        service.close()
    assert (trial["state"], trial["values"]) == ("COMPLETE", [0.1]), trial["reason"]
    assert [o["value"] for o in trial["observations"]] == [0.1, 0.5]


def test_a_stamped_line_is_read_cut_at_its_carriage_returns():
    """A timestamped read keeps a line's carriage returns (only the text after a line break has a
    time ahead of it); where metrics are read, the line is cut at them, each piece a line."""
    stamp = "2026-01-01T00:00:00.000000001Z"
    lines = list(bounded_lines([f"{stamp} 50%\r100% loss=0.1\r\n{stamp} loss=0.5\n".encode()], returns=True))
    assert [texts for _, _, texts in complete_lines(lines)] == [["50%\r100% loss=0.1"], ["loss=0.5"]]
    parse = partial(parse_text, metrics=["loss"])
    taken = take(RunningLog("pod", lines), parse, "loss", None)
    assert taken is not None and [o.value for o in taken.observations] == [0.1, 0.5]
    assert list(unread([("pod", lines)], Kept(1))) == [("50%", True), ("100% loss=0.1", True), ("loss=0.5", True)]
    launch = TrialLaunch("s", "uid", 0, 1, "s-0", [], {}, ".", None, progress=Progress("loss", (), "text"))
    assert [(r.step, r.value) for r in reports(launch, RunningLog("pod", lines), None)] == [(1, 0.1), (2, 0.5)], \
        "each report a step for early stopping, the one after the carriage return too"
