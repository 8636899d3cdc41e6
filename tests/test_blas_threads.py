"""katuna's own processes load NumPy with one BLAS thread (:mod:`functions.blas_threads`),
unless the operator set ``OPENBLAS_NUM_THREADS``; the processes they start see the environment
as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.blas_threads import VARIABLE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")

KATUNA = """
import json, os, sys, threading
from functions import entry

def report():
    threading.main_thread().join()  # the CLI has ended; Python is joining this thread
    print(json.dumps({"threads": len(os.listdir("/proc/self/task")), "numpy": "numpy" in sys.modules,
                      "variable": os.environ.get("OPENBLAS_NUM_THREADS")}), flush=True)

threading.Thread(target=report).start()
sys.argv = ["katuna", *sys.argv[1:]]
entry.main()
"""
"""A ``katuna`` process, reporting once its CLI has ended: its threads (the main one and the
reporting one, then NumPy's), whether NumPy is loaded, and the variable."""

STUDY = str(Path(__file__).parent.parent / "examples" / "quickstart.yaml")
COMMANDS = {"render": ["render", STUDY], "convert": ["convert", STUDY]}
"""A command that loads NumPy as it starts (it asks Optuna's sampler), and one that comes to load
it as it reads the study (the validation's samplers), with no BLAS thread set up beforehand."""

GUNICORN_MASTER = """
import json, os, sys
from functions import gunicorn_config  # as gunicorn's master loads it, before it loads the app or forks

print(json.dumps({"threads": len(os.listdir("/proc/self/task")), "numpy": "numpy" in sys.modules,
                  "variable": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def probe(program: str, environment: dict[str, str], *args: str) -> dict:
    """What ``program`` reports, run with ``args`` in a fresh Python with ``environment`` added
    to this one's (without the variable)."""
    env = {name: value for name, value in os.environ.items() if name != VARIABLE} | environment
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=60,
                          env=env)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_katuna_process_runs_numpy_on_one_blas_thread_and_leaves_the_environment_as_it_was(command: str):
    assert probe(KATUNA, {}, *COMMANDS[command]) == {"threads": 2, "numpy": True, "variable": None}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_operators_own_blas_thread_count_rules_katunas_process_too(command: str):
    """OpenBLAS runs no more threads than there are cores (its main thread is the process's)."""
    blas_threads = min(2, os.cpu_count() or 1)
    assert probe(KATUNA, {VARIABLE: "2"}, *COMMANDS[command]) == {"threads": 1 + blas_threads, "numpy": True,
                                                                   "variable": "2"}


def test_a_command_that_needs_no_numpy_loads_none():
    assert probe(KATUNA, {}, "--version") == {"threads": 2, "numpy": False, "variable": None}


def test_the_images_gunicorn_master_loads_numpy_on_one_blas_thread_for_its_workers():
    assert probe(GUNICORN_MASTER, {}) == {"threads": 1, "numpy": True, "variable": None}
