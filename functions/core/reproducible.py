"""What a study records so that it can be run again with the same results.

A study without a seed in its definition still runs seeded: its seed is chosen when it starts,
from its uid (random for every study, fixed for this one), and stored with the versions of
katuna, Optuna and the libraries its sampler draws on that started it, and the look-ahead it
started with. Submitting the definition
again with ``algorithm.seed`` set to that seed, run with the same look-ahead (and, above
parallelism 1, with trials ending in the same order), repeats the study's suggestions.
A study resumed or restarted by a process whose releases or look-ahead differ from those
recorded is told apart (:func:`drift`): what it suggests from then on may differ.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from typing import Any

import optuna

from functions.core.limits import MAX_SEED
from functions.core.records import StudyRecord
from functions.core.samplers import REGISTRY


def seed_for(record: StudyRecord) -> int:
    """The seed the study runs with: its definition's, else one derived from its uid."""
    if record.spec.algorithm.seed is not None:
        return record.spec.algorithm.seed
    digest = hashlib.sha256(f"seed:{record.uid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (MAX_SEED + 1)


def katuna_version() -> str:
    """The installed katuna release (``unknown`` when run from a tree that is not installed)."""
    return installed("katuna")


@functools.cache
def installed(distribution: str) -> str:
    """The installed release of ``distribution`` (``unknown`` when it is not installed), looked
    up once a process: each lookup scans the installed packages, and a study's start asks for
    up to five."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def library_versions(algorithm: str) -> dict[str, str]:
    """The installed releases of the libraries the ``algorithm``'s sampler draws on besides
    Optuna (:attr:`~functions.core.samplers.SamplerKind.libraries`), by distribution name."""
    kind = REGISTRY.get(algorithm)
    return {name: installed(name) for name in (kind.libraries if kind is not None else ())}


def provenance(record: StudyRecord, lookahead: int) -> dict[str, Any]:
    """The study fields to store when it starts: its seed, the software that runs it and the
    look-ahead of the process that starts it (which changes what the sampler has been told when
    it is asked for a trial)."""
    return {"seed": seed_for(record), "katuna_version": katuna_version(), "optuna_version": optuna.__version__,
            "library_versions": library_versions(record.spec.algorithm.name), "lookahead": lookahead}


def drift(record: StudyRecord, lookahead: int) -> str | None:
    """How the process about to ask the sampler for the started study's trials differs from the
    one that started it, in what changes the trials a seed gives: a release of katuna, Optuna or
    a library its sampler draws on, or the look-ahead; None where nothing recorded differs (or,
    for a study not started yet, or stored before katuna recorded these, nothing is recorded)."""
    if record.started_at is None:
        return None
    recorded = {"katuna": record.katuna_version, "optuna": record.optuna_version, **(record.library_versions or {})}
    now = {"katuna": katuna_version(), "optuna": optuna.__version__,
           **{name: installed(name) for name in record.library_versions or {}}}
    changed = [f"{name} {was} (now {now[name]})" for name, was in recorded.items() if was is not None and was != now[name]]
    if record.lookahead is not None and record.lookahead != lookahead:
        changed.append(f"look-ahead {record.lookahead} (now {lookahead})")
    if not changed:
        return None
    return (f"study {record.name!r} was started with {', '.join(changed)}: the trials it suggests from here on may "
            f"differ from those its seed {record.seed} gave an uninterrupted run")
