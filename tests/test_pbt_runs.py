"""Population-based training run by ``katuna run`` as real subprocesses: Katib's ``simple-pbt``
Experiment, its trial program resuming from the checkpoint folder its command names, each
child's folder a copy of its parent's; a failed child runs again as it was; a checkpoint past
``KATUNA_MAX_CHECKPOINT`` fails the child that would copy it. And the copy itself: made once,
whole or not at all, following no link of the parent's folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from http_helpers import KATUNA

from functions.adapters.local_checkpoints import made
from functions.core.checkpoints import Checkpoint
from functions.core.errors import RefusedFile

DATA = Path(__file__).parent / "data" / "katib_examples"
TRIALS = Path(__file__).parent / "trials"


def run(tmp_path: Path, *extra: str, max_trials: int = 12, env: dict[str, str] | None = None,
        failed: int = 3, parallel: int = 2) -> subprocess.CompletedProcess[str]:
    """Katib's simple-pbt, its trial program given ``extra`` arguments, run by ``katuna run``."""
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    doc["spec"].update(maxTrialCount=max_trials, maxFailedTrialCount=failed, parallelTrialCount=parallel)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [arg.replace("tests/trials/", f"{TRIALS}/") for arg in container["command"]] + list(extra)
    (tmp_path / "simple-pbt.yaml").write_text(yaml.safe_dump(doc))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")} | (env or {})
    return subprocess.run([KATUNA, "run", "simple-pbt.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=environ)


def trials(tmp_path: Path) -> list[dict]:
    shown = subprocess.run([KATUNA, "trials", "simple-pbt", "--json"], cwd=tmp_path, capture_output=True, text=True,
                           check=True, timeout=60)
    return json.loads(shown.stdout)


def checkpoint(tmp_path: Path, number: int) -> dict:
    [folder] = (tmp_path / "katuna-logs" / "simple-pbt").iterdir()
    return json.loads((folder / "checkpoints" / str(number) / "training.ckpt").read_text())


@pytest.mark.slow
def test_simple_pbt_runs_generations_each_child_resuming_from_its_parents_checkpoint(tmp_path: Path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = trials(tmp_path)
    assert len(found) == 12 and all(t["state"] == "COMPLETE" for t in found)
    first = [t for t in found if t["generation"] == 0]
    children = [t for t in found if t["generation"] > 0]
    assert len(first) >= 5 and all(t["parent"] is None for t in first), "a population of n_population first"
    assert children and all(found[t["parent"]]["generation"] == t["generation"] - 1 for t in children)
    for trial in found:
        lineage, number = [], trial["number"]
        while number is not None:
            lineage.insert(0, number)
            number = found[number]["parent"]
        saved = checkpoint(tmp_path, trial["number"])
        assert saved["trials"] == lineage, "each trial resumed from the copy of its parent's checkpoint"
        assert saved["step"] == 1 + 3 * len(lineage)
    again = run(tmp_path)
    assert again.returncode == 0 and "Nothing to run" in again.stdout
    assert trials(tmp_path) == found


@pytest.mark.slow
def test_a_failed_child_runs_again_with_its_parent_generation_and_hyperparameters(tmp_path: Path):
    done = run(tmp_path, "--fail-at=4", max_trials=20, failed=4, parallel=1)
    assert done.returncode == 1, done.stdout + done.stderr
    failures = [(t["number"], json.dumps(t["params"]), t["generation"], t["parent"])
                for t in trials(tmp_path) if t["state"] == "FAIL"]
    assert len(failures) == 4 and all(generation == 1 for _, _, generation, _ in failures)
    runs: dict[tuple, list[int]] = {}
    for number, *plan in failures:
        runs.setdefault(tuple(plan), []).append(number)
    assert any(len(numbers) > 1 for numbers in runs.values()), f"a failed child ran again as it was: {failures}"


@pytest.mark.slow
def test_a_checkpoint_past_the_limit_fails_the_child_that_would_copy_it(tmp_path: Path):
    done = run(tmp_path, "--grow=4096", env={"KATUNA_MAX_CHECKPOINT": "1000"}, failed=0)
    assert done.returncode == 1, done.stdout + done.stderr
    [failed] = [t for t in trials(tmp_path) if t["state"] == "FAIL"]
    assert failed["generation"] == 1
    assert "katuna refused to start the attempt: the parent's checkpoint folder" in failed["reason"]
    assert "KATUNA_MAX_CHECKPOINT" in failed["reason"]


def test_the_copy_is_made_once_and_a_copy_cut_short_is_made_again(tmp_path: Path):
    parent = tmp_path / "s" / "checkpoints" / "0"
    (parent / "inner").mkdir(parents=True)
    (parent / "training.ckpt").write_text("saved")
    (parent / "inner" / "w").write_bytes(b"\1" * 10)
    left = tmp_path / "s" / "checkpoints" / ".1.partial"
    left.mkdir()
    (left / "half").write_text("cut short")
    child = Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0")
    own = made(tmp_path, child, 1000)
    assert sorted(p.name for p in own.rglob("*")) == ["inner", "training.ckpt", "w"] and not left.exists()
    (own / "training.ckpt").write_text("the child's own")
    assert made(tmp_path, child, 1000) == own and (own / "training.ckpt").read_text() == "the child's own", \
        "made once: a later attempt finds what the trial saved"


def test_a_link_is_copied_as_a_link_and_never_followed(tmp_path: Path):
    parent = tmp_path / "s" / "checkpoints" / "0"
    parent.mkdir(parents=True)
    (parent / "secret").symlink_to("/proc/self/environ")
    own = made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0"), 1000)
    assert os.readlink(own / "secret") == "/proc/self/environ"
    linked = tmp_path / "s" / "checkpoints" / "2"
    linked.symlink_to("/proc/self")
    with pytest.raises(RefusedFile, match="replaced by a link"):
        made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/3", "s/checkpoints/2"), 1000)


def test_a_fifo_or_too_many_bytes_is_refused_and_nothing_is_left(tmp_path: Path):
    parent = tmp_path / "s" / "checkpoints" / "0"
    parent.mkdir(parents=True)
    os.mkfifo(parent / "pipe")
    child = Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0")
    with pytest.raises(RefusedFile, match="neither a file, a folder nor a link"):
        made(tmp_path, child, 1000)
    (parent / "pipe").unlink()
    (parent / "w").write_bytes(b"\0" * 1001)
    with pytest.raises(RefusedFile, match="KATUNA_MAX_CHECKPOINT"):
        made(tmp_path, child, 1000)
    assert sorted(p.name for p in (tmp_path / "s" / "checkpoints").iterdir()) == ["0"]
