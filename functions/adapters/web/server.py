"""``katuna serve``: gunicorn running the app, each worker with its own runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from wsgiref.types import WSGIApplication

from gunicorn.app.base import BaseApplication


def _worker_exit(server: Any, worker: Any) -> None:
    """Kill the worker's trials when it exits; they are relaunched once nothing owns them."""
    runtime = getattr(worker.wsgi, "extensions", {}).get("katuna")
    if runtime is not None:
        runtime.close()


class Server(BaseApplication):
    """gunicorn configured in code; the app is built in each worker, after the fork."""

    def __init__(self, build: Callable[[], WSGIApplication], host: str, port: int, workers: int) -> None:
        """``build`` makes the app a worker serves; it runs in each worker, after the fork."""
        self.build = build
        self.options = {"bind": f"{host}:{port}", "workers": workers, "worker_class": "sync",
                        "timeout": 60, "graceful_timeout": 10, "accesslog": "-", "worker_exit": _worker_exit}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        return self.build()
