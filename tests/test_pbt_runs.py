"""Population-based training run by ``katuna run`` as real subprocesses: Katib's ``simple-pbt``
Experiment, its trial program resuming from the checkpoint folder its command names, each
child's folder a copy of its parent's; a failed child runs again as it was; a checkpoint past
``KATUNA_MAX_CHECKPOINT`` fails the child that would copy it. And the copy itself: made once,
whole or not at all, following no link of the parent's folder."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from http_helpers import Service, run_katuna, settled_trials

from functions.adapters.local_checkpoints import made
from functions.core.checkpoints import MAX_DEPTH, Checkpoint
from functions.core.errors import RefusedFile

DATA = Path(__file__).parent / "data" / "katib_examples"
TRIALS = Path(__file__).parent / "trials"


def experiment(*extra: str, max_trials: int = 12, failed: int = 3, parallel: int = 2) -> dict:
    """Katib's simple-pbt, its trial program given ``extra`` arguments."""
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    doc["spec"].update(maxTrialCount=max_trials, maxFailedTrialCount=failed, parallelTrialCount=parallel)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [arg.replace("tests/trials/", f"{TRIALS}/") for arg in container["command"]] + list(extra)
    return doc


def run(tmp_path: Path, *extra: str, max_trials: int = 12, env: dict[str, str] | None = None,
        failed: int = 3, parallel: int = 2) -> subprocess.CompletedProcess[str]:
    """Katib's simple-pbt, its trial program given ``extra`` arguments, run by ``katuna run``."""
    doc = experiment(*extra, max_trials=max_trials, failed=failed, parallel=parallel)
    (tmp_path / "simple-pbt.yaml").write_text(yaml.safe_dump(doc))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")} | (env or {})
    return run_katuna("run", "simple-pbt.yaml", cwd=tmp_path, env=environ, timeout=300)


def trials(tmp_path: Path) -> list[dict]:
    shown = run_katuna("trials", "simple-pbt", "--json", cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def checkpoint(tmp_path: Path, number: int) -> dict:
    [folder] = (tmp_path / "katuna-logs" / "simple-pbt").iterdir()
    return json.loads((folder / "checkpoints" / str(number) / "training.ckpt").read_text())


def assert_lineage(tmp_path: Path, found: list[dict]) -> None:
    """Each trial of the ended study ``found`` resumed from a copy of its parent's checkpoint,
    a first population of n_population before."""
    assert len(found) == 12 and all(t["state"] == "COMPLETE" for t in found), found
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


@pytest.mark.slow
def test_simple_pbt_runs_generations_each_child_resuming_from_its_parents_checkpoint(tmp_path: Path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = trials(tmp_path)
    assert_lineage(tmp_path, found)
    again = run(tmp_path)
    assert again.returncode == 0 and "Nothing to run" in again.stdout
    assert trials(tmp_path) == found


@pytest.mark.slow
def test_katuna_serve_runs_simple_pbt_with_local_trials(tmp_path: Path):
    """The service, two workers asking for trials as their events come, runs the Experiment
    posted to it as ``katuna run`` does: every trial's lineage in the API, each resuming from
    its parent's checkpoint."""
    service = Service(tmp_path, workers=2)
    try:
        service.submit(experiment())
        study = service.wait_for("simple-pbt", timeout=120)
        found = settled_trials(service, "simple-pbt", 60)
    finally:
        service.close()
    assert (study["status"], study["reason"]) == ("completed", "max trials reached (12)"), study
    assert_lineage(tmp_path, found)


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
    assert failed["reason"].startswith(f"katuna refused to start the attempt: trial {failed['number']} was not "
                                       f"given its parent's checkpoint: the parent's checkpoint folder "
                                       f"{failed['parent']} holds more bytes"), failed["reason"]
    assert "(KATUNA_MAX_CHECKPOINT), over it at weights.bin" in failed["reason"]


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
    with pytest.raises(RefusedFile, match=r"KATUNA_MAX_CHECKPOINT\), over it at w$"):
        made(tmp_path, child, 1000)
    assert sorted(p.name for p in (tmp_path / "s" / "checkpoints").iterdir()) == ["0"]


def nested(folder: Path, depth: int) -> None:
    """``depth`` folders, one in the next, in ``folder``, and a file in the innermost."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(depth):
        folder = folder / "d"
        folder.mkdir()
    (folder / "w").write_text("deep")


def test_a_folder_nested_past_the_depth_limit_is_refused_not_a_crash(tmp_path: Path):
    """A trial may nest folders as deep as it likes; copying them is bounded (a thousand levels
    raised RecursionError out of the handling, and the study failed for it)."""
    parent = tmp_path / "s" / "checkpoints" / "0"
    nested(parent, MAX_DEPTH)
    own = made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0"), 1000)
    assert (own / Path(*["d"] * MAX_DEPTH) / "w").read_text() == "deep"
    nested(parent / "more", MAX_DEPTH)
    with pytest.raises(RefusedFile, match=f"folders nested more than {MAX_DEPTH} deep"):
        made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/2", "s/checkpoints/0"), 1000)
    assert sorted(p.name for p in (tmp_path / "s" / "checkpoints").iterdir()) == ["0", "1"]


def test_a_link_planted_on_the_way_to_the_checkpoints_is_refused_and_nothing_read_through_it(tmp_path: Path):
    """A trial can replace its study's checkpoints folder with a link (to ``/proc``, whose
    ``<pid>`` folders hold a process's ``environ``): katuna neither reads a parent's folder nor
    writes a child's through it."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "0").mkdir(parents=True)
    (elsewhere / "0" / "environ").write_text("KATUNA_API_TOKEN=secret")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "checkpoints").symlink_to(elsewhere)
    with pytest.raises(RefusedFile, match="checkpoints on the way is not a folder"):
        made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0"), 1000)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["0"], "nothing copied there"


def test_a_link_planted_at_a_childs_folder_fails_that_child_only(tmp_path: Path):
    parent = tmp_path / "s" / "checkpoints" / "0"
    parent.mkdir(parents=True)
    (parent / "training.ckpt").write_text("saved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "s" / "checkpoints" / "1").symlink_to(elsewhere)
    with pytest.raises(RefusedFile, match="is not a folder"):
        made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0"), 1000)
    assert list(elsewhere.iterdir()) == [] and sorted(os.listdir(parent.parent)) == ["0", "1"]


def test_a_parent_file_that_cannot_be_read_fails_the_child_not_the_study(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """An error reading the parent's folder (a disk's I/O error; a file made unreadable, or
    removed, by a process the parent left) is the child's refusal, so the study goes on."""
    parent = tmp_path / "s" / "checkpoints" / "0"
    parent.mkdir(parents=True)
    (parent / "training.ckpt").write_text("saved")

    def broken(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "read", broken)
    with pytest.raises(RefusedFile, match="training.ckpt, which cannot be read: Input/output error"):
        made(tmp_path, Checkpoint("/ckpt", "s/checkpoints/1", "s/checkpoints/0"), 1000)
    assert sorted(os.listdir(parent.parent)) == ["0"]
