"""The warm Pythons the tests fork ``katuna`` commands and the provisioning script from
(``tests/warm_katuna.py``): each command is a process of its own, with its own environment,
working directory, streams, exit status and signals, as if started with :mod:`subprocess`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from child_signals import interruptible as interruptible_child
from conftest import run_file, study_definition
from http_helpers import answers, free_port, run_katuna, serve_command, warm_runner
from waiting import eventually
from warm_katuna import WarmKatuna, warm
from warm_katuna import run as warm_run

ROOT = Path(__file__).parent.parent
NAME = "a-study-whose-name-is-longer-than-a-narrow-terminal-has-room"


def test_a_command_reads_its_own_environment_folder_and_terminal_width_and_exits_with_its_status(tmp_path: Path):
    """``COLUMNS`` is read as the command starts, not as the warm Python imported katuna (the
    CLI's consoles take it when they are made), and a relative ``--db`` is the command's folder's."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(study_definition(name=NAME, maxTrials=1, parallelism=1)))
    run_file(study, tmp_path / "katuna.db", tmp_path)
    wide = run_katuna("studies", "--db", "katuna.db", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert (wide.returncode, wide.stderr) == (0, "")
    assert [line for line in wide.stdout.splitlines() if NAME in line][0].split()[1:6] == [NAME, "│", "-", "│", "completed"]
    narrow = run_katuna("studies", "--db", "katuna.db", cwd=tmp_path, env={**os.environ, "COLUMNS": "60"})
    assert narrow.returncode == 0 and not [line for line in narrow.stdout.splitlines() if NAME in line]
    missing = run_katuna("studies", "--db", "none.db", cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert (missing.returncode, missing.stdout) == (2, "")
    assert f"no database at {tmp_path / 'none.db'} " in missing.stderr


@pytest.mark.parametrize("sig, returncode", [(signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_service_is_signalled_and_waited_for_by_its_own_process_id(tmp_path: Path, sig: int, returncode: int):
    """A ``katuna serve`` ends on SIGTERM with 0, as gunicorn's arbiter does, and a SIGKILL shows as
    the signal; until then it is running."""
    port = free_port()
    (tmp_path / "serve.log").write_text("")
    process = warm_runner().start(serve_command(tmp_path, port), tmp_path, dict(os.environ), tmp_path / "serve.log")
    eventually(lambda: answers(port), "katuna serve to answer")
    assert process.poll() is None
    assert Path(f"/proc/{process.pid}/cwd").resolve() == tmp_path.resolve()
    process.send_signal(sig)
    assert process.wait(timeout=30) == returncode
    assert process.poll() == returncode
    process.kill()  # an ended command is not signalled again: its pid may be another process's by now


@pytest.mark.parametrize("args, returncode", [(["gke", "up", "--help"], 0), (["gke", "up", "--max-nodes", "x"], 2)])
def test_a_module_is_run_as_python_dash_m_runs_it(args: list[str], returncode: int):
    """``python -m infra.provision`` forked from the warm Python that imported the script's modules
    runs the script as ``__main__`` (its usage names it as ``-m`` does, runpy warns of nothing)
    and says, and exits with, what a Python started afresh does."""
    argv = [sys.executable, "-m", "infra.provision", *args]
    forked = warm_run(warm("provision"), argv, ROOT, dict(os.environ), 60)
    fresh = subprocess.run(argv, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == returncode
    assert (forked.stdout + forked.stderr).startswith("Usage: python -m infra.provision gke up [OPTIONS]\n")


def test_a_module_ended_by_a_message_ends_as_python_ends_it():
    """``python -m json.tool`` of no JSON ends by ``sys.exit`` of its error, which the interpreter
    prints and exits 1 for: forked from the warm Python of the provisioning script (whose commands
    end without the modules' teardown otherwise), it says and exits with what a Python started
    afresh does."""
    argv = [sys.executable, "-m", "json.tool"]
    forked = warm_run(warm("provision"), argv, ROOT, dict(os.environ), 60)
    fresh = subprocess.run(argv, cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert (forked.returncode, forked.stderr) == (1, "Expecting value: line 1 column 1 (char 0)\n")


SIGINT_SAYS = """import signal, sys
handler = signal.getsignal(signal.SIGINT)
print({signal.default_int_handler: "KeyboardInterrupt", signal.SIG_IGN: "ignored"}.get(handler, repr(handler)))
"""


def test_a_command_started_interruptible_gets_ctrl_c_as_a_python_started_afresh_with_it_at_its_default(
        tmp_path: Path):
    """Tests run as a background job of a shell ignore SIGINT, and so does a warm Python they
    start: a command forked from it ``interruptible`` handles SIGINT as a Python started with
    ``preexec_fn=child_signals.interruptible`` does (KeyboardInterrupt), one forked otherwise
    ignores it as a Python started afresh from the tests does."""
    (tmp_path / "sigint_says.py").write_text(SIGINT_SAYS)
    argv = [sys.executable, "-m", "sigint_says"]
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        warm_python = WarmKatuna("katuna")
        try:
            for interruptible, says in ((True, "KeyboardInterrupt\n"), (False, "ignored\n")):
                process = warm_python.start(argv, tmp_path, dict(os.environ), tmp_path / f"{interruptible}.out",
                                            interruptible=interruptible)
                assert process.wait(timeout=60) == 0
                fresh = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                       preexec_fn=interruptible_child if interruptible else None)
                assert (tmp_path / f"{interruptible}.out").read_text() == fresh.stdout == says
        finally:
            warm_python.close()
    finally:
        signal.signal(signal.SIGINT, ignored)


STDOUT_SAYS = """import os, sys
print(sys.stdout is None and sys.__stdout__ is None, file=sys.stderr)
opened = os.open(os.devnull, os.O_RDONLY)
print(opened, file=sys.stderr)
"""


def test_a_command_started_with_its_standard_output_closed_has_none_as_a_python_started_so_has(tmp_path: Path):
    """``sys.stdout`` (and ``sys.__stdout__``) is None, and the next file opened takes the closed
    descriptor 1, in a command forked from the warm Python with no standard output, as in a
    Python started afresh with it closed."""
    (tmp_path / "stdout_says.py").write_text(STDOUT_SAYS)
    argv = [sys.executable, "-m", "stdout_says"]
    process = warm("katuna").start(argv, tmp_path, dict(os.environ), None, tmp_path / "forked.err")
    assert process.wait(timeout=60) == 0
    fresh = subprocess.run(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True, timeout=60,
                           preexec_fn=lambda: os.close(1))
    assert (tmp_path / "forked.err").read_text() == fresh.stderr == "True\n1\n"


def test_a_command_forked_with_the_kubernetes_client_imported_reads_its_own_kubeconfig_variable(tmp_path: Path):
    """The client reads ``KUBECONFIG`` as it is imported, where it looks for a kubeconfig by
    default: a command forked from the warm Python that imported it reads the variable of its
    own environment, as a Python started afresh does, not the warm Python's."""
    (tmp_path / "where.py").write_text("from kubernetes.config import kube_config\n"
                                       "print(kube_config.KUBE_CONFIG_DEFAULT_LOCATION)\n")
    seen = []
    for kubeconfig in (str(tmp_path / "config"), None):
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env.update({"KUBECONFIG": kubeconfig} if kubeconfig else {})
        fresh = subprocess.run([sys.executable, "-m", "where"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=60)
        forked = warm_run(warm("kubernetes"), [sys.executable, "-m", "where"], tmp_path, env, 60)
        seen.append((forked.stdout, forked.returncode, fresh.stdout, fresh.returncode))
    assert seen == [(f"{tmp_path / 'config'}\n", 0) * 2, ("~/.kube/config\n", 0) * 2]
