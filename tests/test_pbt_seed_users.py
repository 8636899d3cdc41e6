"""Population-based training on a cluster: the init container seeding a child's checkpoint folder
reads its parent's as the user the trials write it as (``runAsUser`` and ``runAsGroup`` of the
trial's primary container, else of its pod; an image's user that katuna cannot know: root, or
katuna's image's user where the trials are non-root), so a file a trial saved readable by its own
user only (``tempfile.mkstemp``'s 0600) is copied; and two seeds of one trial at once never take
each other's copy. The pod specs as rendered (valid to ``kubernetes-validate`` and Pod Security
Admission's checks of the stand-in), the seed program run as a kubelet runs the init container
(as root: its user, groups and no capability, with ``setpriv``), and the copy in-process."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_standin import admission
from kube_standin.image_users import non_root_refusal
from kube_stub import KubeStub
from test_pbt_cluster import VOLUME_OF, native_pbt, simple_pbt
from test_render import validate

from functions import checkpoint_seed
from functions.adapters.local_checkpoints import made
from functions.core import checkpoints, start_failures
from functions.core.checkpoint_volume import INIT_CONTAINER
from functions.core.checkpoints import Checkpoint
from functions.core.cluster import Cluster
from functions.core.errors import RefusedFile
from functions.core.job import render_trial
from functions.core.katib import from_experiment, is_experiment
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study

KUBE_NAMESPACES = ("pbt",)
IMAGE_USER = "10001:10001"
"""katuna's image's ``USER``, which its init container runs as where its context names none."""


def child_pod(definition: dict, level: str = "baseline") -> dict:
    """The pod spec of trial 7 of ``definition``, a child of trial 3, its trials at ``level``."""
    spec = parse_study(from_experiment(definition) if is_experiment(definition) else definition)
    record = StudyRecord(spec, definition, ".", uid="0123456789ab")
    trial = TrialRecord(spec.name, 7, {"lr": 0.01}, generation=1, parent=3)
    cluster = Cluster(namespace="pbt", checkpoints=VOLUME_OF, pod_security=level)
    return render_trial(trial_launch(record, trial), cluster)["spec"]["template"]["spec"]


def with_context(pod: dict | None = None, container: dict | None = None) -> dict:
    """Katib's simple-pbt, its trial pod's and primary container's ``securityContext`` these."""
    doc = simple_pbt()
    spec = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    if pod is not None:
        spec["securityContext"] = pod
    if container is not None:
        spec["containers"][0]["securityContext"] = container
    return doc


def native_as(user: int) -> dict:
    definition = native_pbt()
    definition["kubernetes"] = {"runAsUser": user}
    return definition


def init_of(pod: dict) -> dict:
    [init] = [c for c in pod["initContainers"] if c["name"] == INIT_CONTAINER]
    return init


def effective(pod: dict, container: dict, field: str):
    """The ``securityContext`` field as the kubelet takes it: the container's over the pod's."""
    own = container.get("securityContext") or {}
    return own[field] if own.get(field) is not None else (pod.get("securityContext") or {}).get(field)


@pytest.mark.parametrize(("definition", "level", "user", "group"), [
    (with_context({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000}, {"runAsUser": 1001}), "baseline",
     1001, 3000),
    (native_as(1234), "baseline", 1234, None),
    (native_as(1234), "restricted", 1234, None),
    (native_pbt(), "baseline", 0, None),
    (native_pbt(), "restricted", 10001, 10001),
    (with_context({"runAsNonRoot": True}), "baseline", 10001, 10001),
    (with_context({"runAsNonRoot": True}, {"runAsNonRoot": False, "runAsUser": 0}), "baseline", 0, None),
], ids=["trial-spec-user", "study-user", "study-user-restricted", "image-user", "image-user-restricted",
        "image-user-non-root", "root-over-non-root-pod"])
def test_the_seed_runs_as_the_trials_user_or_for_an_images_user_as_the_trials_level_allows(
        tmp_path: Path, kube: KubeStub, definition: dict, level: str, user: int, group: int | None):
    pod = child_pod(definition, level)
    init = init_of(pod)
    context = init["securityContext"]
    assert (effective(pod, init, "runAsUser"), effective(pod, init, "runAsGroup")) == (user, group)
    assert context["runAsNonRoot"] is (user != 0)
    assert non_root_refusal({"metadata": {"name": "p", "namespace": "pbt", "uid": "u"}, "spec": pod}, init,
                            IMAGE_USER) is None, "the kubelet starts it"
    assert (context["capabilities"], context["allowPrivilegeEscalation"], context["readOnlyRootFilesystem"]) == \
        ({"drop": ["ALL"]}, False, True)
    assert admission.pod_security(level, {}, pod) == [], f"the trials' pod meets {level}, its init container too"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t"},
           "spec": {"template": {"spec": pod}}}
    validate(tmp_path, job)
    assert kube.create_job("pbt", job, dry_run=True)[0] == 201


