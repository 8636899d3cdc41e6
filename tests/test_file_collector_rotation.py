"""A File collector's trial on a cluster whose log the kubelet rotates while the wrapper prints
the metrics file's end copy: the API then serves only the copy's tail, and the metrics come
from the file's lines katuna kept as it read the running log, not from that tail."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_stub import KubeStub
from test_log_rotation import REPORTS, chatty_study, run_on_cluster, wait_for

KUBE_NAMESPACES = ("log-rotation",)


def indented(code: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in code.splitlines())


def end_copy_cut(folder: Path, signals: Path) -> str:
    """Writes its best loss to its metrics file and waits while katuna reads its running log.
    At its end the file's content stays the same, but the file becomes a FIFO whose writer
    gives the wrapper's end copy the best loss and enough reports for the log to rotate, then,
    only once the stand-in rotated the log, the last loss: the kubelet's look falls inside the
    end copy, as it may whenever the copy is long (the FIFO holds it there for the test)."""
    path = folder / "metrics.log"
    return f"""
import os, sys, time
os.makedirs({str(folder)!r}, exist_ok=True)
with open({str(path)!r}, "w") as f:
    f.write("loss=0.1\\n")
time.sleep(1.5)
os.unlink({str(path)!r})
os.mkfifo({str(path)!r})
if os.fork() == 0:
    with open({str(path)!r}, "w") as f:
        f.write("loss=0.1\\n" + {REPORTS!r})
        f.flush()
{indented(wait_for(signals / "rotated"), 8)}
        f.write("loss=0.5\\n")
    os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_end_copy_cut_by_a_rotation_gives_way_to_the_lines_kept(kube: KubeStub, tmp_path: Path):
    folder = tmp_path / "katib"
    definition = chatty_study("endcut", end_copy_cut(folder, tmp_path),
                              metricsCollector={"kind": "file", "path": str(folder / "metrics.log")})
    definition["objective"] = {"metric": "loss", "direction": "minimize"}
    trial, rotations = run_on_cluster(kube, tmp_path, definition)
    assert rotations, "the stand-in rotated the trial's log inside the end copy"
    assert (trial["state"], trial["values"]) == ("COMPLETE", [0.1]), trial["reason"]
