"""``katuna serve`` as a container runs it: a process group that can be killed outright (SIGKILL,
as a node loss or an OOM kill would) and started again on the same port and database."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from http_helpers import free_port, serve_command


class KatunaProcess:
    def __init__(self, workdir: Path, workers: int = 2, port: int | None = None, **env: str) -> None:
        self.workdir, self.workers = workdir, workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}, **env}
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("w")
        self.process = subprocess.Popen(serve_command(self.workdir, self.port, self.workers), cwd=self.workdir,
                                        stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
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
        raise RuntimeError("katuna serve did not become ready:\n" + self.log())

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
