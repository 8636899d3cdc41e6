# Two commands on a fresh machine with Python, pip and make:
#   make run    set up .venv, then run examples/quickstart.yaml on the embedded default
#   make test   set up .venv, then run the whole test suite (what CI runs)
# While changing code:
#   make check  lint, import contracts, type check and the fast tests (under 2 minutes)
# The interpreter .venv is made from: python3 from the PATH, or the system's own /usr/bin/python3
# when that is the same Python version and can make a venv. Distributions build CPython with
# profile-guided optimisation and link the interpreter statically; a build from source such as
# pyenv's default does neither: on the system's build the suite used about 12% less CPU (same
# machine, same tests). `make PYTHON=...` picks another.
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell version='import sys; print(sys.version_info[:2])'; \
	if [ -x $(SYSTEM_PYTHON) ] && $(SYSTEM_PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 \
		&& [ "$$($(SYSTEM_PYTHON) -c "$$version")" = "$$(python3 -c "$$version")" ]; \
	then echo $(SYSTEM_PYTHON); else echo python3; fi)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.katuna-installed

.PHONY: run test check chromium lock bench bench-peers clean

# katuna is installed editable as a path entry (setuptools' compat mode), not through the import hook its
# default mode puts in every interpreter started here: the hook and what it imports (pathlib and more)
# cost each Python process 16 ms of CPU, the suite's thousands of processes and every trial's start.
EDITABLE := --no-deps -e . --config-settings editable_mode=compat

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode -p $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet -p $(PY) $(EDITABLE)
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/katuna run examples/quickstart.yaml

# Bytecode is compiled up front (the dependencies' when .venv is made): the suite starts hundreds of
# Python processes, and where PYTHONDONTWRITEBYTECODE is set each would compile its imports again.
# So are the test modules as pytest rewrites their asserts, once, by a collection in one process
# that may write them (its failure left to the run to report): each worker then reads them (11 s of
# CPU to collect the suite without them, 4.4 s with), where every worker would rewrite them all
# again. Six workers (pytest-xdist) even on two cores: each test waits on trial processes and
# loopback servers at times, and another runs meanwhile (on 2 cores, 2026-12-03, a fresh clone: 614
# and 708 s with six, 692 s with seven, 705-880 s with five; 2026-12-04: 648 s with six, 692 s with
# eight, whose load timed a test out). Work stealing: a worker that runs out of tests takes some
# from another's queue, so all end within seconds of each other (handed out in fixed chunks, one
# worker once ran its last 65 s alone).
test: $(STAMP) chromium
	$(PY) -m compileall -q functions infra benchmarks
	-env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest --collect-only -q -p no:cacheprovider > /dev/null
	$(PY) -m pytest -n 6 --dist worksteal

# Everything but the tests marked slow or browser; `make test` still runs them all. The loop is
# run again and again, so its workers may write pytest's rewritten test modules, and the next run
# reads them (only a changed module is rewritten). Four workers on two cores, where these tests
# wait at times (2026-12-03: 123 s with four, 137 s with five, 172 s with two).
check: $(STAMP)
	$(VENV)/bin/ruff check functions tests infra benchmarks examples
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q -n 4 -m "not slow and not browser"

# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
# Installed when it can be (as root, with apt); otherwise those tests skip, saying how to get it.
chromium:
	@if [ -n "$$KATUNA_CHROMIUM" ] || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "Chromium is not installed and installing it needs root: the browser tests will be skipped."; \
		echo "To run them: sudo apt-get install chromium (or sudo make chromium)."; \
	fi

# Every benchmark at full size (tens of minutes on 2 cores); figures land in benchmarks/results/.
BENCHMARKS := overhead handler_latency burst search_quality pruning scale ui_render reliability cluster_cost progress_scan cluster_requests process_exit cli_start peer_lookup history_load pareto_front pbt_decision large_study metrics_wrapper
bench: $(STAMP)
	for b in $(BENCHMARKS); do $(PY) benchmarks/$$b.py || exit 1; done

# katuna's overhead beside the tuners a user would pick instead: Optuna on its RDB storage and Ray
# Tune. Ray is large, so it lives in its own venv (.venv-peers), from benchmarks/requirements-peers.lock
# (resolved against requirements.lock); requirements.lock and .venv never hold it. Sizes can be
# given, e.g. `make bench-peers PEERS_ARGS="-n 100 -r 3 --ray-trials 10"`.
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.katuna-installed
PEERS_ARGS ?=
$(PEERS_STAMP): requirements.lock benchmarks/requirements-peers.lock pyproject.toml | $(STAMP)
	$(PYTHON) -m venv $(PEERS_VENV)
	$(VENV)/bin/uv pip sync --quiet -p $(PEERS_VENV)/bin/python requirements.lock benchmarks/requirements-peers.lock
	$(VENV)/bin/uv pip install --quiet -p $(PEERS_VENV)/bin/python $(EDITABLE)
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python benchmarks/overhead.py --ray on $(PEERS_ARGS)

# Re-resolve the pinned dependency set after changing pyproject.toml. The service image installs
# requirements-deploy.lock: the runtime dependencies and both clouds' extras, at the versions of
# requirements.lock (no test, benchmark or example packages).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra gke --extra eks --extra examples --extra bench \
		-p 3.11 --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra gke --extra eks -c requirements.lock \
		-p 3.11 --quiet -o requirements-deploy.lock
	$(VENV)/bin/uv pip compile benchmarks/peers.in -c requirements.lock -p 3.11 --quiet \
		-o benchmarks/requirements-peers.lock

clean:
	rm -rf $(VENV) $(PEERS_VENV) *.db *.db-* *-logs
