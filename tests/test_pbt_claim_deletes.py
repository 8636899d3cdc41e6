"""A deleted study of population-based training whose trials ran as Jobs takes its checkpoints on
the claim (``KATUNA_CHECKPOINT_CLAIM``) with it: ``DELETE /studies/{name}`` and ``katuna
delete`` ask, before the study's record goes, for the Job ``katuna-checkpoints-<uid>``, which
runs katuna's fixed program (no shell) as the trials' user, deleting the claim's folder of the
study and following no link. The Job as rendered (valid to ``kubernetes-validate`` and the strict
stand-in, restricted where the trials are), the program in-process and as a module, and the
deletion end to end: ``katuna serve`` and the CLI on the stand-in, whose claims are folders."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from http_helpers import Service, run_katuna
from kube_standin import admission, claims, katib_api
from kube_stub import KubeStub
from test_pbt_cluster import CLAIM, IMAGE, VOLUME_OF, native_pbt, rendered, run_on_claim, simple_pbt, study_folder
from test_render import validate
from waiting import eventually

from functions import checkpoint_drop as program
from functions.adapters.kubernetes_checkpoints import CheckpointDrops
from functions.adapters.kubernetes_client import api_client
from functions.adapters.sqlite_store import SqliteStore
from functions.core import checkpoint_drop
from functions.core.checkpoint_drop import drop_job, job_name
from functions.core.checkpoint_volume import trial_user
from functions.core.cluster import Cluster
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.store_port import stored_study
from functions.core.validate import parse_study

KUBE_NAMESPACES = ("pbt",)
UID = "0123456789ab"


def user_of(definition: dict, level: str = "baseline") -> dict:
    """The drop Job's container securityContext and pod's for a study of ``definition``."""
    job = rendered(definition)
    user = trial_user(job["spec"]["template"]["spec"], "training-container" if "spec" in definition else "trial")
    pod = drop_job(VOLUME_OF, UID, user, level, 600)["spec"]["template"]["spec"]
    return {**pod["securityContext"], **pod["containers"][0]["securityContext"]}


def test_the_job_runs_the_fixed_program_on_the_whole_claim_bounded_and_valid(tmp_path: Path, kube: KubeStub):
    job = drop_job(VOLUME_OF, UID, {}, "baseline", 600)
    validate(tmp_path, job)
    assert kube.create_job("pbt", job, dry_run=True)[0] == 201
    assert job["metadata"]["name"] == f"katuna-checkpoints-{UID}"
    assert (job["spec"]["ttlSecondsAfterFinished"], job["spec"]["activeDeadlineSeconds"]) == (600, 3600)
    assert job["spec"]["backoffLimit"] == 6
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["python", "-I", "-m", "functions.checkpoint_drop"]
    assert container["env"] == [{"name": "STUDY_FOLDER", "value": UID}]
    assert container["volumeMounts"] == [{"name": "katuna-checkpoints", "mountPath": "/checkpoints"}]
    assert container["workingDir"] == "/checkpoints" and container["image"] == IMAGE
    assert pod["volumes"] == [{"name": "katuna-checkpoints", "persistentVolumeClaim": {"claimName": CLAIM}}]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert pod["automountServiceAccountToken"] is False
    assert "katuna.dev/trial" not in job["metadata"]["labels"], "no sweep of trial Jobs takes it for a trial's"
    with pytest.raises(ValueError, match="not a study uid"):
        drop_job(VOLUME_OF, "../x", {}, "baseline", 600)


def test_it_runs_as_the_user_the_trials_run_as():
    doc = simple_pbt()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]}
    pod["containers"][0]["securityContext"] = {"runAsUser": 1001}
    found = user_of(doc)
    assert (found["runAsUser"], found["runAsGroup"], found["fsGroup"], found["supplementalGroups"]) == \
        (1001, 3000, 2000, [4000]), "the primary container's user over its pod's, the pod's groups"
    assert found["runAsNonRoot"] and found["capabilities"] == {"drop": ["ALL"]}
    assert found["allowPrivilegeEscalation"] is False and found["readOnlyRootFilesystem"] is True
    native = native_pbt()
    native["kubernetes"] = {"runAsUser": 1234}
    assert user_of(native)["runAsUser"] == 1234, "katuna's own Job: the study's kubernetes.runAsUser"


def test_trials_of_their_images_user_have_it_run_as_root_without_capabilities_or_as_katunas_where_restricted():
    root = user_of(native_pbt())
    assert root["runAsUser"] == 0 and root["runAsNonRoot"] is False and root["capabilities"] == {"drop": ["ALL"]}
    restricted = drop_job(VOLUME_OF, UID, {}, "restricted", 600)["spec"]["template"]
    context = restricted["spec"]["containers"][0]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (10001, 10001, True)
    assert admission.pod_security("restricted", restricted["metadata"], restricted["spec"]) == []
    assert admission.pod_security("baseline", restricted["metadata"], drop_job(
        VOLUME_OF, UID, {}, "baseline", 600)["spec"]["template"]["spec"]) == []


def test_the_stand_in_refuses_group_ids_the_api_server_refuses(kube: KubeStub):
    for context, field in (({"fsGroup": -1}, "fsGroup"), ({"supplementalGroups": [5, 2**31]}, "supplementalGroups[1]")):
        job = drop_job(VOLUME_OF, UID, {}, "baseline", 600)
        job["spec"]["template"]["spec"]["securityContext"].update(context)
        status, body = kube.create_job("pbt", job, dry_run=True)
        assert status == 422 and f"spec.template.spec.securityContext.{field}: Invalid value" in body["message"], body


def planted(claim: Path) -> tuple[Path, Path]:
    """The study's folder in ``claim``, two trials' folders in it holding checkpoints and links a
    trial planted to a folder and a file outside; that outside folder."""
    outside = claim.parent / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "weights").write_text("not the study's")
    study = claim / UID
    for trial in ("0", "1", ".2.partial"):
        (study / trial / "step").mkdir(parents=True)
        (study / trial / "step" / "model.ckpt").write_bytes(b"weights")
    os.symlink(outside / "keep", study / "1" / "escape")
    os.symlink(outside / "keep" / "weights", study / "1" / "step" / "file")
    return study, outside


def test_the_program_deletes_the_studys_folder_following_no_link_and_again_finds_it_done(tmp_path: Path):
    claim = tmp_path / "claim"
    (claim / "other-study" / "0").mkdir(parents=True)
    study, outside = planted(claim)
    assert program.drop({"STUDY_FOLDER": UID}, claim) == 0
    assert not study.exists() and (claim / "other-study" / "0").is_dir()
    assert (outside / "keep" / "weights").read_text() == "not the study's"
    assert program.drop({"STUDY_FOLDER": UID}, claim) == 0, "deleted already: nothing to do"
    for bad in ("", "..", "a/b", "/etc", "UPPER", "x" * 40):
        assert program.drop({"STUDY_FOLDER": bad}, claim) == program.UNUSABLE


def test_a_link_where_the_studys_folder_is_goes_its_target_kept(tmp_path: Path):
    claim = tmp_path / "claim"
    claim.mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "data").write_text("kept")
    os.symlink(tmp_path / "target", claim / UID)
    assert program.drop({"STUDY_FOLDER": UID}, claim) == 0
    assert not os.path.lexists(claim / UID) and (tmp_path / "target" / "data").read_text() == "kept"


@pytest.mark.skipif(os.geteuid() == 0, reason="root deletes whatever the permissions")
def test_what_it_may_not_delete_fails_its_pod_saying_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    claim = tmp_path / "claim"
    locked = claim / UID / "3" / "locked"
    locked.mkdir(parents=True)
    (locked / "model.ckpt").write_text("w")
    locked.chmod(0o555)
    try:
        assert program.drop({"STUDY_FOLDER": UID}, claim) == program.LEFT
    finally:
        locked.chmod(0o755)
    assert f"the checkpoints of study {UID} could not all be deleted from the claim, as user" in capsys.readouterr().err


def test_the_program_runs_as_a_module_with_nothing_of_its_working_folder(tmp_path: Path):
    planted_module = tmp_path / "functions"
    planted_module.mkdir()
    (planted_module / "__init__.py").write_text("")
    (planted_module / "checkpoint_drop.py").write_text("open('planted-ran', 'w').close()\n")
    (tmp_path / UID / "0").mkdir(parents=True)
    done = subprocess.run([sys.executable, *checkpoint_drop.COMMAND[1:]], cwd=tmp_path, capture_output=True,
                          text=True, env={"STUDY_FOLDER": UID, "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "planted-ran").exists() and not (tmp_path / UID).exists()


def test_asking_twice_is_one_job_and_a_study_of_no_checkpoints_asks_none(kube: KubeStub):
    drops = CheckpointDrops(Cluster(namespace="pbt", checkpoints=VOLUME_OF), api_client(kube.url, 30))
    definition = native_pbt()
    record = StudyRecord(parse_study(definition), definition, ".", uid="feedbeef0001")
    launch = trial_launch(record, TrialRecord(record.name, 0, {"lr": 0.01}, generation=0))
    assert drops.ask(launch) and drops.ask(launch)
    assert [name for where, name in kube.jobs if name == job_name("feedbeef0001")] == [job_name("feedbeef0001")]
    other = copy.deepcopy(definition)
    other["algorithm"] = {"name": "random"}
    plain = StudyRecord(parse_study(other), other, ".", uid="feedbeef0002")
    assert not drops.ask(trial_launch(plain, TrialRecord(plain.name, 0, {"lr": 0.01})))
    assert (("pbt", job_name("feedbeef0002")) not in kube.jobs)


def wait_gone(folder: Path) -> None:
    """Until the stand-in's Job deleted ``folder``."""
    deadline = time.monotonic() + 120
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists(), sorted(p.name for p in folder.iterdir())


