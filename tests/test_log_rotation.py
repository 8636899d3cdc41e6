"""The kubelet rotates a running container's log at ``containerLogMaxSize`` (10 Mi by default)
and the API serves only the current file: a chatty cluster trial loses its first lines, with
any best value printed among them. The stand-in rotates as the kubelet does (here at 4 KiB);
katuna says in the trial's reason that the observations before the rotation are lost: for
certain where it read the running log before (early stopping), as likely where the log begins
long after the container started while the trial printed fast enough to fill a file."""

from __future__ import annotations

import sys

import pytest
import yaml
from http_helpers import Service
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.logs import Capture, serve
from kube_stub import KubeStub
from test_kube_standin_simulated import finished

from functions.adapters.kubernetes_executor import KubernetesExecutor, api_client
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch
from functions.core.log_rotation import rotated

NAMESPACE = "log-rotation"
KUBE_NAMESPACES = (NAMESPACE,)
SMALL = 4096

FLOOD = "".join(f"step={i} debug output of a chatty trial, padded {'.' * 40}\n" for i in range(200))
"""About 16 KiB of lines that report nothing: four files of :data:`SMALL`."""


def test_the_api_serves_only_the_lines_since_the_last_rotation_and_its_options_apply_to_them(tmp_path):
    output = tmp_path / "container.log"
    capture = Capture(output, max_size=SMALL)
    output.write_text("loss=0.1\n" + FLOOD)
    capture.read()
    assert capture.rotations == 0 and capture.lines[0].text == "loss=0.1", "rotated only when the manager looks"
    with output.open("a") as out:
        out.write("loss=0.5\nend\n")
    capture.read()
    assert capture.rotations == 1
    assert serve(capture.lines, {}, 0.0) == "loss=0.5\nend\n"
    assert serve(capture.lines, {"tailLines": "5"}, 0.0) == "loss=0.5\nend\n", "the tail of the current file"
    assert serve(capture.lines, {"limitBytes": "4"}, 0.0) == "loss"
    with output.open("a") as out:
        out.write(FLOOD)
    capture.read(final=True)
    assert capture.rotations == 1 and len(capture.lines) == 202, "an ended container's log is not rotated"


def test_a_log_that_begins_long_after_its_chatty_container_started_is_reported_rotated():
    """On a simulated clock: the trial prints its best loss at once, floods its log two minutes
    later, prints a worse loss and floods on until it ends. Its log now begins at the worse loss."""
    clock = SimulatedClock()
    kube = KubeStub(clock=clock)
    kube.kubelets.log_max_size = SMALL
    pieces = ((1.0, "loss=0.1\n"), (120.0, FLOOD), (125.0, "loss=0.5\n" + FLOOD * 4))
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(130.0, "done\n", pieces=pieces))
    executor = KubernetesExecutor(Cluster(namespace="katuna"), api_client(kube.url), clock=clock.time)
    launch = TrialLaunch("chatty", "0123456789ab", 0, 1, "chatty-0", ["train"], {}, ".", timeout=None,
                         image="python:3.12")
    try:
        executor.launch(launch)
        kube.run_until(lambda: finished(kube, "chatty-0"))
        output = list(executor.output(launch))
        assert output[0] == "loss=0.5\n" and len(output) == 802, "the best loss went with the rotated file"
        start = executor.log_start(launch)
        assert start is not None and start.first is not None
        assert start.first / 1e9 - start.started == pytest.approx(125.0)
        reason = rotated(start, None, sum(map(len, output)), 1, clock.time())
        assert reason is not None and reason.startswith("the log the Kubernetes API served begins 125s after the "
                                                        "trial's container started")
        assert "the kubelet has likely rotated its earlier lines away" in reason
        assert rotated(start, None, 1000, 1, clock.time()) is None, (
            "a trial printing 1000 bytes in 5 s could not have filled 10 Mi in 125 s: it was only quiet at first")
    finally:
        kube.close()


CHATTY = f"""
import time
print("loss=0.1", flush=True)
time.sleep(2.5)
print({FLOOD!r}, flush=True)
time.sleep(1.0)
print("loss=0.5", flush=True)
time.sleep(0.5)
"""
"""Prints its best loss, waits while katuna reads its running log, floods the log past
:data:`SMALL` (the stand-in rotates it at its next look), then prints a worse loss."""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_trial_whose_read_lines_were_rotated_away_says_its_observations_before_are_lost(kube: KubeStub, tmp_path):
    kube.kubelets.log_max_size = SMALL
    definition = {
        "name": "chatty", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 1}, "parallelism": 1, "maxTrials": 1,
        "earlyStopping": {"algorithm": "median", "settings": {"n_startup_trials": 5}},
        "trialTemplate": {"image": "python:3.12", "command": [sys.executable, "-c", CHATTY, "--x=${trialParameters.x}"]},
    }
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE=NAMESPACE, KATUNA_K8S_PROGRESS_SECONDS="0.3")
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        service.wait_for("chatty", timeout=60)
        [trial] = service.json("GET", "/studies/chatty/trials")[1]
    finally:
        kube.kubelets.log_max_size = 10 * 1024 * 1024
        service.close()
    assert trial["state"] == "COMPLETE" and trial["metrics"] == {"loss": 0.5}, "the tail's minimum: all that is left"
    reason = trial["reason"]
    assert reason.startswith("the kubelet rotated this trial's log: katuna read its lines up to "), reason
    assert "the observations printed before then are lost (with any best value of a min or max metric" in reason
    assert "print less" in reason and "containerLogMaxSize" in reason
