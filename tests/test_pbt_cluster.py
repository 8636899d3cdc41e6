"""Population-based training where trials run as Kubernetes Jobs: the checkpoints on a shared
claim the operator names (``KATUNA_CHECKPOINT_CLAIM``), each trial's pod mounting its own folder
at ``suggestion_trial_dir``, seeded by katuna's init container from its parent's. The Jobs as
rendered (valid to ``kubernetes-validate``), run end to end by ``katuna serve`` on the strict
stand-in (whose claims are folders of this machine, shared by every pod), and what is refused:
no claim, a workload other than a Job, a claim of the service's own, a parent's folder too large."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from http_helpers import Service, settled_trials
from kube_standin import claims
from kube_stub import KubeStub
from test_render import validate

from functions import checkpoint_seed
from functions.adapters.sqlite_store import SqliteStore
from functions.core import checkpoint_volume, trial_identity
from functions.core.checkpoint_volume import INIT_CONTAINER, VOLUME, CheckpointVolume
from functions.core.cluster import Cluster
from functions.core.errors import InvalidSetting
from functions.core.job import NotRenderable, render_trial
from functions.core.katib import from_experiment, is_experiment
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.settings import Settings

DATA = Path(__file__).parent / "data" / "katib_examples"
TRIALS = Path(__file__).parent / "trials"
CLAIM, IMAGE = "pbt-checkpoints", "ghcr.io/katuna/katuna:0.1.0"
VOLUME_OF = CheckpointVolume(CLAIM, IMAGE, 1 << 20)
KUBE_NAMESPACES = ("pbt",)


def simple_pbt(max_trials: int = 10, parallel: int = 2, extra: tuple[str, ...] = ()) -> dict:
    """Katib's simple-pbt, its trial program this repository's, given ``extra`` arguments."""
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    doc["spec"].update(maxTrialCount=max_trials, parallelTrialCount=parallel)
    doc["spec"].pop("maxFailedTrialCount", None)
    doc["metadata"].pop("namespace", None)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable if arg == "python3" else arg.replace("tests/trials/", f"{TRIALS}/")
                            for arg in container["command"]] + list(extra)
    return doc


def native_pbt() -> dict:
    """A native study of pbt whose trials run in katuna's own Job."""
    return {"name": "native-pbt", "maxTrials": 10, "parallelism": 2,
            "objective": {"metric": "Validation-accuracy", "direction": "maximize"},
            "algorithm": {"name": "pbt", "settings": {"suggestion_trial_dir": "/ckpt", "n_population": 5,
                                                      "truncation_threshold": 0.2}},
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.02}],
            "trialTemplate": {"image": "python:3.12", "command": ["train", "--lr=${trialParameters.lr}",
                                                                  "--checkpoint=/ckpt"]}}


def rendered(definition: dict, number: int = 7, parent: int | None = 3,
             volume: CheckpointVolume | None = VOLUME_OF) -> dict:
    """The Job of trial ``number`` of ``definition``, a child of ``parent`` (None: of the first
    generation), its checkpoints on ``volume``."""
    spec = parse_study(from_experiment(definition) if is_experiment(definition) else definition)
    record = StudyRecord(spec, definition, ".", uid="0123456789ab")
    trial = TrialRecord(spec.name, number, {"lr": 0.01}, generation=1 if parent is not None else 0, parent=parent)
    return render_trial(trial_launch(record, trial), Cluster(namespace="pbt", checkpoints=volume))


