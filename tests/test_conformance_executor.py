"""The ``Executor`` port's contract, run against every executor.

:class:`ExecutorContract` states what any executor does; each implementation gets a subclass
that provides an ``executor`` fixture and says how an end reaches katuna (reported as it
happens, or learnt by asking). A new executor comes with its tests ready: subclass the contract.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kube_stub import KubeStub
from proc_stat import alive
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.local_executor import LocalExecutor
from functions.core.cluster import Cluster
from functions.core.errors import Stopping
from functions.core.events import TRIAL_FINISHED, Event
from functions.core.ports import Executor, TrialLaunch

ENDS_WITHIN = 30.0
KUBE_NAMESPACES = ("contract",)
_studies = itertools.count()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gated(folder: Path, number: int = 0) -> list[str]:
    """An attempt that writes its pid to ``started-N`` in ``folder``, waits (a minute at most)
    for ``go`` there, then writes ``finished-N``: it finishes its work only once let."""
    return python(f"import os, time\nfolder = {str(folder)!r}\n"
                  f"open(f'{{folder}}/.started-{number}', 'w').write(str(os.getpid()))\n"
                  f"os.rename(f'{{folder}}/.started-{number}', f'{{folder}}/started-{number}')\n"
                  "deadline = time.monotonic() + 60\n"
                  "while not os.path.exists(f'{folder}/go') and time.monotonic() < deadline:\n"
                  "    time.sleep(0.05)\n"
                  f"open(f'{{folder}}/finished-{number}', 'w').close()\n")


def started_pid(folder: Path, number: int = 0) -> int | None:
    """The pid a :func:`gated` attempt wrote once it started."""
    path = folder / f"started-{number}"
    return int(path.read_text()) if path.exists() else None


class ExecutorContract:
    """What every executor does. Subclasses provide the ``executor`` fixture and :meth:`end_of`."""

    image: str | None = None

    def end_of(self, executor: Executor, launch: TrialLaunch) -> Event:
        """The ``trial.finished`` of the attempt, once it has ended (waits for it)."""
        raise NotImplementedError

    def attempt(self, tmp_path: Path, argv: list[str], number: int = 0) -> TrialLaunch:
        study = f"contract-{next(_studies)}"
        return TrialLaunch(study=study, uid=f"{study}-{os.getpid()}", number=number, attempt=1, job_name=f"{study}-{number}",
                           argv=argv, env={}, working_dir=str(tmp_path), timeout=None, image=self.image)

    def test_an_attempt_runs_and_its_end_carries_the_exit_code_and_output(self, executor: Executor, tmp_path: Path):
        launch = self.attempt(tmp_path, python("print('loss=0.5', flush=True)"))
        executor.launch(launch)
        end = self.end_of(executor, launch)
        assert end.type == TRIAL_FINISHED
        assert {k: end.data[k] for k in ("study", "uid", "trial", "attempt", "outcome", "exitCode")} == {
            "study": launch.study, "uid": launch.uid, "trial": 0, "attempt": 1, "outcome": "exited", "exitCode": 0}
        assert "loss=0.5" in lines(executor.output(launch))

    def test_a_failing_attempt_ends_with_its_exit_code(self, executor: Executor, tmp_path: Path):
        launch = self.attempt(tmp_path, python("import sys; sys.exit(3)"))
        executor.launch(launch)
        end = self.end_of(executor, launch)
        assert (end.data["outcome"], end.data["exitCode"]) == ("exited", 3)

    def test_an_attempt_exists_once_launched(self, executor: Executor, tmp_path: Path):
        launch = self.attempt(tmp_path, python("pass"))
        assert not executor.exists(launch)
        executor.launch(launch)
        assert executor.exists(launch)
        self.end_of(executor, launch)
        assert executor.running(launch.study) == 0

    def test_launching_an_attempt_again_starts_no_second_run(self, executor: Executor, tmp_path: Path):
        runs = tmp_path / "runs.txt"
        launch = self.attempt(tmp_path, python(f"open({str(runs)!r}, 'a').write('ran\\n')"))
        executor.launch(launch)
        executor.launch(launch)
        self.end_of(executor, launch)
        assert runs.read_text() == "ran\n"

    def test_stopping_a_trial_stops_its_running_attempt(self, executor: Executor, tmp_path: Path):
        launch = self.attempt(tmp_path, gated(tmp_path))
        executor.launch(launch)
        pid = eventually(lambda: started_pid(tmp_path), "the attempt starts", timeout=ENDS_WITHIN)
        executor.stop(launch)
        eventually(lambda: not alive(pid), "the stopped attempt's process ends", timeout=ENDS_WITHIN)
        (tmp_path / "go").touch()
        assert not (tmp_path / "finished-0").exists(), "the attempt was stopped before it finished its work"

    def test_stopping_trials_of_a_study_stops_their_attempts_and_no_other(self, executor: Executor,
                                                                         tmp_path: Path):
        """A study's end stops every trial it still runs at once; a trial not named runs on."""
        first = self.attempt(tmp_path, [])
        launches = [replace(first, number=number, job_name=f"{first.study}-{number}", argv=gated(tmp_path, number))
                    for number in range(3)]
        for launch in launches:
            executor.launch(launch)
        pids = eventually(lambda: all(started := [started_pid(tmp_path, n) for n in range(3)]) and started,
                          "the attempts start", timeout=ENDS_WITHIN)
        executor.stop_trials(launches[:2])
        eventually(lambda: not alive(pids[0]) and not alive(pids[1]), "the stopped attempts' processes end",
                   timeout=ENDS_WITHIN)
        assert alive(pids[2]), "the trial not named runs on"
        (tmp_path / "go").touch()
        assert self.end_of(executor, launches[2]).data["exitCode"] == 0
        assert [(tmp_path / f"finished-{n}").exists() for n in range(3)] == [False, False, True]

    def test_a_file_the_attempt_did_not_write_has_no_lines(self, executor: Executor, tmp_path: Path):
        launch = self.attempt(tmp_path, python("pass"))
        executor.launch(launch)
        self.end_of(executor, launch)
        assert list(executor.read_file(launch, "metrics.txt")) == []

    def test_once_reads_are_stopped_a_read_under_way_ends_and_no_other_begins(self, executor: Executor,
                                                                              tmp_path: Path):
        """The process is stopping: a handler reading a long output gives up (:class:`Stopping`,
        a temporary error, so its event is handled again) rather than read it to its end."""
        launch = self.attempt(tmp_path, python("print('\\n'.join(f'loss={i}' for i in range(100000)))"))
        executor.launch(launch)
        self.end_of(executor, launch)
        reading = iter(executor.output(launch))
        assert next(reading).startswith("loss=0")
        executor.stop_reads()
        with pytest.raises(Stopping, match="katuna is stopping"):
            deque(reading, maxlen=0)
        with pytest.raises(Stopping):
            list(executor.output(launch))


