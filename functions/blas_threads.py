"""One BLAS thread in katuna's own processes: NumPy loaded with ``OPENBLAS_NUM_THREADS=1``.

NumPy's OpenBLAS starts a thread per core as it loads, and each new thread spins before it
sleeps: every ``katuna`` command paid about 0.15 s of CPU for threads that never ran a
computation (0.53 s where it now takes 0.38, on a 2-core machine). katuna's own numerical work
(a sampler over a study's trials, a Pareto front) is small, where more BLAS threads gain
nothing; the cores belong to the trials.

The variable is set only while NumPy loads, and only where the operator has not set it: every
process katuna starts (trials, the guard, ``gunicorn``'s workers' children) gets the
environment as it was, and an operator's own ``OPENBLAS_NUM_THREADS`` rules katuna's process too.
A command that starts no process may hold it set while it runs (:func:`one_blas_thread`), so
that NumPy, should the command come to load it, loads on one thread too.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

VARIABLE = "OPENBLAS_NUM_THREADS"
"""The variable NumPy's OpenBLAS reads, once, as it loads."""


def load_numpy_with_one_blas_thread() -> None:
    """Load NumPy now, with one BLAS thread unless the operator chose otherwise; once NumPy is
    loaded, its thread count is fixed, so a later call changes nothing."""
    if "numpy" not in sys.modules:
        with one_blas_thread():
            importlib.import_module("numpy")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """The variable set to one thread meanwhile, unless the operator set it (or NumPy is loaded,
    its thread count fixed): for what loads NumPy, and starts no process that would inherit it."""
    if "numpy" in sys.modules or VARIABLE in os.environ:
        yield
        return
    os.environ[VARIABLE] = "1"
    try:
        yield
    finally:
        os.environ.pop(VARIABLE, None)