def test_katunas_own_job_mounts_the_trials_folder_seeded_by_its_init_container(tmp_path: Path):
    job = rendered(native_pbt())
    validate(tmp_path, job)
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": VOLUME, "persistentVolumeClaim": {"claimName": CLAIM}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": VOLUME, "mountPath": "/ckpt", "subPath": "0123456789ab/7"}]
    assert pod["containers"][0]["command"][-1] == "--checkpoint=/ckpt", "the path stays the one the study names"
    [init] = pod["initContainers"]
    assert init["image"] == IMAGE and init["command"] == ["python", "-I", "-m", "functions.checkpoint_seed"]
    assert init["env"] == [{"name": "TRIAL_FOLDER", "value": "7"}, {"name": "KATUNA_MAX_CHECKPOINT", "value": "1048576"},
                           {"name": "PARENT_FOLDER", "value": "3"}]
    assert init["volumeMounts"] == [{"name": VOLUME, "mountPath": "/checkpoints", "subPath": "0123456789ab"}]
    assert (init["securityContext"]["runAsUser"], init["securityContext"]["runAsNonRoot"]) == (0, False), \
        "as the trial's image's user, root where the trials may be"
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert init["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    first = rendered(native_pbt(), number=0, parent=None)["spec"]["template"]["spec"]["initContainers"][0]
    assert "PARENT_FOLDER" not in {e["name"] for e in first["env"]}


def test_a_trial_spec_job_gets_the_mount_in_its_primary_container_beside_its_own_init_containers(tmp_path: Path):
    doc = simple_pbt()
    pod_spec = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod_spec["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["true"]}]
    pod_spec["containers"].insert(0, {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]})
    job = rendered(doc)
    validate(tmp_path, job)
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [INIT_CONTAINER, "fetch"]
    primary = next(c for c in pod["containers"] if c["name"] == "training-container")
    assert primary["volumeMounts"] == [{"name": VOLUME, "mountPath": "/var/log/katib/checkpoints/",
                                        "subPath": "0123456789ab/7"}]
    assert "volumeMounts" not in pod["containers"][0]


@pytest.mark.parametrize(("change", "words"), [
    (lambda pod: pod.update(volumes=[{"name": VOLUME, "emptyDir": {}}]), "a volume named"),
    (lambda pod: pod["containers"][0].update(volumeMounts=[{"name": "data", "mountPath": "/var/log/katib/checkpoints"}])
     or pod.update(volumes=[{"name": "data", "emptyDir": {}}]), "mounts a volume at"),
])
def test_a_trial_spec_clashing_with_the_checkpoint_mount_is_not_rendered(change, words: str):
    doc = simple_pbt()
    change(doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"])
    with pytest.raises(NotRenderable, match=words):
        rendered(doc)


def test_a_study_mounting_the_checkpoint_claim_itself_is_refused():
    doc = simple_pbt()
    pod_spec = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "all", "persistentVolumeClaim": {"claimName": CLAIM}}]
    spec = parse_study(from_experiment(doc))
    [problem] = trial_identity.study_problems(spec, Cluster(checkpoints=VOLUME_OF))
    assert problem.path.endswith("volumes[0].persistentVolumeClaim.claimName")
    assert "the claim of population-based training's checkpoints (KATUNA_CHECKPOINT_CLAIM)" in problem.message
    assert trial_identity.study_problems(spec, Cluster()) == [], "no claim set: any claim of the study's is its own"


def test_without_a_claim_a_pbt_trial_is_not_rendered():
    with pytest.raises(NotRenderable, match="KATUNA_CHECKPOINT_CLAIM"):
        rendered(native_pbt(), volume=None)


@pytest.mark.parametrize(("env", "words"), [
    ({"KATUNA_CHECKPOINT_CLAIM": "katuna-data", "KATUNA_CHECKPOINT_IMAGE": IMAGE}, "one of the service's own claims"),
    ({"KATUNA_CHECKPOINT_CLAIM": CLAIM}, "KATUNA_CHECKPOINT_IMAGE: required"),
    ({"KATUNA_CHECKPOINT_IMAGE": IMAGE}, "set only with KATUNA_CHECKPOINT_CLAIM"),
    ({"KATUNA_CHECKPOINT_CLAIM": "Not_A_Name", "KATUNA_CHECKPOINT_IMAGE": IMAGE}, "a PersistentVolumeClaim's name"),
])
def test_checkpoint_settings_katuna_cannot_use_stop_it_at_start(env: dict, words: str):
    with pytest.raises(InvalidSetting, match=words):
        Settings.from_env(env)


def test_the_claim_reaches_the_trials_defaults():
    settings = Settings.from_env({"KATUNA_CHECKPOINT_CLAIM": CLAIM, "KATUNA_CHECKPOINT_IMAGE": IMAGE,
                                  "KATUNA_MAX_CHECKPOINT": "2048"})
    assert settings.cluster_defaults().checkpoints == CheckpointVolume(CLAIM, IMAGE, 2048)


def test_the_init_program_copies_once_and_refuses_a_parent_over_the_size(tmp_path: Path):
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "model.bin").write_bytes(b"x" * 100)
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "7", "PARENT_FOLDER": "3", "KATUNA_MAX_CHECKPOINT": "1000"}, tmp_path) == 0
    assert (tmp_path / "7" / "model.bin").read_bytes() == b"x" * 100
    (tmp_path / "7" / "model.bin").write_bytes(b"saved")
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "7", "PARENT_FOLDER": "3", "KATUNA_MAX_CHECKPOINT": "1000"}, tmp_path) == 0
    assert (tmp_path / "7" / "model.bin").read_bytes() == b"saved", "a pod run again resumes from what it saved"
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "8", "PARENT_FOLDER": "3", "KATUNA_MAX_CHECKPOINT": "99"},
                                tmp_path) == checkpoint_seed.REFUSED
    assert not (tmp_path / "8").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".8.partial")]
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "../x"}, tmp_path) == checkpoint_seed.UNUSABLE
    assert checkpoint_seed.seed({"TRIAL_FOLDER": "9"}, tmp_path) == 0 and not any((tmp_path / "9").iterdir())


