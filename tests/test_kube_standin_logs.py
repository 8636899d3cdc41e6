"""The loopback node's container runtime writes a container's log as containerd does: a running
line not yet ended is in the log in 16 KiB partial records as soon as more than 16 KiB of it was
read (4 KiB at a time), so a ``tailLines`` read of a running container may serve a line's
beginning and nothing of its end; the bytes are the container's own, not decoded and encoded
again, so what is served, where records are cut and what ``limitBytes`` counts are raw bytes; a
``\\r\\n`` ends a line as ``\\n`` does, its ``\\r`` left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_standin.logs import Capture, run_served, serve
from kube_stub import KubeStub
from kubernetes import client
from test_kube_standin import job
from waiting import eventually


def test_a_running_line_is_written_in_partial_records_once_more_than_one_was_read(tmp_path: Path):
    output = tmp_path / "out.log"
    capture = Capture(output)
    output.write_bytes(b"first\n" + b"x" * 20_479)
    capture.read()
    assert [line.data for line in capture.lines] == [b"first"], "four reads of 4 KiB, and a few bytes: none written"
    with output.open("ab") as out:
        out.write(b"x" * (40_000 - 20_479))
    capture.read()
    assert [(len(line.data), line.complete, line.starts) for line in capture.lines] == [
        (5, True, True), (16_384, False, True), (16_384, False, False)], "two records, 7,232 bytes held back"
    assert serve(capture.lines, {"tailLines": "2"}, 0) == b"x" * 32_768, "the line's beginning, nothing of its end"
    with output.open("ab") as out:
        out.write(b"y\r\nlast")
    capture.read()
    assert (capture.lines[-1].data, capture.lines[-1].starts) == (b"x" * 7_232 + b"y", False)
    assert serve(capture.lines, {}, 0) == b"first\n" + b"x" * 40_000 + b"y\n", "the \\r of \\r\\n left out"
    capture.read(final=True)
    assert serve(capture.lines, {"tailLines": "1"}, 0) == b"last", "the last line once the container ended"


def test_a_log_is_served_in_the_bytes_the_container_wrote(tmp_path: Path):
    output = tmp_path / "out.log"
    output.write_bytes(b"caf\xe9 loss=1\n" + b"\xe9" * 16_385 + b"\n")
    capture = Capture(output)
    capture.read(final=True)
    assert serve(capture.lines, {"limitBytes": "4"}, 0) == b"caf\xe9"
    assert [len(line.data) for line in capture.lines] == [11, 16_384, 1], "records cut at raw bytes"
    assert serve(capture.lines, {}, 0) == output.read_bytes()


def test_the_api_serves_a_running_containers_raw_bytes_and_its_long_lines_partial_records(kube: KubeStub):
    code = ("import sys, time; out = sys.stdout.buffer; out.write(b'caf\\xe9\\n' + b'x' * 40_000); out.flush(); "
            "time.sleep(60)")
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job("katuna", job("raw-bytes", code))
    core = client.CoreV1Api(client.ApiClient(kube.configuration()))

    def read() -> bytes | None:
        pods = [p["metadata"]["name"] for p in list(kube.pods.values())
                if p["metadata"]["labels"].get("job-name") == "raw-bytes" and p["status"].get("phase") == "Running"]
        return core.read_namespaced_pod_log(pods[0], "katuna", container="trial", _preload_content=False).data \
            if pods else None

    assert eventually(lambda: (data := read()) and len(data) > 5 + 16_384 and data,
                      "the long line's records are written", timeout=30) == b"caf\xe9\n" + b"x" * 32_768


def test_a_pods_log_file_gone_from_its_node_is_refused_as_the_kubelet_refuses_it(kube: KubeStub):
    """The kubelet cannot open a log file removed from the node while its pod stays: the API
    answers its failed open, 400, as ``kubectl logs`` shows it, and serves no log."""
    client.BatchV1Api(client.ApiClient(kube.configuration())).create_namespaced_job(
        "katuna", job("lost-log", "print('loss=1')"))
    core = client.CoreV1Api(client.ApiClient(kube.configuration()))
    pod = eventually(lambda: next((p for p in list(kube.pods.values())
                                   if p["metadata"]["labels"].get("job-name") == "lost-log"
                                   and p["status"].get("phase") == "Succeeded"), None), "the pod ends", timeout=30)
    name = pod["metadata"]["name"]
    assert core.read_namespaced_pod_log(name, "katuna", container="trial") == "loss=1\n"
    kube.lost_logs.add(("katuna", name))
    with pytest.raises(client.ApiException) as refused:
        core.read_namespaced_pod_log(name, "katuna", container="trial")
    assert refused.value.status == 400 and "failed to try resolving symlinks in path" in refused.value.body


@pytest.mark.parametrize(("reason", "said"), [("ErrImagePull", "image can't be pulled"),
                                              ("ImagePullBackOff", "trying and failing to pull image"),
                                              ("ContainerCreating", "ContainerCreating")])
def test_a_waiting_container_never_run_is_refused_as_the_kubelet_words_it(reason: str, said: str):
    with pytest.raises(ValueError, match=f'^container "c" in pod "p" is waiting to start: {said}$'):
        run_served({"state": {"waiting": {"reason": reason}}}, "c", "p", False)


def test_the_run_served_is_the_current_one_unless_the_container_waits_after_a_run():
    ended = {"terminated": {"exitCode": 1, "containerID": "containerd://1"}}
    assert run_served({"state": {"running": {}}, "lastState": ended}, "c", "p", False) is False
    assert run_served({"state": {"terminated": {"containerID": "containerd://2"}}}, "c", "p", False) is False
    assert run_served({"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": ended}, "c", "p", False)
    assert run_served({"state": {"running": {}}, "lastState": ended}, "c", "p", True) is True
    with pytest.raises(ValueError, match='^previous terminated container "c" in pod "p" not found$'):
        run_served({"state": {"running": {}}}, "c", "p", True)


def test_a_run_never_located_has_no_log_and_a_container_with_no_status_is_not_available():
    """As ``validateContainerLogStatus`` reads a status: a terminated run with no ``containerID``
    (the kubelet never found its container) serves the run before it where that one has one,
    and is refused otherwise, ``previous`` of it too; a container the pod has no status for yet
    is not available."""
    lost = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}
    ran = {"terminated": {"exitCode": 1, "containerID": "containerd://1"}}
    assert run_served({"state": lost, "lastState": ran}, "c", "p", False) is True
    for held in ({"state": lost}, {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": lost}):
        with pytest.raises(ValueError, match='^container "c" in pod "p" is terminated$'):
            run_served(held, "c", "p", False)
    with pytest.raises(ValueError, match='^previous terminated container "c" in pod "p" not found$'):
        run_served({"state": {"running": {}}, "lastState": lost}, "c", "p", True)
    with pytest.raises(ValueError, match='^container "c" in pod "p" is not available$'):
        run_served({}, "c", "p", False)
