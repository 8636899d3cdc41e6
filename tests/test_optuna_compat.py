"""The behaviour katuna relies on in Optuna's private API (:mod:`functions.core.optuna_compat`).

An Optuna release that changes any of it fails here first.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from functions.core.optuna_compat import (
    CREATE_STUDY,
    CREATE_TRIAL,
    DELETE_STUDY,
    STUDY_RECORDS,
    TRIAL_RECORDS,
    BaseJournalSnapshot,
    KnownGridSampler,
    color_scale,
    contains,
    journal_position,
    journal_snapshot,
    parallel_coordinate_info,
    reseed,
    trial_ids_in,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Recorded(BaseJournalBackend):
    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return iter(self.logs[log_number_from:])

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


def test_journal_records_name_their_study_or_trial_by_the_op_codes_katuna_splits_them_by():
    """Each study's records are kept in a journal of their own, renumbered by these fields."""
    recorded = _Recorded()
    storage = JournalStorage(recorded)
    study = optuna.create_study(storage=storage, study_name="s")
    study.set_user_attr("a", 1)
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    optuna.delete_study(study_name="s", storage=storage)
    ops = [log["op_code"] for log in recorded.logs]
    assert ops[0] == CREATE_STUDY and ops[2] == CREATE_TRIAL and ops[-1] == DELETE_STUDY
    assert all("study_id" in log for log in recorded.logs if log["op_code"] in STUDY_RECORDS | {CREATE_TRIAL})
    assert all("trial_id" in log for log in recorded.logs if log["op_code"] in TRIAL_RECORDS)
    assert set(ops) <= {CREATE_STUDY, DELETE_STUDY, CREATE_TRIAL} | STUDY_RECORDS | TRIAL_RECORDS


def test_a_genetic_sampler_keeps_its_parents_trial_ids_where_katuna_looks_for_them():
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=4, seed=1))
    for _ in range(12):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        study.tell(trial, [x, 1 - x])
    attributes = study._storage.get_study_system_attrs(study._study_id)
    kept = {key: value for key, value in attributes.items() if trial_ids_in(key, value)}
    ids = {t._trial_id for t in study.trials}
    assert kept and all(set(value) <= ids for value in kept.values()), attributes


def _suggestions(sampler: optuna.samplers.BaseSampler, trials: int = 12) -> list[tuple[float, str]]:
    study = optuna.create_study(sampler=sampler)
    suggested = []
    for _ in range(trials):
        trial = study.ask()
        x, kind = trial.suggest_float("x", 0.0, 1.0), trial.suggest_categorical("kind", ["a", "b", "c"])
        study.tell(trial, x)
        suggested.append((x, kind))
    return suggested


@pytest.mark.parametrize("make", [
    lambda seed: optuna.samplers.RandomSampler(seed=seed),
    lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
], ids=["random", "tpe-and-its-startup-sampler"])
def test_a_reseeded_sampler_suggests_what_a_new_one_with_that_seed_would(make):
    reused = make(1)
    _suggestions(reused, trials=3)
    reseed(reused, 7)
    assert _suggestions(reused) == _suggestions(make(7))


def test_reseeding_changes_what_a_sampler_suggests():
    sampler = optuna.samplers.RandomSampler(seed=1)
    reseed(sampler, 2)
    assert _suggestions(sampler) != _suggestions(optuna.samplers.RandomSampler(seed=1))


@pytest.mark.parametrize(("distribution", "inside", "outside"), [
    (optuna.distributions.FloatDistribution(-5, 5), [-5, 0.25, 5], [-5.001, 5.5]),
    (optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True), [1e-4, 0.01], [1e-5, 1.0]),
    (optuna.distributions.FloatDistribution(0, 1, step=0.25), [0, 0.5, 1], [0.3, 1.25]),
    (optuna.distributions.IntDistribution(1, 9, step=2), [1, 3, 9], [2, 0, 11]),
    (optuna.distributions.CategoricalDistribution([16, 32]), [16, 32], []),
], ids=["float", "log-float", "float-step", "int-step", "choices"])
def test_contains_says_whether_a_value_is_within_bounds_and_on_the_step(distribution, inside, outside):
    assert all(contains(distribution, value) for value in inside)
    assert not any(contains(distribution, value) for value in outside)