def test_the_stand_in_refuses_claims_and_mounts_the_api_server_refuses(kube: KubeStub):
    def claim(modes, storage="1Gi"):
        return claims.create(kube, "pbt", {"metadata": {"name": "c"}, "spec": {
            "accessModes": modes, "resources": {"requests": {"storage": storage}}}}, dry_run=True)
    assert claim(["ReadWriteMany"])[0] == 201
    assert claim([])[0] == claim(["ReadWriteAll"])[0] == claim(["ReadWriteOncePod", "ReadWriteOnce"])[0] == 422
    assert "Unsupported value" in claim(["ReadWriteAll"])[1]["message"]
    assert claim(["ReadWriteMany"], "0")[0] == 422
    job = rendered(native_pbt())
    for sub, words in (("../other", "must not contain '..'"), ("/abs", "must be a relative path")):
        bad = copy.deepcopy(job)
        bad["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["subPath"] = sub
        status, body = kube.create_job("pbt", bad, dry_run=True)
        assert status == 422 and words in body["message"], body


def run_on_claim(kube: KubeStub, tmp_path: Path, doc: dict, **env: str) -> tuple[dict, list[dict]]:
    """``doc`` run by ``katuna serve`` with the Kubernetes executor and the claim (made once in
    the module's cluster, ReadWriteMany); the ended study and its trials by number."""
    if ("pbt", CLAIM) not in kube.claims:
        assert claims.create(kube, "pbt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="pbt", KATUNA_CHECKPOINT_CLAIM=CLAIM, KATUNA_CHECKPOINT_IMAGE=IMAGE, **env)
    name = doc["metadata"]["name"]
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(doc), {"Content-Type": "application/yaml"})
        assert status == 201, body
        return service.wait_for(name, timeout=240), settled_trials(service, name, 60)
    finally:
        service.close()


def study_folder(kube: KubeStub, tmp_path: Path, name: str) -> Path:
    """The claim's folder of the study ``name`` that ``katuna serve`` in ``tmp_path`` ran: its uid."""
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        return claims.folder_of(kube, "pbt", CLAIM) / store.get_study(name).uid
    finally:
        store.close()


@pytest.mark.slow
def test_simple_pbt_runs_as_jobs_each_child_resuming_from_its_parents_folder_on_the_claim(kube: KubeStub,
                                                                                         tmp_path: Path):
    study, found = run_on_claim(kube, tmp_path, simple_pbt())
    assert study["status"] == "completed", study
    assert len(found) == 10 and all(t["state"] == "COMPLETE" for t in found), found
    assert [t for t in found if t["generation"] > 0], "a generation after the first"
    folder = study_folder(kube, tmp_path, "simple-pbt")
    for trial in found:
        lineage, number = [], trial["number"]
        while number is not None:
            lineage.insert(0, number)
            number = found[number]["parent"]
        saved = json.loads((folder / str(trial["number"]) / "training.ckpt").read_text())
        assert saved["trials"] == lineage, "each trial resumed from the copy of its parent's checkpoint"
    assert not [p for p in folder.iterdir() if ".partial" in p.name]


@pytest.mark.slow
def test_a_parents_folder_past_the_limit_fails_the_child_by_its_init_container_saying_why(kube: KubeStub,
                                                                                          tmp_path: Path):
    doc = simple_pbt(max_trials=7, extra=("--grow=4096",))
    doc["metadata"]["name"] = "big-pbt"
    doc["spec"]["maxFailedTrialCount"] = 0
    study, found = run_on_claim(kube, tmp_path, doc, KATUNA_MAX_CHECKPOINT="1000")
    assert study["status"] == "failed", study
    [failed] = [t for t in found if t["state"] == "FAIL"]
    assert (failed["generation"], failed["exitCode"]) == (1, checkpoint_seed.REFUSED), failed
    assert f"init container {INIT_CONTAINER} exited with code 3 (Error), so container training-container never " \
           "started: katuna checkpoint: trial" in failed["reason"], failed["reason"]
    assert "holds more bytes than katuna copies for a child trial (KATUNA_MAX_CHECKPOINT)" in failed["reason"]
    assert not (study_folder(kube, tmp_path, "big-pbt") / str(failed["number"])).exists()


def test_the_seed_program_runs_as_a_module_with_its_variables_and_nothing_of_its_working_folder(tmp_path: Path):
    """The init container's working folder is the claim's folder of the study: a ``functions``
    package planted there (or a ``PYTHONPATH`` naming it) is not what it runs."""
    planted = tmp_path / "functions"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "checkpoint_seed.py").write_text("open('planted-ran', 'w').close()\n")
    done = subprocess.run([sys.executable, *checkpoint_volume.COMMAND[1:]], cwd=tmp_path, capture_output=True,
                          text=True, env={"TRIAL_FOLDER": "0", "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "planted-ran").exists()
    assert (tmp_path / "0").is_dir() and (tmp_path / "0").stat().st_mode & 0o777 == 0o777
