"""What identifies a version of a study's answers, for the API's conditional reads: a digest
read from the study's row, its trials' change number and kept counts, and the rows of the node
pool it used, never from its trials themselves, so a client that asks whether a study or its
trials changed is answered in a few index lookups at any study size."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable
from typing import Any

from functions.adapters.sqlite_connection import reading
from functions.adapters.sqlite_trials import SqliteTrials
from functions.core.errors import StudyNotFound

SECRET_COLUMNS = ("report_key",)
"""Columns of the study's row left out of a digest a client reads."""


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=12).hexdigest()


class SqliteVersions(SqliteTrials):
    """The versions of a study's view and of its trials' listings, on the store's connection."""

    def _study_parts(self, name: str) -> tuple[dict[str, Any], Hashable]:
        """The study's row (but its secret) and its trials' marker (:meth:`trials_marker`: every
        write of a trial, a trial removed, a count changed); ``StudyNotFound`` without it."""
        row = self._study_row(name)
        if row is None:
            raise StudyNotFound(f"no study named {name!r}")
        for column in SECRET_COLUMNS:
            row.pop(column, None)
        return row, self.trials_marker(name)

    @reading
    def trials_version(self, name: str) -> str:
        """A digest that changes whenever a write could change a listing of the study's trials:
        its row (a restart, another study stored under its name) or any of its trials."""
        return _digest(*self._study_parts(name))

    @reading
    def study_version(self, name: str) -> str | None:
        """A digest that changes whenever a write could change the study's view: its row, its
        trials, or the uses of the node pool it used (whose node-hours it shows, shared with
        them). None while any use of that pool is under way: its node-hours grow with the clock."""
        row, marker = self._study_parts(name)
        pools = self._rows("SELECT * FROM node_pools WHERE pool IN (SELECT pool FROM node_pools WHERE uid = ?) "
                           "ORDER BY uid", [row["uid"]])
        if any(use["released_at"] is None for use in pools):
            return None
        return _digest(row, marker, pools)
