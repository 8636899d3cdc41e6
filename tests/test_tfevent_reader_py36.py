"""The TensorFlowEvent collector's reader runs on a cluster on the trial image's own Python:
TensorFlow 1.15 and 2.0-2.3 images ship Python 3.6, and their trials' event files are read there
as on a newer image. Where no Python 3.6 is on this machine the run on it is skipped (the
source's syntax is still checked as 3.6 parses it)."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import tfevent_writer as writer

from functions.core import file_collector, tfevent_lines, tfevents


def _wrapped(directory: Path, metrics: list[str]) -> list[str]:
    """The wrapped container's command around a command that does nothing."""
    job = {"spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["true"]}]}}}}
    wrapped = file_collector.wrap_events(job, "main", str(directory), metrics)
    return wrapped["spec"]["template"]["spec"]["containers"][0]["command"]


def _python36() -> str | None:
    """A Python 3.6 interpreter of this machine (one pyenv installed, or on PATH), None if none."""
    for found in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3.6"))),
                  shutil.which("python3.6")]:
        if found and subprocess.run([found, "-c", "import sys; assert sys.version_info[:2] == (3, 6)"],
                                    capture_output=True, timeout=60).returncode == 0:
            return found
    return None


def test_the_readers_source_is_python_3_6(tmp_path: Path):
    source = _wrapped(tmp_path, ["accuracy"])[5]
    ast.parse(source, feature_version=(3, 6))
    assert "from __future__" not in source and "__annotations__" not in source


def test_the_reader_runs_on_python_3_6_as_the_image_runs_it(tmp_path: Path):
    python = _python36()
    if python is None:
        pytest.skip("no Python 3.6 on this machine (tried PATH and ~/.pyenv/versions)")
    writer.write(tmp_path / "logs" / "test" / "events.out.tfevents.1",
                 [writer.event(step, [("accuracy", 0.25 * (step + 1)), ("loss", 1.0)], style)
                  for step, style in enumerate([writer.SIMPLE, writer.TENSOR, writer.CONTENT, writer.DOUBLE])],
                 truncated_tail=True)
    writer.write(tmp_path / "logs" / "train" / "events.out.tfevents.1",
                 [writer.event(0, [("accuracy", 0.125)], writer.INT64)])
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python3").symlink_to(python)
    (folder / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    command = _wrapped(tmp_path / "logs", ["test/accuracy", "loss"])
    done = subprocess.run([str(folder / "sh"), *command[1:]], capture_output=True, text=True, timeout=120,
                          env={"PATH": str(folder)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("events.out.tfevents.1: a record claims 37 bytes, and 30 are left of the file\n")
    printed = list(tfevent_lines.records(file_collector.file_lines(done.stdout.splitlines())))
    expected = [record for record in tfevents.directory_records(str(tmp_path / "logs"))
                if record["tag"] != "accuracy" or str(record["dir"]).endswith("test")]
    assert printed == json.loads(json.dumps(expected)) and len(printed) == 8
