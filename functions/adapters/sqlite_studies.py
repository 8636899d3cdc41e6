"""The studies table: each study's definition, its normalised spec, status and provenance.

A row is read back as it was accepted, never validated again: a spec that cannot be read any
more makes a failed study that still lists, shows and deletes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from functools import lru_cache
from typing import Any

from functions.adapters.sqlite_connection import dumps, loads, reading
from functions.adapters.sqlite_optuna import SqliteOptuna
from functions.core.conflicts import same_study, study_conflict
from functions.core.errors import StudyNotFound
from functions.core.records import FAILED, STUDY_RUNNING, TERMINAL_STATUSES, StudyRecord, TrialCap
from functions.core.spec import KnownResult, Study
from functions.core.store_port import StudyKey
from functions.core.stored import SPEC_VERSION, UnreadableSpec, known_results, study_from_dict, unreadable_study
from functions.core.study_brief import StudyBrief, brief_of, kind_of

RELEASED = " (released)"
"""Follows the identity of a runner that gave its claims up (:meth:`SqliteStudies.release_runner`):
no process has such an identity."""


BRIEFS = f"""SELECT name, uid, status, completed_at, origin, runs_on, {', '.join(
    f"CASE WHEN json_valid(normalized) THEN {part} END" for part in (
        "json_extract(normalized, '$.kubernetes.namespace')",
        "json_type(normalized, '$.trialTemplate.trialSpec') = 'object'",
        "json_extract(normalized, '$.trialTemplate.trialSpec.apiVersion')",
        "json_extract(normalized, '$.trialTemplate.trialSpec.kind')",
        "json_type(normalized, '$.trialTemplate.retain') = 'true'",
        "ifnull(json_extract(normalized, '$.algorithm.name'), 'tpe')",
        "json_extract(normalized, '$.nodePool.provider')",
        "json_extract(normalized, '$.nodePool.name')"))} FROM studies ORDER BY created_at, name"""
"""What :meth:`SqliteStudies.study_briefs` reads of each row: its spec's few parts, by path."""


@lru_cache(maxsize=64)
def stored_spec(normalized: str) -> Study:
    """The stored spec, rebuilt as it was accepted (never validated again)."""
    try:
        data = json.loads(normalized)
    except (TypeError, ValueError) as exc:
        raise UnreadableSpec(f"the stored spec is not JSON: {exc}") from exc
    return study_from_dict(data)


@lru_cache(maxsize=64)
def _definition(text: str) -> dict[str, Any]:
    """The definition as submitted; shared between calls, so callers must not change it.
    A definition that is not JSON any more reads as empty: it is shown, never run."""
    try:
        definition = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return definition if isinstance(definition, dict) else {}


def _known_text(results: tuple[KnownResult, ...] | None) -> str | None:
    return dumps([r.to_dict() for r in results]) if results is not None else None


@lru_cache(maxsize=64)
def _known(text: str | None) -> tuple[KnownResult, ...] | None:
    """The warm-start results kept with a study (None: none kept); read on every event, so parsed
    once per text. Ones that cannot be read make the study unreadable: it must not start cold."""
    if text is None:
        return None
    try:
        return known_results(json.loads(text))
    except (TypeError, ValueError, KeyError) as exc:
        raise UnreadableSpec(f"the stored warm-start results cannot be read: {type(exc).__name__}: {exc}") from exc


def _cap_columns(cap: TrialCap | None) -> dict[str, Any]:
    """A study's trial cap as its two columns (both empty: none)."""
    return {"trial_cap": None if cap is None else cap.trials, "trial_cap_setting": None if cap is None else cap.setting}


def _cap(trials: Any, setting: Any) -> TrialCap | None:
    """The stored trial cap; none where it is not a count (stored before katuna kept it)."""
    return TrialCap(trials, setting) if isinstance(trials, int) and isinstance(setting, str) else None


def _json_or_none(value: Any) -> str | None:
    """A JSON column's text, or empty for None."""
    return dumps(value) if value is not None else None


def _versions(text: str | None) -> dict[str, str] | None:
    """The stored library versions (a mapping of distribution to release); none where the
    column is empty (a study stored before katuna kept them, or not started) or holds no such
    mapping."""
    found = _origin(text)
    return None if found is None else {name: str(release) for name, release in found.items()}


def _origin(text: str | None) -> dict[str, Any] | None:
    """The stored origin; one that is not a JSON mapping any more reads as none."""
    try:
        origin = loads(text)
    except ValueError:
        return None
    return origin if isinstance(origin, dict) else None


