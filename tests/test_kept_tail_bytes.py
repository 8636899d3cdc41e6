"""A kept tail counts the runtime's records in the bytes the container wrote: a log that is not
UTF-8 is read with its undecodable bytes replaced, each by a character of three bytes, and a line
counted from the replaced text would seem to take more records than it did, so a whole log would
seem cut short and lose its first line. Records are counted in the raw bytes (the real client
against the loopback API, whose kubelet serves the container's raw bytes as a real one does)."""

from __future__ import annotations

import time

from kube_stub import KubeStub
from kubernetes import client
from test_kube_standin import job
from waiting import eventually

from functions.adapters.kubernetes_log_tails import tail
from functions.adapters.kubernetes_logs import PodLogs
from functions.core.kept_tails import KEPT_LINES


def test_a_log_of_latin_1_lines_is_kept_whole_where_it_is_whole(kube: KubeStub):
    """13,650 bytes of ``café `` in Latin-1 are one record (19,110 as replaced UTF-8: two),
    then 1,999 short lines: 2,000 records, fewer than the 2,001 asked, so the log is whole."""
    code = ("import sys, time; out = sys.stdout.buffer; out.write(b'caf\\xe9 ' * 2730 + b'\\n'); "
            f"[out.write(b'line %d\\n' % n) for n in range({KEPT_LINES - 1})]; out.flush(); time.sleep(60)")
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job("katuna", job("latin-1", code))
    core = client.CoreV1Api(client.ApiClient(kube.configuration()))

    def written() -> list | None:
        pods = core.list_namespaced_pod("katuna", label_selector="job-name=latin-1").items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if running and core.read_namespaced_pod_log(
            running[0].metadata.name, "katuna", container="trial", tail_lines=1) == f"line {KEPT_LINES - 2}\n" \
            else None

    pods = eventually(written, "the trial prints its last line", timeout=30)
    text, whole = tail(PodLogs(client.ApiClient(kube.configuration()), time.time), pods, "katuna", "trial")
    assert whole and text.startswith("caf\ufffd " * 2730 + "\nline 0\n"), text[:40]
