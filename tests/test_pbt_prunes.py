"""Which trials' checkpoint folders population-based training may delete while its study lives
(:func:`functions.core.pbt.never_copied`): never one a later child, or a failed child run again,
could copy; every other once its trial ended. With ``KATUNA_PRUNE_CHECKPOINTS``, a study run
with real subprocess trials on SQLite keeps only its possible parents' folders."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from functions.adapters.local_checkpoints import pruned
from functions.core import pbt
from functions.core.checkpoints import of_trial
from functions.core.errors import InvalidSetting
from functions.core.formats import load_study
from functions.core.parameters import FloatParameter
from functions.core.records import COMPLETE
from functions.embedded import Embedded
from functions.settings import Settings

DATA = Path(__file__).parent / "data" / "katib_examples"
TRIALS = Path(__file__).parent / "trials"

LR = FloatParameter("lr", low=0.0001, high=0.02, step=0.0001)
SETTINGS = pbt.Settings(n_population=5, truncation_threshold=0.2, suggestion_trial_dir="/ckpt")


def _member(number: int, generation: int, parent: int | None, ended: str = pbt.SUCCEEDED, *, finished: bool = True,
            refused: bool = False, lr: float = 0.001) -> pbt.Member:
    score = float(number) if ended == pbt.SUCCEEDED else None
    return pbt.Member(number, {"lr": lr}, generation, parent, ended, score, refused, finished)


POOL0 = [_member(n, 0, None) for n in range(5)]
"""Generation 0, closed: every one a possible parent while no later generation closes."""
POOL1 = [_member(n, 1, n - 5) for n in range(5, 10)]
"""Generation 1, closed, one child of each trial of generation 0."""


def _pruned(members: list[pbt.Member]) -> list[int]:
    return pbt.never_copied(pbt.newest_pool(SETTINGS, members), members, members)


@pytest.mark.parametrize(("members", "expected", "why"), [
    ([*POOL0[:4], _member(4, 0, None, pbt.OTHER, finished=False)], [],
     "no pool yet: each succeeded trial may be drawn; the running one uses its folder"),
    ([*POOL0[:4], _member(4, 0, None, pbt.FAILED), _member(5, 0, None, pbt.OTHER)], [4, 5],
     "a failed or pruned trial is never a parent"),
    (POOL0, [], "the newest pool's trials may all be drawn"),
    ([*POOL0, *POOL1], [0, 1, 2, 3, 4], "a pool older than the newest is never drawn from again"),
    ([*POOL0, *POOL1, _member(10, 1, 0, pbt.OTHER, finished=False)], [1, 2, 3, 4],
     "a trial whose child still runs keeps its folder: the child's attempt may copy it"),
    ([*POOL0, *POOL1, _member(10, 1, 0, pbt.FAILED)], [1, 2, 3, 4, 10],
     "a child failed and not run again yet keeps its parent's folder: it runs again from a fresh copy"),
    ([*POOL0, *POOL1, _member(10, 1, 0, pbt.FAILED), _member(11, 1, 0, pbt.OTHER)], [0, 1, 2, 3, 4, 10, 11],
     "a failure run again (and pruned) keeps nothing"),
    ([*POOL0, *POOL1, _member(10, 1, 0, pbt.FAILED, refused=True)], [0, 1, 2, 3, 4, 10],
     "a child refused its parent's copy is never run again"),
    ([*POOL0, *POOL1, _member(10, 1, 0, pbt.SUCCEEDED), _member(11, 2, 10, pbt.OTHER, finished=False)],
     [0, 1, 2, 3, 4], "a succeeded trial of the newest pool's generation may be drawn, beyond n_population"),
    ([*POOL0, *POOL1, _member(10, 2, 7, pbt.OTHER, finished=False), _member(11, 2, 8, pbt.SUCCEEDED)],
     [0, 1, 2, 3, 4], "a succeeded trial of the generation after the newest pool may be in the next pool"),
])
def test_a_folder_goes_only_once_no_later_trial_can_copy_it(members: list[pbt.Member], expected: list[int],
                                                            why: str):
    assert _pruned(members) == expected, why


def test_only_the_candidates_asked_about_are_chosen_and_their_children_read_from_the_family():
    members = [*POOL0, *POOL1, _member(10, 1, 0, pbt.OTHER, finished=False)]
    newest = pbt.newest_pool(SETTINGS, members)
    assert pbt.never_copied(newest, [members[0], members[1]], [members[10]]) == [1]
    assert pbt.never_copied(newest, [members[0]], []) == [0], "a folder no child named is free"


def _finish(member: pbt.Member, rng: random.Random) -> pbt.Member:
    """``member`` ended at random: succeeded (a score), failed (now and then refused its
    parent's folder) or pruned."""
    draw = rng.random()
    if draw < 0.7:
        return pbt.Member(member.number, member.params, member.generation, member.parent, pbt.SUCCEEDED,
                          rng.random(), finished=True)
    refused = draw < 0.78 and member.parent is not None
    ended = pbt.FAILED if draw < 0.9 else pbt.OTHER
    return pbt.Member(member.number, member.params, member.generation, member.parent, ended, None,
                      refused and ended == pbt.FAILED, True)


def _run(seed: int) -> tuple[set[int], list[pbt.Member]]:
    """A population of random size run to 120 trials, a few at once, ending in random order;
    after each end the folders :func:`~functions.core.pbt.never_copied` chooses are deleted, and
    each trial asked for must find its parent's folder."""
    rng = random.Random(seed)
    settings = pbt.Settings(rng.randint(5, 8), rng.choice((0.2, 0.25, 0.4)), "/ckpt", rng.choice((None, 0.3)))
    members: list[pbt.Member] = []
    deleted: set[int] = set()
    while len(members) < 120 or any(not m.finished for m in members):
        running = [m for m in members if not m.finished]
        if len(members) < 120 and (len(running) < rng.randint(1, 6) or not running):
            plan = pbt.next_plan(settings, [LR], members, rng)
            assert plan.parent is None or plan.parent not in deleted, (seed, len(members), plan)
            params = plan.params or {"lr": LR.low + rng.randint(0, 100) * LR.step}
            members.append(pbt.Member(len(members), params, plan.generation, plan.parent, pbt.OTHER))
            continue
        ended = _finish(rng.choice(running), rng)
        members[ended.number] = ended
        chosen = pbt.never_copied(pbt.newest_pool(settings, members), members, members)
        assert all(members[n].finished for n in chosen), (seed, chosen)
        deleted |= set(chosen)
    return deleted, members


@pytest.mark.parametrize("seed", range(40))
def test_no_folder_a_later_child_or_a_failure_run_again_copies_is_ever_chosen(seed: int):
    deleted, members = _run(seed)
    assert deleted, "some folder goes"
    newest = pbt.newest_pool(SETTINGS, members)
    kept = {m.number for m in members} - deleted
    assert all(m.ended == pbt.SUCCEEDED for m in members if m.number in kept) or newest is None, \
        "once every trial ended, only possible parents keep their folders"


def _simple_pbt(tmp_path: Path, prune: bool) -> tuple[list[int], list[int]]:
    """Katib's simple-pbt (one epoch a trial, 13 trials, so a second generation fills) run to
    its end with pruning on or off: the trials' numbers, and those whose folders are left."""
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    doc["spec"].update(maxTrialCount=13, maxFailedTrialCount=3, parallelTrialCount=2)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [arg.replace("tests/trials/", f"{TRIALS}/") for arg in container["command"]] + ["--epochs=1"]
    spec, definition = load_study(yaml.safe_dump(doc))
    runner = Embedded(Settings(db=tmp_path / "katuna.db", prune_checkpoints=prune, lookahead=0))
    try:
        runner.submit(spec, definition, tmp_path)
        assert runner.run(spec.name).status == "completed"
        trials = runner.store.trials(spec.name)
    finally:
        runner.close()
    [logs] = (tmp_path / "katuna-logs" / spec.name).iterdir()
    left = sorted(int(folder.name) for folder in (logs / "checkpoints").iterdir())
    newest = max(g for g in {t.generation for t in trials}
                 if sum(t.generation == g and t.state == COMPLETE for t in trials) >= 5)
    assert newest >= 1 and all(t.state == COMPLETE for t in trials), "a second generation filled"
    parents = [t.number for t in trials if (t.generation or 0) >= newest]
    return parents, left


@pytest.mark.parametrize("prune", [True, False])
def test_a_study_run_with_pruning_keeps_only_its_possible_parents_folders(tmp_path: Path, prune: bool):
    parents, left = _simple_pbt(tmp_path, prune)
    assert left == (parents if prune else list(range(13)))


def _folders(log_dir: Path, *numbers: int) -> Path:
    """The study's checkpoints folder under ``log_dir``, a folder of a file for each of ``numbers``."""
    checkpoints = log_dir / "study" / "checkpoints"
    for number in numbers:
        (checkpoints / str(number) / "inner").mkdir(parents=True)
        (checkpoints / str(number) / "inner" / "model.bin").write_bytes(b"x")
    return checkpoints


CHECKPOINT = Path(of_trial({"suggestion_trial_dir": "/ckpt"}, "study", 9, 3).folder).parent


def test_pruning_deletes_the_folders_chosen_once_and_again_finds_nothing_to_do(tmp_path: Path):
    checkpoints = _folders(tmp_path, 1, 2, 3)
    assert pruned(tmp_path, CHECKPOINT, [1, 3, 7]) == [1, 3], "a trial that made no folder is nothing to do"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["2"]
    assert pruned(tmp_path, CHECKPOINT, [1, 3]) == [], "a pass made again deletes nothing more"
    assert pruned(tmp_path / "none", CHECKPOINT, [2]) == [], "a study that wrote no checkpoint has none to delete"


def test_pruning_follows_no_link_a_trial_planted(tmp_path: Path):
    elsewhere = _folders(tmp_path / "elsewhere", 1, 2)
    checkpoints = _folders(tmp_path / "logs", 3)
    (checkpoints / "1").symlink_to(elsewhere / "1")
    assert pruned(tmp_path / "logs", CHECKPOINT, [1, 3]) == [1, 3]
    assert (elsewhere / "1" / "inner" / "model.bin").exists(), "the link went, not what it named"
    (tmp_path / "logs2").mkdir()
    (tmp_path / "logs2" / "study").symlink_to(elsewhere.parent)
    assert pruned(tmp_path / "logs2", CHECKPOINT, [2]) == [], "a link on the way leaves every folder"
    assert (elsewhere / "2").exists()


def test_pruning_is_off_unless_asked_for_and_a_setting_not_yes_or_no_stops_katuna_at_start():
    assert not Settings.from_env({}).prune_checkpoints
    assert Settings.from_env({"KATUNA_PRUNE_CHECKPOINTS": "true"}).prune_checkpoints
    with pytest.raises(InvalidSetting, match="KATUNA_PRUNE_CHECKPOINTS"):
        Settings.from_env({"KATUNA_PRUNE_CHECKPOINTS": "sometimes"})
