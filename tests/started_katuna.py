"""A ``katuna`` command a test starts and then acts on while it runs (signals, stops, kills),
forked from the warm Python (:func:`http_helpers.warm_runner`) as :func:`http_helpers.run_katuna`
forks the commands it only waits for. What such a command does as it is imported is tested by
starting it afresh, with :mod:`subprocess`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from http_helpers import KATUNA, warm_runner


class StartedKatuna:
    """``subprocess.Popen([katuna, *args], cwd=cwd, env=env, stdout=PIPE, stderr=PIPE, text=True)``
    as far as the tests use it (its ``pid``, ``returncode``, :meth:`poll`, :meth:`wait`,
    :meth:`communicate`, signals), its output kept in files until it ends. ``interruptible``:
    as with ``preexec_fn=child_signals.interruptible``, Ctrl-C reaches it even where the tests
    run with SIGINT ignored. ``stdout_closed``: started with its standard output closed
    (``preexec_fn=lambda: os.close(1)``), so that it prints nothing."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None, interruptible: bool = False,
                 stdout_closed: bool = False) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="katuna-output-")
        self._stdout, self._stderr = Path(self._folder.name, "stdout"), Path(self._folder.name, "stderr")
        self._process = warm_runner().start([KATUNA, *args], cwd, dict(os.environ if env is None else env),
                                            None if stdout_closed else self._stdout, self._stderr,
                                            interruptible=interruptible)
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def poll(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._process.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self._process.send_signal(sig)

    def kill(self) -> None:
        self._process.kill()

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Its standard output and error once it has ended (:class:`subprocess.TimeoutExpired`
        if it runs on past ``timeout`` seconds, left running)."""
        self.wait(timeout)
        return _text(self._stdout), _text(self._stderr)


def _text(path: Path) -> str:
    """What a command wrote to ``path``: nothing if it ended before opening it."""
    return path.read_text() if path.exists() else ""