def test_contains_refuses_a_choice_the_distribution_lacks():
    with pytest.raises(ValueError):
        contains(optuna.distributions.CategoricalDistribution(["relu", "tanh"]), "gelu")


class _MemoryJournal(BaseJournalBackend, BaseJournalSnapshot):
    """A journal in a list, with one snapshot slot; remembers where reads started."""

    def __init__(self, logs: list[dict[str, Any]] | None = None, snapshot: bytes | None = None) -> None:
        self.logs = logs if logs is not None else []
        self.snapshot = snapshot
        self.reads_from: list[int] = []

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        self.reads_from.append(log_number_from)
        return iter(self.logs[log_number_from:])

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)

    def load_snapshot(self) -> bytes | None:
        return self.snapshot

    def save_snapshot(self, snapshot: bytes) -> None:
        """Optuna's own schedule is not followed."""


def _journal_study(trials: int) -> tuple[JournalStorage, _MemoryJournal]:
    backend = _MemoryJournal()
    storage = JournalStorage(backend)
    study = optuna.create_study(study_name="pinned", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)
    return storage, backend


GRID_SPACE = {"x": [0.0, 0.5, 1.0], "y": ["a", "b", 2]}


def _grid_points(sampler: optuna.samplers.BaseSampler, known: list[dict[str, Any]], asked: int) -> list[tuple]:
    """The points ``sampler`` gives ``asked`` trials of a study warm started with ``known``, each
    trial finished before the next is asked for."""
    study = optuna.create_study(sampler=sampler)
    dists = {name: optuna.distributions.CategoricalDistribution(values) for name, values in GRID_SPACE.items()}
    study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=0.0) for p in known])
    points = []
    for _ in range(asked):
        trial = study.ask(dists)
        points.append((trial.params["x"], trial.params["y"]))
        with pytest.raises(RuntimeError, match="Study.stop") if len(points) == asked else contextlib.nullcontext():
            study.tell(trial, 1.0)  # the grid's last point stops the study, outside an optimize loop
    return points


def test_without_known_results_the_grid_sampler_visits_optunas_points_in_optunas_order():
    optunas = _grid_points(optuna.samplers.GridSampler(GRID_SPACE, seed=5), [], 9)
    assert _grid_points(KnownGridSampler(GRID_SPACE, seed=5), [], 9) == optunas


def test_optunas_grid_sampler_runs_the_points_of_known_results_again():
    """Optuna's ``add_trials`` gives a trial no ``grid_id``, so its point is unvisited to Optuna:
    what :class:`KnownGridSampler` makes up for."""
    known = [{"x": 0.5, "y": 2}, {"x": 0.0, "y": "a"}]
    assert set(_grid_points(optuna.samplers.GridSampler(GRID_SPACE, seed=5), known, 9)) >= {(0.5, 2), (0.0, "a")}


def test_the_grid_sampler_skips_the_covered_points_in_its_seeds_order():
    """The points it is told are covered are skipped, the rest come in the order of the seed's
    shuffle; told none is covered (known results that lie on no point), it visits every point."""
    known = [{"x": 0.5, "y": 2}, {"x": 0.0, "y": "a"}]
    every = _grid_points(optuna.samplers.GridSampler(GRID_SPACE, seed=5), [], 9)
    points = _grid_points(KnownGridSampler(GRID_SPACE, seed=5, covered=known), known, 7)
    assert points == [p for p in every if p not in {(0.5, 2), (0.0, "a")}]
    off = _grid_points(KnownGridSampler({"x": [0.0, 1.0], "y": ["a"]}, seed=5, covered=[]), [{"x": 0.5, "y": "a"}], 2)
    assert sorted(off) == [(0.0, "a"), (1.0, "a")]


def test_the_journal_position_counts_the_records_replayed():
    storage, backend = _journal_study(3)
    storage.get_all_studies()
    assert journal_position(storage) == len(backend.logs) > 0


