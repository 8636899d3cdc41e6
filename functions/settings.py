"""Settings, read once from ``KATUNA_*`` environment variables into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

PREFIX = "KATUNA_"


@dataclass(frozen=True)
class Settings:
    """Where state lives and how long to wait for it.

    ``KATUNA_DB`` (default ``./katuna.db``), ``KATUNA_LOG_DIR`` (default: ``<db stem>-logs``
    beside the database), ``KATUNA_BUSY_TIMEOUT`` in seconds (default 30).
    """

    db: Path = Path("katuna.db")
    log_dir: Path | None = None
    busy_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls()
        if env.get(PREFIX + "DB"):
            settings = replace(settings, db=Path(env[PREFIX + "DB"]))
        if env.get(PREFIX + "LOG_DIR"):
            settings = replace(settings, log_dir=Path(env[PREFIX + "LOG_DIR"]))
        if env.get(PREFIX + "BUSY_TIMEOUT"):
            settings = replace(settings, busy_timeout=float(env[PREFIX + "BUSY_TIMEOUT"]))
        return settings

    def with_db(self, db: str | Path | None) -> Settings:
        return self if db is None else replace(self, db=Path(db))

    @property
    def logs(self) -> Path:
        return self.log_dir or self.db.with_name(self.db.stem + "-logs")
