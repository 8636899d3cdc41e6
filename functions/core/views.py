"""Studies and trials as JSON-ready dicts: one shape for the CLI's ``--json`` and the HTTP API."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from functions.core import pbt
from functions.core.errors import MalformedRequest
from functions.core.metrics import Observation, ObservationKey
from functions.core.pareto import best_trials, front_marks, front_sample
from functions.core.records import StudyRecord, TrialRecord
from functions.core.resources import description
from functions.core.source_annotation import annotated_source
from functions.core.store_port import Store, with_stopped
from functions.core.trial_cap import grid_cover, shown_cap


def trial_view(trial: TrialRecord, pareto: bool | None = None) -> dict[str, Any]:
    """A trial's fields; a trial of population-based training's also its generation and parent,
    one of a multi-objective study (``pareto`` given) whether it is on the Pareto front, and one
    that runs an entry of the study's ``initialTrials`` which (``initialTrial``, its index). Its
    ``state`` is the one its tables show (:attr:`~functions.core.records.TrialRecord.shown_state`:
    ``STOPPED`` for a trial its study's end stopped, stored ``PRUNED``)."""
    lineage = {} if trial.generation is None else {"generation": trial.generation, "parent": trial.parent}
    lineage |= {} if pareto is None else {"pareto": pareto}
    lineage |= {} if trial.initial_trial is None else {"initialTrial": trial.initial_trial}
    return {
        "number": trial.number,
        "state": trial.shown_state,
        "params": trial.params,
        "value": trial.values[0] if trial.values else None,
        "values": trial.values,
        "metrics": trial.metrics,
        "reason": trial.reason or None,
        "attempt": trial.attempt,
        "exitCode": trial.exit_code,
        "startedAt": trial.started_at,
        "finishedAt": trial.finished_at,
        "imageDigest": trial.image_digest,
        "peakMemory": trial.peak_memory,
    } | lineage


def marked_view(front: Collection[int] | None) -> Callable[[TrialRecord], dict[str, Any]]:
    """:func:`trial_view`, with whether each trial is on the Pareto ``front`` where the study has
    one (:func:`functions.core.pareto.front_marks`), as every listing of trials marks it."""
    if front is None:
        return trial_view
    return lambda trial: trial_view(trial, trial.number in front)


def lost_runs(store: Store, trial: TrialRecord) -> list[dict[str, str]]:
    """The runs of the trial's current attempt lost to disruptions (a pod preempted, evicted, or
    gone with its node, replaced within its Job): each counts against ``maxAttempts``, and its
    pod, deleted soon after, shows it nowhere else."""
    lost = store.lost_pods(trial.study, trial.number).of(trial.attempt)
    return [{"pod": uid, "cause": disruption.cause, "message": disruption.message}
            for uid, disruption in lost.items()]


OBSERVATIONS_SHOWN = 1_000
"""Observations a trial's view holds: a trial keeps up to 10,000 of each attempt, over up to 100
attempts, so its whole history is read a page at a time (:func:`observation_page`)."""

KEY = re.compile(r"(\d{1,18})~(\d{1,18})")
"""An observation's key as text: its attempt and its place in the attempt's output, ``2~417``."""


def trial_detail(store: Store, record: StudyRecord, trial: TrialRecord,
                 after: ObservationKey | None = None) -> dict[str, Any]:
    """A trial's view (marked on or off the Pareto front of a multi-objective study) with the
    runs its attempt lost (:func:`lost_runs`) and the first :data:`OBSERVATIONS_SHOWN` values
    it reported (after the one keyed ``after``), in order, how many it has stored
    (``observationCount``), and the key of the last shown while more follow
    (``observationsAfter``, else None): ``GET /studies/{name}/trials/{number}`` and ``katuna
    show NAME NUMBER --json``."""
    view = marked_view(front_marks(store, record))(trial)
    view["lostRuns"] = lost_runs(store, trial)
    shown, more = observation_page(store, trial, after, OBSERVATIONS_SHOWN)
    view["observations"] = [item for _, item in shown]
    view["observationCount"] = store.count_observations(trial.study, trial.number)
    view["observationsAfter"] = observation_key_text(shown[-1][0]) if more else None
    return view


def observation_page(store: Store, trial: TrialRecord, after: ObservationKey | None,
                     limit: int) -> tuple[list[tuple[ObservationKey, dict[str, Any]]], bool]:
    """At most ``limit`` of the trial's observations after the one keyed ``after``, each with
    its key, and whether more follow."""
    rows = list(store.observations_after(trial.study, trial.number, after, limit + 1))
    return [(key, observation_view(key, o)) for key, o in rows[:limit]], len(rows) > limit


def observation_view(key: ObservationKey, o: Observation) -> dict[str, Any]:
    return {"attempt": key[0], "metric": o.metric, "value": o.value, "step": o.step, "timestamp": o.timestamp}


def observation_key_text(key: ObservationKey) -> str:
    return f"{key[0]}~{key[1]}"


def observation_key(name: str, text: str) -> ObservationKey:
    """The key ``text`` gives (:data:`KEY`); :class:`MalformedRequest` naming ``name`` otherwise."""
    match = KEY.fullmatch(text)
    if match is None:
        raise MalformedRequest(f"{name}: expected an observation's key as a next link gives it (such as 1~999), "
                               f"got {text[:40]!r}")
    return int(match[1]), int(match[2])


def study_view(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The study as the API and ``katuna show --json`` give it; its ``counts`` tell the trials its
    end stopped apart (:meth:`~functions.core.records.Counts.shown`), read only where it has
    pruned trials (:func:`~functions.core.store_port.with_stopped`)."""
    counts = with_stopped(store, record.name, store.count_trials(record.name))
    spec, cap = record.spec, shown_cap(record)
    return {
        "name": record.name,
        "description": description(record.definition),
        "status": record.status,
        "reason": record.reason or None,
        "algorithm": spec.algorithm.name,
        "objectives": [{"metric": o.metric, "direction": o.direction, "goal": o.goal} for o in spec.objectives],
        "trials": counts.created,
        "counts": counts.shown(),
        "waitingBecause": store.waiting_note(record.name) if counts.waiting and not record.terminal else None,
        "maxTrials": cap.trials if cap is not None else None,
        "maxTrialsSetBy": cap.setting if cap is not None else None,
        "warmStart": warm_start_view(record),
        "grid": grid_view(record),
        "population": population_view(store, record),
        "initialTrials": initial_trials_view(store, record),
        **_best(store, record),
        "createdAt": record.created_at,
        "startedAt": record.started_at,
        "completedAt": record.completed_at,
        "nodePool": node_pool_view(store, record),
        "resource": _resource(record),
        "runsOn": record.runs_on,
        "trialTemplateSource": annotated_source(record.definition),
        "reproducibility": {"seed": record.seed, "katunaVersion": record.katuna_version,
                            "optunaVersion": record.optuna_version,
                            "libraryVersions": None if record.library_versions is None else dict(record.library_versions),
                            "lookahead": record.lookahead},
    }


def initial_trials_view(store: Store, record: StudyRecord) -> dict[str, int] | None:
    """The study's initial trials: how many it gives, and how many of them trials run so far
    (asked for: each runs once, before the sampler's suggestions); None where it gives none."""
    given = len(record.spec.initial_trials)
    return None if not given else {"given": given, "asked": len(store.initial_trials_held(record.name))}


def warm_start_view(record: StudyRecord) -> dict[str, Any] | None:
    """What the study's warm start gave its sampler: the known results given (inline and from a
    file), the earlier study named and how many of its completed trials fit this space and were
    taken (None for a study stored before they were kept with it), and their sum. None without a
    warm start. Known results are no trials of the study, so nothing else shows them."""
    warm = record.spec.warm_start
    if warm is None:
        return None
    taken = None if record.warm_results is None else len(record.warm_results)
    return {"knownResults": None if taken is None and warm.study is not None else len(warm.trials) + (taken or 0),
            "given": len(warm.trials), "study": warm.study, "taken": taken}


def population_view(store: Store, record: StudyRecord) -> dict[str, int] | None:
    """How far a study of population-based training has come: its newest ``generation``, the
    ``trials`` asked for in it, how many ``succeeded``, and the ``size`` (``n_population``)
    whose successes start the next; None for another algorithm. Counted by the store in one
    statement, so no trial is read."""
    if record.spec.algorithm.name != pbt.NAME:
        return None
    generation, asked, succeeded = store.newest_generation(record.name)
    size = pbt.settings_of(dict(record.spec.algorithm.settings)).n_population
    return {"generation": generation, "trials": asked, "succeeded": succeeded, "size": size}


def grid_view(record: StudyRecord) -> dict[str, int] | None:
    """A grid study's grid: its ``points``, and the ``covered`` ones its warm start's known
    results lie on, which its own trials do not run (each point once); None for another
    algorithm."""
    cover = grid_cover(record.spec, record.warm_results)
    return None if cover is None else {"points": cover.points, "covered": cover.covered}


def _best(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The best trial, or a sample of a multi-objective study's Pareto front (at most
    :data:`functions.core.pareto.FRONT_SHOWN` trials spread along it) and the front's size."""
    if not record.spec.multi_objective:
        best = best_trials(store, record)
        return {"best": trial_view(best[0]) if best else None}
    shown, size = front_sample(store, record)
    return {"best": [trial_view(t, pareto=True) for t in shown], "frontSize": size}


def node_pool_view(store: Store, record: StudyRecord) -> dict[str, Any] | None:
    """Which pool the trials ran on, with what capacity, for how long, its measured node-hours,
    and what they cost at the price the study gives (``nodePool.pricePerNodeHour``)."""
    use = store.pool_use(record.uid)
    if use is None:
        return None
    view = use.to_dict(time.time(), store.pool_uses(pool=use.pool))
    pool = record.spec.node_pool
    price = pool.price_per_node_hour if pool is not None else None
    measured = view["nodeHours"]
    view.update(pricePerNodeHour=price, cost=None if price is None or measured is None else round(measured * price, 4),
                currency=pool.currency if pool is not None else None)
    return view


def figure(value: float) -> str:
    """Node-hours or money as the CLI and the dashboard show them: two decimals, thousands grouped
    (``1,080,000.00``, never ``1.08e+06``); a figure above 0 that two decimals would show as
    ``0.00`` (a few minutes of a node, their cost at a cent an hour) with its first two digits
    (``0.0017``), so that what was measured, or cost something, never reads as nothing."""
    if 0 < abs(value) < 0.005:
        return f"{Decimal(f'{value:.2g}'):f}"
    return f"{value:,.2f}"


def price(value: float, currency: str | None) -> str:
    """A price as the study gives it, every decimal it has and none added (``0.0035``,
    ``4,800,000``), thousands grouped, with its currency when the study names one."""
    return f"{Decimal(repr(value)).normalize():,f}" + (f" {currency}" if currency else "")


def cost_text(pool: dict[str, Any]) -> str:
    """A pool view's cost as the CLI and the dashboard show it: ``cost 0.10 USD at 0.04 USD a
    node-hour`` (empty without a price or a measure)."""
    if pool["cost"] is None:
        return ""
    money = figure(pool["cost"]) + (f" {pool['currency']}" if pool["currency"] else "")
    return f"cost {money} at {price(pool['pricePerNodeHour'], pool['currency'])} a node-hour"


def _resource(record: StudyRecord) -> dict[str, str] | None:
    """The Kubernetes resource that manages the study, if one does."""
    origin = record.origin
    return None if origin is None else {key: origin[key] for key in ("kind", "namespace", "name")}
