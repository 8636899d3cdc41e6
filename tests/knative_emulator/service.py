"""The katuna container as the image runs it: the CMD of ``knative/Dockerfile`` (gunicorn, one
worker and its threads, the app factory), bound to a loopback port, in a process group that
can be killed outright (SIGKILL, as a node loss or an OOM kill would) and started again on the
same port and database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from http_helpers import free_port

DOCKERFILE = Path(__file__).resolve().parents[2] / "knative" / "Dockerfile"
GUNICORN = Path(sys.executable).with_name("gunicorn")


def image_command(port: int) -> list[str]:
    """The image's CMD, bound to ``port`` on loopback, with this environment's gunicorn."""
    dockerfile = DOCKERFILE.read_text()
    found = re.search(r"^CMD (\[.*?\])$", dockerfile, re.MULTILINE | re.DOTALL)
    if found is None:
        raise ValueError(f"{DOCKERFILE}: no CMD in exec form")
    command = yaml.safe_load(found.group(1).replace("\\\n", ""))
    if command[0] != "gunicorn" or "--bind" not in command:
        raise ValueError(f"{DOCKERFILE}: expected a CMD that runs gunicorn with --bind, got {command}")
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [str(GUNICORN), *command[1:]]


class KatunaProcess:
    """The container, its database ``katuna.db`` in ``workdir``; ``env`` beside this process's
    own (without its ``KATUNA_*``)."""

    def __init__(self, workdir: Path, port: int | None = None, **env: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")},
                    "KATUNA_DB": str(workdir / "katuna.db"), **env}
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("w")
        self.process = subprocess.Popen(image_command(self.port), cwd=self.workdir, stdout=log,
                                        stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("the katuna container did not become ready:\n" + self.log())

    def log(self) -> str:
        return (self.workdir / f"serve-{self.starts}.log").read_text()

    def kill(self) -> None:
        """SIGKILL the whole process group: no handler runs, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