def pods_of(kube: KubeStub, study: str) -> set[str]:
    """The Jobs of the study's pods on the stand-in."""
    return {pod["metadata"]["labels"]["job-name"] for pod in list(kube.pods.values())
            if pod["metadata"]["labels"].get("katuna.dev/study") == study}


def lines(output: Iterator[str]) -> list[str]:
    """An attempt's output lines without their line endings (executors may keep them)."""
    return [line.rstrip("\r\n") for line in output]


class TestLocalExecutor(ExecutorContract):
    """Trials as local processes; ends are published as they happen."""

    @pytest.fixture
    def executor(self, tmp_path: Path):
        self.published: list[Event] = []
        local = LocalExecutor(tmp_path / "logs", publish=self.published.append, kill_grace=0.5)
        yield local
        local.shutdown()

    def end_of(self, executor: Executor, launch: TrialLaunch) -> Event:
        def ended() -> list[Event]:
            return [e for e in self.published if (e.data["study"], e.data["trial"]) == (launch.study, launch.number)]
        return eventually(ended, "the attempt's end", timeout=ENDS_WITHIN)[0]


class TestKubernetesExecutor(ExecutorContract):
    """Trials as Jobs on a loopback Kubernetes API; ends are learnt by polling the Job."""

    image = "python:3.12"

    @pytest.fixture
    def executor(self, kube: KubeStub):
        return KubernetesExecutor(Cluster(namespace="contract"), api_client(kube.url))

    def end_of(self, executor: Executor, launch: TrialLaunch) -> Event:
        return eventually(lambda: executor.poll(launch), "the attempt's end", timeout=ENDS_WITHIN)

    def test_stopping_trials_deletes_their_jobs_with_their_pods_in_one_request(self, executor: Executor,
                                                                               kube: KubeStub, tmp_path: Path):
        """A study's end makes one DeleteCollection, inside its handler's transaction, however
        many trials it stops; their pods go with their Jobs, and another trial's Job stays."""
        first = self.attempt(tmp_path, python("import time; time.sleep(60)"))
        launches = [replace(first, number=n, job_name=f"{first.study}-{n}") for n in range(4)]
        for launch in launches:
            executor.launch(launch)
        eventually(lambda: len(pods_of(kube, first.study)) == 4, "the pods are made", timeout=ENDS_WITHIN)
        before = len(kube.collection_deletes)
        executor.stop_trials(launches[:3])
        assert [(ns, policy) for ns, _, policy in kube.collection_deletes[before:]] == [("contract", "Background")]
        assert {name for ns, name in kube.jobs if ns == "contract" and name.startswith(first.study)} == {
            f"{first.study}-3"}
        eventually(lambda: pods_of(kube, first.study) == {f"{first.study}-3"}, "the pods go once their containers stopped",
                   timeout=ENDS_WITHIN)
        executor.stop(launches[3])
        eventually(lambda: pods_of(kube, first.study) == set(), "its pod goes too", timeout=ENDS_WITHIN)

    def test_where_a_log_begins_is_read_when_its_first_bytes_cut_a_character(self, executor: KubernetesExecutor,
                                                                             tmp_path: Path):
        """The kubelet cuts ``limitBytes`` at a byte: one of these two first lines is cut inside
        a two-byte character, whatever the length of the time before it. The client would
        refuse to decode it; the time that leads the line is read all the same."""
        first = self.attempt(tmp_path, [])
        launches = [replace(first, number=n, job_name=f"{first.study}-{n}",
                            argv=python(f"print({'x' * n!r} + 'é' * 60); print('loss=1')")) for n in range(2)]
        for launch in launches:
            executor.launch(launch)
        for number, launch in enumerate(launches):
            self.end_of(executor, launch)
            start = executor.log_start(launch)
            assert start is not None and start.first is not None
            assert lines(executor.output(launch)) == ["x" * number + "é" * 60, "loss=1"]

    def test_where_katuna_may_not_delete_a_collection_of_jobs_each_job_is_deleted_alone(self, kube: KubeStub,
                                                                                     tmp_path: Path):
        """A namespace bound to a Role from an older katuna's manifests, without
        ``deletecollection``: a study's end still stops its trials, a Job at a time."""
        kube.add_namespace("older", grant=False)
        with kube.lock:
            kube.authorizer.grant_in_but("older", "jobs", verb="deletecollection")
        executor = KubernetesExecutor(Cluster(namespace="older"), api_client(kube.url))
        first = self.attempt(tmp_path, python("import time; time.sleep(60)"))
        launches = [replace(first, number=n, job_name=f"{first.study}-{n}") for n in range(2)]
        for launch in launches:
            executor.launch(launch)
        before = len(kube.audit)
        executor.stop_trials(launches)
        assert [(verb, resource) for verb, resource, _, _ in kube.audit[before:]] == [
            ("deletecollection", "jobs"), ("list", "jobs"), ("delete", "jobs"), ("delete", "jobs")]
        assert not [name for ns, name in kube.jobs if ns == "older"]

    def test_running_attempts_looked_at_together_cost_one_list_of_jobs_and_one_of_pods(
            self, executor: KubernetesExecutor, kube: KubeStub, tmp_path: Path):
        """The watcher's look at every running trial of a study, every two seconds: the ended
        attempt is found with its exit code and output, the running ones are left, as when each
        is read alone, in two requests rather than two for each trial."""
        first = self.attempt(tmp_path, python("import time; time.sleep(60)"))
        launches = [replace(first, number=n, job_name=f"{first.study}-{n}") for n in range(5)]
        launches[2] = replace(launches[2], argv=python("print('loss=0.25'); raise SystemExit(3)"))
        for launch in launches:
            executor.launch(launch)
        alone = eventually(lambda: executor.poll(launches[2]), "the short attempt's end", timeout=ENDS_WITHIN)
        before = len(kube.audit)
        with executor.together(launches):
            ends = [executor.poll(launch) for launch in launches]
            output = lines(executor.output(launches[2]))
        made = [(verb, resource) for verb, resource, _, _ in kube.audit[before:]]
        assert [end is not None for end in ends] == [False, False, True, False, False]
        assert ends[2].data == alone.data and (ends[2].data["outcome"], ends[2].data["exitCode"]) == ("exited", 3)
        assert output == ["loss=0.25"]
        assert made == [("list", "jobs"), ("list", "pods"), ("get", "pods")], "the log is the only read alone"
        before = len(kube.audit)
        assert [end and end.data for end in map(executor.poll, launches)] == [end and end.data for end in ends]
        assert len(kube.audit) - before == 2 * len(launches), "outside the block, each is read alone"
        executor.stop_trials(launches)


def test_every_full_executor_has_each_method_of_the_port(monkeypatch: pytest.MonkeyPatch):
    """The port's methods, each implemented by the local and Kubernetes executors and the
    benchmarks' instant one (which stands in for both in the handlers' benchmarks): a method
    the port gains and an executor lacks fails a handler that calls it."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent / "benchmarks"))
    from instant import InstantExecutor

    wanted = {name for name in vars(Executor) if not name.startswith("_")}
    for executor in (LocalExecutor, KubernetesExecutor, InstantExecutor):
        assert wanted <= set(dir(executor)), f"{executor.__name__} lacks {sorted(wanted - set(dir(executor)))}"