@pytest.fixture
def claim() -> Iterator[Path]:
    """A study's folder on a claim any user may reach (a kubelet's subPath of a claim writable by
    all, as the docs ask), in a folder others may pass through."""
    top = Path(tempfile.mkdtemp(prefix="katuna-claim-"))
    top.chmod(0o755)
    study = top / "0123456789ab"
    study.mkdir()
    study.chmod(0o777)
    yield study
    shutil.rmtree(top)


def saved_by(study: Path, uid: int, gid: int, mode: int) -> None:
    """Trial 3's folder as a seed made it (writable by all) holding what the trial saved as
    ``uid``:``gid``: a file of ``mode`` and a folder of its own, as ``tempfile.mkstemp`` and
    ``mkdtemp`` make them (0600, 0700) or group-readable ones."""
    parent = study / "3"
    (parent / "step-10").mkdir(parents=True)
    parent.chmod(0o777)
    (parent / "step-10" / "model.pt").write_bytes(b"weights")
    (parent / "optimizer.pt").write_bytes(b"state")
    for path, bits in ((parent / "step-10", mode | 0o100 | (mode & 0o040) >> 2), (parent / "step-10" / "model.pt", mode),
                       (parent / "optimizer.pt", mode)):
        os.chown(path, uid, gid)
        path.chmod(bits)


