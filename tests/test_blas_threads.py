"""katuna's own processes load NumPy with one BLAS thread (:mod:`functions.blas_threads`),
unless the operator set ``OPENBLAS_NUM_THREADS``; the processes they start see the environment
as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from functions.blas_threads import VARIABLE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")

KATUNA_VERSION = """
import json, os, sys, threading
from functions import entry

def report():
    threading.main_thread().join()  # the CLI has ended; Python is joining this thread
    print(json.dumps({"threads": len(os.listdir("/proc/self/task")), "numpy": "numpy" in sys.modules,
                      "variable": os.environ.get("OPENBLAS_NUM_THREADS")}), flush=True)

threading.Thread(target=report).start()
sys.argv = ["katuna", "--version"]
entry.main()
"""
"""A ``katuna --version`` process, reporting once its CLI has ended: its threads (the main one and
the reporting one, then NumPy's), whether NumPy is loaded, and the variable."""

GUNICORN_MASTER = """
import json, os, sys
from functions import gunicorn_config  # as gunicorn's master loads it, before it loads the app or forks

print(json.dumps({"threads": len(os.listdir("/proc/self/task")), "numpy": "numpy" in sys.modules,
                  "variable": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def probe(program: str, environment: dict[str, str]) -> dict:
    """What ``program`` reports, run in a fresh Python with ``environment`` added to this one's
    (without the variable)."""
    env = {name: value for name, value in os.environ.items() if name != VARIABLE} | environment
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_katuna_process_runs_numpy_on_one_blas_thread_and_leaves_the_environment_as_it_was():
    assert probe(KATUNA_VERSION, {}) == {"threads": 2, "numpy": True, "variable": None}


def test_the_operators_own_blas_thread_count_rules_katunas_process_too():
    """OpenBLAS runs no more threads than there are cores (its main thread is the process's)."""
    blas_threads = min(2, os.cpu_count() or 1)
    assert probe(KATUNA_VERSION, {VARIABLE: "2"}) == {"threads": 1 + blas_threads, "numpy": True, "variable": "2"}


def test_the_images_gunicorn_master_loads_numpy_on_one_blas_thread_for_its_workers():
    assert probe(GUNICORN_MASTER, {}) == {"threads": 1, "numpy": True, "variable": None}
