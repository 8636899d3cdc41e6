"""The File collector's wrapper run around a program as a cluster trial's container runs it, its
output read as it streams, so that the program can wait on files the reader creates once given
output has come out of the wrapper."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from functions.core.file_collector import WRAPPER


def streamed(folder: Path, program: str, signals: Mapping[bytes, str], sh: str = "sh",
             env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
    """The wrapper's whole output around ``python -c program`` (its metrics file ``m.log``),
    run in ``folder`` by ``sh``; as soon as the output holds a key of ``signals``, the file its
    value names is created in ``folder``. The wrapper must exit 0 within ``timeout`` seconds."""
    wrapper = subprocess.Popen([sh, "-c", WRAPPER, "katuna-metrics-file", "m.log", sys.executable, "-c", program],
                               cwd=folder, env=None if env is None else dict(env), stdout=subprocess.PIPE)
    assert wrapper.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    while chunk := wrapper.stdout.read1(4096):
        output += chunk
        for seen, signal in signals.items():
            if seen in output:
                (folder / signal).touch()
        assert time.monotonic() < deadline, output
    assert wrapper.wait(timeout=60) == 0
    return output.decode()
