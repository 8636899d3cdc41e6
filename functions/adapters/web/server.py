"""``katuna serve``: gunicorn running the app, each worker with its own runtime."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from functions.adapters.web import create_app
from functions.runtime import Runtime
from functions.settings import Settings


def _worker_exit(server: Any, worker: Any) -> None:
    """Kill the worker's trials when it exits; they are relaunched once nothing owns them."""
    runtime = getattr(worker.wsgi, "extensions", {}).get("katuna")
    if runtime is not None:
        runtime.close()


class Server(BaseApplication):
    """gunicorn configured in code; the app is built in each worker, after the fork."""

    def __init__(self, settings: Settings, host: str, port: int, workers: int) -> None:
        self.settings = settings
        self.options = {"bind": f"{host}:{port}", "workers": workers, "worker_class": "sync",
                        "timeout": 60, "graceful_timeout": 10, "accesslog": "-", "worker_exit": _worker_exit}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(Runtime(self.settings))