class SqliteStudies(SqliteOptuna):
    """The studies, on the store's connection, beside their Optuna journals."""

    def add_study(self, record: StudyRecord) -> StudyRecord:
        with self.transaction():
            row = self._study_row(record.name)
            if row is not None:
                existing = self._study(row)
                if not same_study(existing, record.spec, record.definition):
                    raise study_conflict(existing, record.spec, record.definition)
                return existing
            record = replace(record, stored_log_folder=record.log_folder)
            columns = {
                "name": record.name, "uid": record.uid, "definition": dumps(record.definition),
                "normalized": dumps(record.spec.to_dict()), "spec_version": SPEC_VERSION, "base_dir": record.base_dir,
                "status": record.status, "reason": record.reason, "created_at": record.created_at,
                "origin": _json_or_none(record.origin),
                "seed": record.seed, "katuna_version": record.katuna_version, "optuna_version": record.optuna_version,
                "library_versions": _json_or_none(record.library_versions),
                "lookahead": record.lookahead, "warm_results": _known_text(record.warm_results), "report_key": record.report_key,
                "log_folder": record.log_folder, **_cap_columns(record.trial_cap), "runs_on": record.runs_on,
            }
            self.db.execute(f"INSERT INTO studies ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            list(columns.values()))
        return record

    def _study_row(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM studies WHERE name = ?", [name])
        return rows[0] if rows else None

    @staticmethod
    def _study(row: dict[str, Any]) -> StudyRecord:
        """The row as a record. A row whose spec cannot be read is a failed study with the
        reason, so it still lists, shows and deletes, and nothing tries to run it."""
        status, reason = row["status"], row["reason"] or ""
        try:
            spec, warm = stored_spec(row["normalized"]), _known(row["warm_results"])
        except UnreadableSpec as exc:
            spec, warm = unreadable_study(row["name"]), None
            if status not in TERMINAL_STATUSES:
                status, reason = FAILED, str(exc)
        return StudyRecord(
            spec=spec, definition=_definition(row["definition"]),
            base_dir=row["base_dir"], uid=row["uid"], status=status, reason=reason,
            created_at=row["created_at"], started_at=row["started_at"], completed_at=row["completed_at"],
            origin=_origin(row["origin"]), seed=row["seed"], katuna_version=row["katuna_version"],
            optuna_version=row["optuna_version"], library_versions=_versions(row["library_versions"]),
            lookahead=row["lookahead"], restarts=row["restarts"],
            restarted_at=row["restarted_at"], warm_results=warm, report_key=row["report_key"],
            stored_log_folder=row["log_folder"], trial_cap=_cap(row["trial_cap"], row["trial_cap_setting"]),
            runs_on=row["runs_on"], runner=row["runner"],
        )

    @reading
    def get_study(self, name: str) -> StudyRecord:
        row = self._study_row(name)
        if row is None:
            raise StudyNotFound(f"no study named {name!r}")
        return self._study(row)

    @reading
    def list_studies(self) -> list[StudyRecord]:
        return [self._study(row) for row in self._rows("SELECT * FROM studies ORDER BY created_at, name", [])]

    @reading
    def study_briefs(self) -> list[StudyBrief]:
        """Every study in brief, oldest first. An ended study's is the few parts of its spec
        SQLite's JSON functions read, in C, none rebuilt (a spec that is not JSON gives none); a
        study not ended (a few) is read whole, so one whose spec cannot be rebuilt is failed
        in brief too, as :meth:`list_studies` shows it."""
        unended = {record.name: brief_of(record) for record in self.unended_studies()}
        return [unended.get(name) or StudyBrief(name, uid, status, completed_at, _origin(origin), runs_on,
                           namespace if isinstance(namespace, str) else None,
                           kind_of(api_version, kind) if has_spec else None, bool(retain),
                           algorithm if isinstance(algorithm, str) else "tpe",
                           (provider, pool) if isinstance(provider, str) and isinstance(pool, str) else None)
                for (name, uid, status, completed_at, origin, runs_on, namespace, has_spec, api_version, kind,
                     retain, algorithm, provider, pool) in self.db.execute(BRIEFS).fetchall()]

    def unended_studies(self) -> list[StudyRecord]:
        """The studies not ended, oldest first; only their rows are read into records."""
        ended = ", ".join("?" * len(TERMINAL_STATUSES))
        return [self._study(row) for row in self._rows(
            f"SELECT * FROM studies WHERE status NOT IN ({ended}) ORDER BY created_at, name", list(TERMINAL_STATUSES))]

    def unended_count(self) -> int:
        """How many studies have not ended, counted without reading their rows into records."""
        ended = ", ".join("?" * len(TERMINAL_STATUSES))
        return int(self.db.execute(f"SELECT count(*) FROM studies WHERE status NOT IN ({ended})",
                                   list(TERMINAL_STATUSES)).fetchone()[0])

    @reading
    def studies_page(self, limit: int, after: StudyKey | None = None) -> list[tuple[StudyKey, StudyRecord]]:
        """Up to ``limit`` studies after the one keyed ``after``, by creation time and name, each
        with that key. Not keyed by the row's id: the table has no ``AUTOINCREMENT``, so SQLite
        gives a deleted last row's id to the next study stored, and a page continued after that
        id would leave the new study out. The creation time is taken under the write lock
        (:func:`~functions.handlers.submit.store_study`), so it rises as studies are stored."""
        made = "ifnull(created_at, 0.0)"
        where, args = ("", []) if after is None else (f" WHERE ({made}, name) > (?, ?)", [*after])
        rows = self._rows(f"SELECT {made} AS made, * FROM studies{where} ORDER BY made, name LIMIT ?", [*args, limit])
        return [((row["made"], row["name"]), self._study(row)) for row in rows]

    @reading
    def newest_studies(self, limit: int, skip: int = 0) -> list[StudyRecord]:
        """The ``limit`` studies stored last, newest first, past the ``skip`` newest, by the
        row's id: the id a study is given is always above every id still in the table, so they
        rise as studies are stored."""
        return [self._study(row) for row in self._rows("SELECT * FROM studies ORDER BY rowid DESC LIMIT ? OFFSET ?",
                                                       [limit, skip])]

    @reading
    def studies_version(self, newest: int, skip: int = 0) -> str:
        """A text that changes as a study is stored or deleted, as one of the ``newest`` (past
        the ``skip`` newest) restarts, changes status or has a trial change state (its counts and best trial, which a
        list shows), and as studies start or end running anywhere (whether a list must follow
        them): read from the studies table and the kept trial counts alone (however many trials
        the studies hold), so a list of the newest can ask often whether it changed."""
        rows = self.db.execute(
            "SELECT (SELECT count(*) FROM studies), rowid, uid, status, restarts, "
            "(SELECT json_group_array(state || '=' || n) FROM trial_counts WHERE study = studies.name) "
            "FROM studies ORDER BY rowid DESC LIMIT ? OFFSET ?", [newest, skip]).fetchall()
        running = self.db.execute("SELECT runs_on, count(*) FROM studies WHERE status = ? GROUP BY runs_on "
                                  "ORDER BY runs_on", [STUDY_RUNNING]).fetchall()
        return hashlib.blake2b(json.dumps([rows, running]).encode(), digest_size=12).hexdigest()

    def delete_study(self, name: str, uid: str | None = None) -> None:
        with self.transaction():
            stored = self.get_study(name)
            if uid is not None and stored.uid != uid:
                raise StudyNotFound(f"study {name!r} was deleted meanwhile, and another stored under its name")
            for table, column in (("observations", "study"), ("kept_tails", "study"), ("trials", "study"),
                                  ("trial_counts", "study"), ("study_fronts", "study"),
                                  ("study_front_trials", "study"),
                                  ("studies", "name")):
                self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [name])
            storage = self.optuna_storage()
            with suppress(KeyError):
                storage.delete_study(storage.get_study_id_from_name(name))

    def count_failure(self, name: str, uid: str) -> int | None:
        """Kept in the study's row, so restarts and redeliveries add up instead of starting over."""
        with self.transaction():
            row = self.db.execute("UPDATE studies SET failures = failures + 1 WHERE name = ? AND uid = ? "
                                  "RETURNING failures", [name, uid]).fetchone()
        return row[0] if row else None

    def claim_runner(self, name: str, uid: str, runner: str, alive: Callable[[str], bool]) -> str | None:
        """Name ``runner`` as the process that runs the study (that very study: ``uid``), unless
        another process that ``alive`` says still lives is named: that one is returned, and
        nothing changes. One transaction, so of two processes claiming at once one is named."""
        with self.transaction():
            row = self.db.execute("SELECT runner FROM studies WHERE name = ? AND uid = ?", [name, uid]).fetchone()
            held = row[0] if row else None
            if held and held != runner and alive(held):
                return held
            self.db.execute("UPDATE studies SET runner = ? WHERE name = ? AND uid = ?", [runner, name, uid])
        return None

    def release_runner(self, runner: str, within: float | None = None) -> None:
        """Mark the claims of ``runner`` as given up (its runner closed, while its process may live
        on): no live process is named by them, so another may run each study, and each still
        tells that a process ran it, and is gone. The write lock is awaited ``within`` seconds
        (the busy timeout by default)."""
        with self.transaction(within):
            self.db.execute("UPDATE studies SET runner = ? WHERE runner = ?", [runner + RELEASED, runner])

    def update_study(self, name: str, **fields: Any) -> None:
        """``spec``, ``definition``, ``origin`` and ``library_versions`` are stored as JSON, the spec normalised;
        ``trial_cap`` as its count and setting."""
        if "trial_cap" in fields:
            fields.update(_cap_columns(fields.pop("trial_cap")))
        if "spec" in fields:
            fields["normalized"] = dumps(fields.pop("spec").to_dict())
            fields["spec_version"] = SPEC_VERSION
        for key in ("definition", "origin", "library_versions"):
            if key in fields:
                fields[key] = _json_or_none(fields[key])
        self._update("studies", {"name": name}, fields)

    def _update(self, table: str, key: dict[str, Any], fields: dict[str, Any]) -> None:
        """One ``UPDATE`` statement: the hot path skips sqlite-utils' per-call introspection."""
        assignments = ", ".join(f"[{column}] = ?" for column in fields)
        where = " AND ".join(f"[{column}] = ?" for column in key)
        cursor = self.db.execute(f"UPDATE [{table}] SET {assignments} WHERE {where}",
                                 [*fields.values(), *key.values()])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no {table[:-1]} {' '.join(map(str, key.values()))}")