def test_a_storage_started_from_a_snapshot_replays_only_the_records_after_it():
    storage, backend = _journal_study(3)
    position, body = journal_snapshot(storage)
    assert position == len(backend.logs)
    optuna.load_study(study_name="pinned", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)

    restored_backend = _MemoryJournal(backend.logs, snapshot=body)
    restored = JournalStorage(restored_backend)
    study = optuna.load_study(study_name="pinned", storage=restored)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert study.trials[4].params == optuna.load_study(study_name="pinned", storage=storage).trials[4].params
    assert min(restored_backend.reads_from) == position
    assert journal_position(restored) == len(backend.logs)


@pytest.mark.slow
def test_the_parallel_coordinate_data_has_the_fields_the_chart_draws():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True) * len(t.suggest_categorical("opt", ["a", "bb"])),
                   n_trials=6)
    info = parallel_coordinate_info(study, None, "loss")
    assert [d.label for d in info.dims_objectives] == ["loss"]
    params = {d.label: d for d in info.dims_params}
    assert set(params) == {"lr", "opt"}
    for dimension in info.dims_objectives + info.dims_params:
        assert len(dimension.values) == 6 and len(dimension.range) == 2
    assert params["opt"].tickvals and set(params["opt"].ticktext) == {"a", "bb"}
    assert params["lr"].tickvals and params["lr"].range[0] < 0  # a log axis is drawn in log10 units
    assert len(info.color_values) == 6
    assert isinstance(info.reverse_scale, bool) and info.colorbar_title == "loss"


def test_the_color_scale_is_a_list_of_colors():
    colors = list(color_scale())
    assert len(colors) >= 2 and all(isinstance(c, str) and c.startswith("rgb") for c in colors)


ROOT = Path(__file__).parent.parent
COMPAT = ROOT / "functions" / "core" / "optuna_compat"


def _private_optuna_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == "optuna"]
        else:
            continue
        found += [name for name in names if any(part.startswith("_") for part in name.split("."))]
    return found


def test_only_the_compatibility_modules_import_optuna_internals():
    users = {str(path.relative_to(ROOT)): _private_optuna_imports(path)
             for folder in ("functions", "infra") for path in (ROOT / folder).rglob("*.py")}
    found = {path for path, names in users.items() if names}
    assert found and found <= {str(p.relative_to(ROOT)) for p in COMPAT.glob("_*.py")}


def test_the_internals_check_sees_a_private_module_and_a_private_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from optuna.samplers._lazy_random_state import LazyRandomState\n"
                      "from optuna.visualization import _get_info\nfrom optuna.trial import TrialState\n")
    assert _private_optuna_imports(module) == [
        "optuna.samplers._lazy_random_state", "optuna.samplers._lazy_random_state.LazyRandomState",
        "optuna.visualization._get_info"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _optuna_private_attributes() -> set[str]:
    """The private attributes of Optuna's public classes, and of a live journal storage, study,
    sampler and trial (whose private state is set in their constructors)."""
    modules = (optuna, optuna.distributions, optuna.samplers, optuna.storages, optuna.storages.journal,
               optuna.trial, optuna.study, optuna.pruners)
    classes = {value for module in modules for value in vars(module).values()
               if isinstance(value, type) and value.__module__.startswith("optuna")}
    storage, _ = _journal_study(1)
    study = optuna.load_study(study_name="pinned", storage=storage)
    live = (storage, study, study.sampler, study.trials[0])
    return ({name for cls in classes for name in dir(cls) if _private(name)}
            | {name for obj in live for name in vars(obj) if _private(name)})


def _private_attribute_uses(path: Path, private: set[str]) -> list[str]:
    """Uses of those attributes on anything but the module's own ``self`` or ``cls``."""
    return [ast.unparse(node) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]


def test_only_the_compatibility_modules_reach_into_optuna_objects():
    private = _optuna_private_attributes()
    users = {str(path.relative_to(ROOT)): _private_attribute_uses(path, private)
             for folder in ("functions", "infra") for path in (ROOT / folder).rglob("*.py") if COMPAT not in path.parents}
    assert {path: uses for path, uses in users.items() if uses} == {}


def test_the_attribute_check_sees_a_private_method_of_a_distribution(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def fits(dist, value):\n    return dist._contains(value) and dist.single()\n")
    assert _private_attribute_uses(module, _optuna_private_attributes()) == ["dist._contains"]