def uid_of(tmp_path: Path, name: str) -> str | None:
    """The uid of the study ``name`` stored in ``tmp_path``, None while there is none."""
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        found = stored_study(store, name)
        return None if found is None else found.uid
    finally:
        store.close()


@pytest.mark.slow
def test_the_apis_delete_has_a_job_delete_the_studys_folder_on_the_claim(kube: KubeStub, tmp_path: Path):
    doc = simple_pbt(max_trials=2)
    doc["metadata"]["name"] = "api-pbt"
    study, _ = run_on_claim(kube, tmp_path, doc)
    folder = study_folder(kube, tmp_path, "api-pbt")
    assert study["status"] == "completed" and (folder / "0").is_dir()
    uid = folder.name
    os.symlink(tmp_path, folder / "0" / "escape")
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="pbt", KATUNA_CHECKPOINT_CLAIM=CLAIM, KATUNA_CHECKPOINT_IMAGE=IMAGE)
    try:
        assert service.request("DELETE", "/studies/api-pbt")[0] == 204
        assert service.request("DELETE", "/studies/api-pbt")[0] == 404
    finally:
        service.close()
    wait_gone(folder)
    assert (tmp_path / "katuna.db").exists(), "the link a trial planted was not followed"
    job = kube.jobs[("pbt", job_name(uid))]
    assert job["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "STUDY_FOLDER", "value": uid}]


@pytest.mark.slow
def test_katuna_delete_asks_for_the_job_and_a_deletion_cut_short_is_finished_by_the_next(kube: KubeStub,
                                                                                        tmp_path: Path):
    doc = simple_pbt(max_trials=2)
    doc["metadata"]["name"] = "cli-pbt"
    run_on_claim(kube, tmp_path, doc)
    folder = study_folder(kube, tmp_path, "cli-pbt")
    uid = folder.name
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        record, first = store.get_study("cli-pbt"), store.get_trial("cli-pbt", 0)
    finally:
        store.close()
    assert first is not None
    drops = CheckpointDrops(Cluster(namespace="pbt", checkpoints=VOLUME_OF), api_client(kube.url, 30))
    assert drops.ask(trial_launch(record, first)), "a deletion that asked, then stopped before the record went"
    env = {**os.environ, "KATUNA_EXECUTOR": "kubernetes", "KATUNA_K8S_API": kube.url, "KATUNA_K8S_NAMESPACE": "pbt",
           "KATUNA_CHECKPOINT_CLAIM": CLAIM, "KATUNA_CHECKPOINT_IMAGE": IMAGE}
    done = run_katuna("delete", "cli-pbt", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"Job katuna-checkpoints-{uid} deletes its checkpoints from the claim" in done.stdout
    wait_gone(folder)
    assert claims.folder_of(kube, "pbt", CLAIM).is_dir()
    assert yaml.safe_load(yaml.safe_dump(kube.jobs[("pbt", job_name(uid))]))["spec"]["backoffLimit"] == 6


@pytest.mark.slow
def test_deleting_the_experiment_deletes_its_checkpoints_from_the_claim_and_keeps_its_study(kube: KubeStub,
                                                                                              tmp_path: Path):
    """Katib's pbt keeps its checkpoints on its suggestion's volume, which the garbage collector
    deletes with the Experiment: ``kubectl delete experiment`` of an ended pbt Experiment has the
    Job delete its folder on the claim, once (the stopped study stays in katuna's store, with its
    results, and a deletion of it later asks for the same Job)."""
    katib_api.install(kube)
    if ("pbt", CLAIM) not in kube.claims:
        assert claims.create(kube, "pbt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    doc = simple_pbt(max_trials=2)
    doc["metadata"] = {"name": "res-pbt", "namespace": "pbt"}
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna", KATUNA_CHECKPOINT_CLAIM=CLAIM, KATUNA_CHECKPOINT_IMAGE=IMAGE,
                      KATUNA_KATIB_API="true")
    try:
        kube.apply(doc)
        assert service.wait_for("res-pbt", timeout=240)["status"] == "completed"
        folder = study_folder(kube, tmp_path, "res-pbt")
        assert (folder / "0").is_dir()
        kube.delete("Experiment", "pbt", "res-pbt", api_version="kubeflow.org/v1beta1")
        wait_gone(folder)
        assert kube.jobs[("pbt", job_name(folder.name))]["spec"]["template"]["spec"]["containers"][0]["env"] == [
            {"name": "STUDY_FOLDER", "value": folder.name}]
        eventually(lambda: origin_of(tmp_path, "res-pbt").get("checkpointsDropped"), "the drop recorded", timeout=30)
        assert service.json("GET", "/studies/res-pbt")[1]["status"] == "completed", "the study stays, as it ended"
    finally:
        service.close()


@pytest.mark.slow
def test_an_experiment_made_again_unseen_has_its_old_studys_checkpoints_deleted(kube: KubeStub, tmp_path: Path):
    """The Experiment deleted and applied again under its name while katuna was down is a new
    study, and the old one is forgotten: its folder on the claim, which nothing would name
    then, is deleted first."""
    katib_api.install(kube)
    if ("pbt", CLAIM) not in kube.claims:
        assert claims.create(kube, "pbt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    doc = simple_pbt(max_trials=2)
    doc["metadata"] = {"name": "again-pbt", "namespace": "pbt"}
    env = {"KATUNA_EXECUTOR": "kubernetes", "KATUNA_K8S_API": kube.url, "KATUNA_K8S_NAMESPACE": "katuna",
           "KATUNA_CHECKPOINT_CLAIM": CLAIM, "KATUNA_CHECKPOINT_IMAGE": IMAGE, "KATUNA_KATIB_API": "true"}
    service = Service(tmp_path, workers=1, **env)
    try:
        kube.apply(doc)
        assert service.wait_for("again-pbt", timeout=240)["status"] == "completed"
    finally:
        service.close()
    old = study_folder(kube, tmp_path, "again-pbt")
    assert (old / "0").is_dir()
    kube.delete("Experiment", "pbt", "again-pbt", api_version="kubeflow.org/v1beta1")
    kube.apply(doc)
    service = Service(tmp_path, workers=1, **env)
    try:
        wait_gone(old)
        # The old study is retired, and the new one stored, in the transaction that asks for the
        # folder's deletion: until it commits, the name still reads as the old completed study.
        eventually(lambda: uid_of(tmp_path, "again-pbt") not in (old.name, None), "the new Experiment's study",
                   timeout=240, interval=0.2)
        assert service.wait_for("again-pbt", timeout=240)["status"] == "completed"
        assert study_folder(kube, tmp_path, "again-pbt").is_dir()
    finally:
        service.close()


def origin_of(tmp_path: Path, name: str) -> dict:
    """The stored origin of the study ``name`` that ``katuna serve`` in ``tmp_path`` follows."""
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        return store.get_study(name).origin or {}
    finally:
        store.close()


def undeletable(path: Path, on: bool) -> str | None:
    """Make ``path`` a file its pods may not delete, or deletable again: the error a deletion of
    it then meets, None where it cannot be made so. The stand-in runs pods as the tests' user:
    any user but root is kept out by the folder's permissions; root deletes whatever they say,
    so for root the file is made immutable (``chattr +i``, which needs the file system's support
    and CAP_LINUX_IMMUTABLE)."""
    if os.geteuid() != 0:
        with contextlib.suppress(FileNotFoundError):
            path.parent.chmod(0o555 if on else 0o755)
        return "Permission denied"
    try:
        made = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, timeout=30)
    except OSError:
        return None
    return "Operation not permitted" if made.returncode == 0 else None


def failed_job(kube: KubeStub, name: str, other_than: str | None = None) -> dict:
    """The Job ``name`` of namespace pbt once it failed (another than the Job of uid ``other_than``)."""
    def failed() -> dict | None:
        job = kube.jobs.get(("pbt", name))
        return job if job is not None and job["metadata"]["uid"] != other_than and any(
            c["type"] == "Failed" and c["status"] == "True" for c in job.get("status", {}).get("conditions", [])) \
            else None
    return eventually(failed, f"Job {name} fails", timeout=120)


def test_a_drop_job_that_fails_is_told_of_with_its_folder_and_cause_and_runs_again(
        kube: KubeStub, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
    """The folder holds a file its pods may not delete (:func:`undeletable`): each run's seven
    pods fail, and the Job with them. The sweep warns once per
    run, naming the Job, the claim, the folder, what the pod said and the likely cause, runs it
    again once it has been failed five minutes; a deletion asked again runs it again at once,
    and that run, the file deletable now, deletes the folder."""
    if ("pbt", CLAIM) not in kube.claims:
        assert claims.create(kube, "pbt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    uid = "feedbeef0003"
    stuck = claims.folder_of(kube, "pbt", CLAIM) / uid / "0" / "model.ckpt"
    stuck.parent.mkdir(parents=True)
    stuck.write_text("weights")
    denial = undeletable(stuck, True)
    if denial is None:
        pytest.skip("run as root, whom no permission keeps from a file, where chattr +i cannot make one immutable")
    try:
        assert program.drop({"STUDY_FOLDER": uid}, stuck.parent.parent.parent) == program.LEFT
        assert f"from the claim (its folder {uid}), as user {os.getuid()} (groups " in capsys.readouterr().err
        now = [time.time()]
        drops = CheckpointDrops(Cluster(namespace="pbt", checkpoints=VOLUME_OF), api_client(kube.url, 30),
                                clock=lambda: now[0])
        definition = native_pbt()
        record = StudyRecord(parse_study(definition), definition, ".", uid=uid)
        launch = trial_launch(record, TrialRecord(record.name, 0, {"lr": 0.01}, generation=0))
        assert drops.ask(launch)
        first = failed_job(kube, job_name(uid))
        with caplog.at_level(logging.WARNING, logger="katuna.kubernetes"):
            drops.sweep("pbt")
            drops.sweep("pbt")
        [told] = [r.getMessage() for r in caplog.records if job_name(uid) in r.getMessage()]
        assert told.startswith(f"Job pbt/{job_name(uid)} failed (BackoffLimitExceeded, run 1 of 3): the checkpoints "
                               f"of the deleted study of uid {uid} are left on claim {CLAIM}, in its folder {uid}; "
                               f"its last pod said: katuna checkpoints: the checkpoints of study {uid} could not all "
                               "be deleted from the claim"), told
        assert denial in told and "Likely cause: its user (runAsUser 0" in told
        assert told.endswith("katuna runs it again in 300 s"), told
        assert kube.jobs[("pbt", job_name(uid))]["metadata"]["uid"] == first["metadata"]["uid"], "not failed 5 min"
        now[0] += checkpoint_drop.RETRY_AFTER + 60
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="katuna.kubernetes"):
            drops.sweep("pbt")
            second = failed_job(kube, job_name(uid), other_than=first["metadata"]["uid"])
            assert second["metadata"]["annotations"] == {"katuna.dev/runs": "2"}
            now[0] = time.time()
            drops.sweep("pbt")
        assert [r.getMessage() for r in caplog.records if "run 2 of 3" in r.getMessage()], caplog.records
        assert undeletable(stuck, False)
        assert drops.ask(launch), "the deletion asked again"
        eventually(lambda: not stuck.parent.parent.exists(), "the run asked again deletes the folder", timeout=120)
        assert kube.jobs[("pbt", job_name(uid))]["metadata"]["annotations"] == {"katuna.dev/runs": "1"}
    finally:
        undeletable(stuck, False)


def test_the_sweep_leaves_a_failed_job_with_the_drop_label_that_katuna_did_not_make(kube: KubeStub):
    """Only a Job katuna labelled its own (``app.kubernetes.io/managed-by: katuna``) is run
    again: anyone's Job that carries the drop label is neither deleted nor made again with
    katuna's identity."""
    name = "someone-elses"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {
        checkpoint_drop.OF_LABEL: "feedbeef0009"}}, "spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["false"]}]}}}}
    assert kube.create_job("pbt", job)[0] == 201
    [uid] = [j["metadata"]["uid"] for (ns, n), j in kube.jobs.items() if (ns, n) == ("pbt", name)]
    with kube.lock:  # as the Job controller ends it once its pods failed past its backoffLimit
        kube.jobs[("pbt", name)]["status"] = {"conditions": [{
            "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    CheckpointDrops(Cluster(namespace="pbt", checkpoints=VOLUME_OF), api_client(kube.url, 30)).sweep("pbt")
    assert kube.jobs[("pbt", name)]["metadata"]["uid"] == uid


def test_the_last_run_that_fails_says_katuna_tries_no_more_and_what_to_do():
    job = drop_job(VOLUME_OF, UID, {"runAsUser": 1000}, "baseline", 600)
    job["metadata"]["annotations"] = {checkpoint_drop.RUNS: "3"}
    said = f"could not all be deleted: [Errno 13] Permission denied: '{UID}/0/model.ckpt'"
    text = checkpoint_drop.left(job, "pbt", "BackoffLimitExceeded", said, retry=False)
    assert "run 3 of 3" in text and "Likely cause: its user (runAsUser 1000" in text
    assert text.endswith(f"katuna runs it no more: delete the folder {UID} from the claim by hand (as the user that "
                         "owns its files)")
    again = checkpoint_drop.again(job, 2)
    assert again["spec"]["template"] == job["spec"]["template"] and again["metadata"]["annotations"] == {
        checkpoint_drop.RUNS: "2"}


def test_a_prune_job_is_the_drop_job_named_for_the_trials_end_and_told_the_folders(tmp_path: Path, kube: KubeStub):
    user = {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000}
    job = checkpoint_drop.prune_job(VOLUME_OF, UID, 12, [3, 5], user, "restricted", 600)
    drop = drop_job(VOLUME_OF, UID, user, "restricted", 600)
    validate(tmp_path, job)
    assert kube.create_job("pbt", job, dry_run=True)[0] == 201
    assert job["metadata"]["name"] == f"katuna-prune-{UID}-12"
    pod, dropping = job["spec"]["template"]["spec"], drop["spec"]["template"]["spec"]
    assert pod["containers"][0]["env"] == [{"name": "STUDY_FOLDER", "value": UID},
                                           {"name": "TRIAL_FOLDERS", "value": "3,5"}]
    assert (pod["securityContext"], pod["containers"][0]["securityContext"]) == \
        (dropping["securityContext"], dropping["containers"][0]["securityContext"]), "the drop Job's user and limits"
    assert {k: v for k, v in job["spec"].items() if k != "template"} == \
        {k: v for k, v in drop["spec"].items() if k != "template"}
    with pytest.raises(ValueError, match="trial numbers"):
        checkpoint_drop.prune_job(VOLUME_OF, UID, 12, [], user, "restricted", 600)


def test_the_program_deletes_only_the_trials_folders_named_following_no_link(tmp_path: Path):
    claim = tmp_path / "claim"
    study, outside = planted(claim)
    (study / "1").mkdir(exist_ok=True)
    (study / "2").mkdir(exist_ok=True)
    os.symlink(outside, study / "9")
    assert program.drop({"STUDY_FOLDER": UID, "TRIAL_FOLDERS": "1,9,7"}, claim) == 0
    assert sorted(p.name for p in study.iterdir()) == [".2.partial", "0", "2"]
    assert not (study / "1").exists() and not os.path.lexists(study / "9") and (study / "2").is_dir()
    assert (outside / "keep" / "weights").read_text() == "not the study's"
    assert program.drop({"STUDY_FOLDER": UID, "TRIAL_FOLDERS": "1,9"}, claim) == 0, "done already: nothing to do"
    for bad in ("", "1,,2", "../2", "2/x", "-1", "1e3", "١", "9" * 12):
        assert program.drop({"STUDY_FOLDER": UID, "TRIAL_FOLDERS": bad}, claim) == program.UNUSABLE, bad
    assert (study / "2").is_dir()


def test_a_pass_asks_a_prune_job_on_the_claim_once_and_it_deletes_the_folders(kube: KubeStub):
    if ("pbt", CLAIM) not in kube.claims:
        assert claims.create(kube, "pbt", {"metadata": {"name": CLAIM}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})[0] == 201
    definition = native_pbt()
    record = StudyRecord(parse_study(definition), definition, ".", uid="feedbeef0003")
    study = claims.folder_of(kube, "pbt", CLAIM) / record.uid
    for number in range(4):
        (study / str(number)).mkdir(parents=True)
    drops = CheckpointDrops(Cluster(namespace="pbt", checkpoints=VOLUME_OF), api_client(kube.url, 30))
    launch = trial_launch(record, TrialRecord(record.name, 6, {"lr": 0.01}, generation=1, parent=2))
    drops.prune(launch, [1, 2])
    drops.prune(launch, [1, 2])
    assert [name for _, name in kube.jobs if name.startswith("katuna-prune-feedbeef0003")] == \
        ["katuna-prune-feedbeef0003-6"], "a pass made again finds its Job made"
    eventually(lambda: sorted(p.name for p in study.iterdir()) == ["0", "3"], "the prune Job's run", timeout=60)