def run_as_kubelet(pod: dict, init: dict, study: Path) -> subprocess.CompletedProcess:
    """The init container's command run as the kubelet runs it: its user (else katuna's image's),
    its group (else the image's for that user: katuna's own, root's, or 0), the pod's
    ``fsGroup`` and ``supplementalGroups`` beside it, no capability; its working folder the
    study's and its variables its own."""
    uid = effective(pod, init, "runAsUser")
    uid = 10001 if uid is None else uid
    gid = effective(pod, init, "runAsGroup")
    gid = (10001 if uid == 10001 else 0) if gid is None else gid
    pod_context = pod.get("securityContext") or {}
    groups = [gid, *([pod_context["fsGroup"]] if "fsGroup" in pod_context else []),
              *pod_context.get("supplementalGroups", [])]
    switch = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(map(str, groups))}",
              "--inh-caps=-all", "--bounding-set=-all", "--"]
    env = {e["name"]: e["value"] for e in init["env"]} | {"PATH": os.environ.get("PATH", "/usr/bin")}
    return subprocess.run([*switch, sys.executable, *init["command"][1:]], cwd=study, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a program as another user, without capabilities, needs root")
@pytest.mark.parametrize(("definition", "level", "writer", "mode"), [
    (with_context({"runAsUser": 1000, "runAsGroup": 3000}), "baseline", (1000, 3000), 0o600),
    (with_context({"runAsGroup": 3000}, {"runAsUser": 1001}), "restricted", (1001, 3000), 0o600),
    (native_pbt(), "baseline", (0, 0), 0o600),
    (with_context({"fsGroup": 2000}), "restricted", (1500, 2000), 0o640),
], ids=["trial-spec-user", "container-user-restricted", "root-image", "unknown-user-group-readable"])
def test_a_child_is_given_what_its_parent_saved_readable_by_its_own_user_only(
        claim: Path, definition: dict, level: str, writer: tuple[int, int], mode: int):
    """The parent trial saved its files as its user (a root image's, the user the trial spec
    names, or an image's non-root user katuna does not know that writes group-readable files
    with the pod's ``fsGroup``); the child's seed, run as its rendered init container says,
    copies them all."""
    saved_by(claim, *writer, mode)
    pod = child_pod(definition, level)
    done = run_as_kubelet(pod, init_of(pod), claim)
    assert done.returncode == 0, done.stderr
    assert (claim / "7" / "step-10" / "model.pt").read_bytes() == b"weights"
    assert (claim / "7" / "optimizer.pt").read_bytes() == b"state"
    assert not [p.name for p in claim.iterdir() if p.name.startswith(".7.partial")]


def test_two_seeds_of_one_trial_at_once_never_take_each_others_copy(tmp_path: Path):
    """Two pods of one trial's Job seed its folder at once: the second, started as the first is
    half way, makes the folder; the first, its copy then cleared, finds the folder made and
    leaves it as it is; no copy is left beside it, nor one cut short by a pod that died."""
    parent = tmp_path / "3"
    parent.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (parent / name).write_bytes(name.encode() * 1000)
    (tmp_path / ".7.partial.cutshort").mkdir()
    (tmp_path / ".7.partial.cutshort" / "a.bin").write_bytes(b"half")
    env = {"TRIAL_FOLDER": "7", "PARENT_FOLDER": "3", "KATUNA_MAX_CHECKPOINT": "100000"}
    steps: list[int] = []

    def second_pod_starts() -> bool:
        steps.append(0)
        if len(steps) == 2:
            assert checkpoint_seed.seed(env, tmp_path) == 0
            assert sorted(p.name for p in (tmp_path / "7").iterdir()) == ["a.bin", "b.bin", "c.bin"]
            (tmp_path / "7" / "a.bin").write_bytes(b"saved by the trial")
        return False

    assert made(tmp_path, Checkpoint("", "7", "3"), 100000, second_pod_starts, copier="first") == tmp_path / "7"
    assert len(steps) > 2, "the first copy went on after the second made the folder"
    assert (tmp_path / "7" / "a.bin").read_bytes() == b"saved by the trial", "the made folder is kept"
    assert sorted(p.name for p in (tmp_path / "7").iterdir()) == ["a.bin", "b.bin", "c.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "7"]


def test_a_copy_of_an_empty_parent_folder_is_made_in_place_and_replaces_no_folder(tmp_path: Path):
    """A parent that saved nothing: the child's folder is made empty, by ``mkdir``; a seed of the
    same trial finding it made (a trial started in it) leaves it."""
    (tmp_path / "3").mkdir()
    env = {"TRIAL_FOLDER": "7", "PARENT_FOLDER": "3"}
    assert checkpoint_seed.seed(env, tmp_path) == 0
    (tmp_path / "7" / "step").write_text("1")
    assert checkpoint_seed.seed(env, tmp_path) == 0
    assert (tmp_path / "7" / "step").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "7"]


def saved_with_modes(study: Path, owner: tuple[int, int]) -> dict[str, int]:
    """Trial 3's folder holding files and folders of several modes, owned by ``owner``: each
    one's path to its mode."""
    modes = {"": 0o750, "step-10": 0o700, "step-10/model.pt": 0o600, "optimizer.pt": 0o640, "run.sh": 0o755,
             "public.txt": 0o644}
    (study / "3" / "step-10").mkdir(parents=True)
    for name in ("step-10/model.pt", "optimizer.pt", "run.sh", "public.txt"):
        (study / "3" / name).write_bytes(name.encode())
    for name, mode in modes.items():
        os.chown(study / "3" / name, *owner)
        (study / "3" / name).chmod(mode | (0o4000 if name == "run.sh" else 0))
    return modes


def modes_in(folder: Path, names: dict[str, int]) -> dict[str, int]:
    return {name: stat.S_IMODE((folder / name).lstat().st_mode) for name in names}


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_a_childs_copy_keeps_each_files_mode_and_as_root_its_owner_whatever_the_umask(claim: Path):
    """A seed runs with umask 0 (run as root here, for a trial whose image's user katuna cannot
    know): the child's copy of a file its parent's trial saved 0600 is 0600 still, not
    world-readable, each folder keeps its mode, a set-user-ID bit is dropped, and each entry
    is its owner's, so the child's user (the parent's) may write them."""
    modes = saved_with_modes(claim, (1000, 3000))
    before = os.umask(0)
    try:
        made(claim, Checkpoint("", "7", "3"), 100000)
    finally:
        os.umask(before)
    assert modes_in(claim / "7", modes) == modes
    owners = {name: ((claim / "7" / name).stat().st_uid, (claim / "7" / name).stat().st_gid) for name in modes}
    assert set(owners.values()) == {(1000, 3000)}, owners


@pytest.mark.skipif(os.geteuid() != 0, reason="running a program as another user needs root")
def test_a_copy_the_seed_cannot_give_to_its_owner_lets_every_user_do_what_the_owner_could(claim: Path):
    """The seed run as katuna's image's user (trials non-root, their user unknown): the copy is
    its own, so each class of users gets the owner's bits (the child's user is one of them);
    what the owner could not do, no one can."""
    modes = saved_with_modes(claim, (10001, 10001))
    os.chown(claim / "3" / "public.txt", 1500, 2000)
    switch = ["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    env = {"TRIAL_FOLDER": "7", "PARENT_FOLDER": "3", "PYTHONPATH": str(Path(__file__).parents[1]),
           "PATH": os.environ.get("PATH", "/usr/bin")}
    done = subprocess.run([*switch, "--", sys.executable, "-m", "functions.checkpoint_seed"], cwd=claim, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert modes_in(claim / "7", modes) == modes | {"": 0o750, "public.txt": 0o666}
    assert (claim / "7" / "public.txt").stat().st_uid == 10001


def test_a_refused_parent_folder_says_so_in_the_childs_reason_locally_and_from_the_seed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A FIFO in the parent's folder: the refusal, as a local trial's reason and as the seed's
    termination message in a cluster trial's reason, says the child was not given its parent's
    checkpoint, naming the file and why; population-based training reads it as a failure not
    to run again."""
    (tmp_path / "3").mkdir()
    os.mkfifo(tmp_path / "3" / "pipe")
    with pytest.raises(RefusedFile) as refused:
        made(tmp_path, Checkpoint("", "7", "3"), 100000)
    local = start_failures.refusal(str(refused.value))
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "8", "PARENT_FOLDER": "3"}, tmp_path) == checkpoint_seed.REFUSED
    said = capsys.readouterr().err.strip()
    cluster = (f"exited with code 3 (init container {INIT_CONTAINER} exited with code 3 (Error), so container "
               f"training-container never started: {said})")
    for reason, trial in ((local, "7"), (cluster, "8")):
        assert f"trial {trial} was not given its parent's checkpoint: " in reason, reason
        assert "holds pipe, neither a file, a folder nor a link" in reason, reason
        assert checkpoints.refused(reason)
    assert not checkpoints.refused("exited with code 3; last lines:\nout of memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"], "nothing of a refused copy is left"
