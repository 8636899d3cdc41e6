# Two commands on a fresh machine with Python, pip and make:
#   make run    set up .venv, then run examples/quickstart.yaml on the embedded default
#   make test   set up .venv, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.katuna-installed

.PHONY: run test chromium lock bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip sync --quiet -p $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet -p $(PY) --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/katuna run examples/quickstart.yaml

test: $(STAMP) chromium
	$(PY) -m pytest

# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends chromium)

# Every benchmark at full size (tens of minutes on 2 cores); figures land in benchmarks/results/.
BENCHMARKS := overhead handler_latency burst search_quality pruning scale ui_render reliability
bench: $(STAMP)
	for b in $(BENCHMARKS); do $(PY) benchmarks/$$b.py || exit 1; done

# Re-resolve the pinned dependency set after changing pyproject.toml.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra gke --extra eks --extra examples --extra bench \
		-p 3.11 --quiet -o requirements.lock

clean:
	rm -rf $(VENV) katuna.db katuna.db-* katuna-logs
