"""A stop that keeps the last lines of its trials' logs deletes the Jobs whose logs were read at
once, whatever another trial's slow read (a pod on a node whose kubelet does not answer) keeps
waiting for; that trial's Job goes once its read ends, its lines kept (a real ``katuna serve``
with the Kubernetes executor, the real client, the loopback API serving the pods' logs)."""

from __future__ import annotations

import threading

import pytest
from conftest import study_definition
from http_helpers import Service
from kube_stub import KubeStub
from waiting import eventually

pytestmark = pytest.mark.slow

NAMESPACE = "tails"
KUBE_NAMESPACES = (NAMESPACE,)


def test_a_slow_log_read_holds_up_no_other_trials_stop_and_its_own_lines_are_still_kept(kube: KubeStub, tmp_path):
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE=NAMESPACE, KATUNA_REMOTE_TIMEOUT="300")
    release, held = threading.Event(), threading.Event()

    def read(pod: str, query: dict[str, str]) -> None:
        """The stop's read of trial 0's log (of its last lines, which its study's end also keeps
        the metrics of; not a scan of its running log, which asks for bytes, not lines) waits
        (its kubelet does not answer) until released."""
        if pod.startswith("slow-0-") and "tailLines" in query:
            held.set()
            release.wait(120)

    definition = study_definition(name="slow", mode="hang", maxTrials=3, parallelism=3)
    definition["trialTemplate"]["image"] = "python:3.12"
    stop = threading.Thread(target=service.request, args=("POST", "/studies/slow/stop"))
    try:
        service.submit(definition)
        for number in range(3):
            eventually(lambda n=number: service.request("GET", f"/studies/slow/trials/{n}/logs")[2] == b"hanging\n",
                       f"trial {number} prints")
        kube.on_log_read = read
        stop.start()
        eventually(lambda: not {(NAMESPACE, "slow-1"), (NAMESPACE, "slow-2")} & set(kube.jobs),
                   "the Jobs of the trials whose logs were read are deleted")
        assert held.is_set() and not release.is_set() and (NAMESPACE, "slow-0") in kube.jobs, \
            "while trial 0's read still waits, its Job kept"
        release.set()
        eventually(lambda: (NAMESPACE, "slow-0") not in kube.jobs, "trial 0's Job is deleted once its read ends")
        stop.join()
        for number in range(3):
            eventually(lambda n=number: not [p for p in list(kube.pods.values())
                                             if p["metadata"]["labels"].get("job-name") == f"slow-{n}"],
                       f"the pods of trial {number} are gone")
            status, _, body = service.request("GET", f"/studies/slow/trials/{number}/logs")
            assert (status, body.decode()) == (200, f"[katuna: attempt 1's log, kept when katuna deleted Job "
                                                     f"slow-{number} as the trial ended]\nhanging\n")
    finally:
        kube.on_log_read = None
        release.set()
        service.close()
