# Bambam: `make run` runs the whole pipeline on demo data; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BAMBAM := $(VENV)/bin/bambam
BAMBAM_HOME ?= $(CURDIR)/.bambam
# The demo data ends on 2025-12-31; the demo run treats that day as today.
BAMBAM_AS_OF ?= 2025-12-31
RUN_ENV := BAMBAM_HOME=$(BAMBAM_HOME) BAMBAM_AS_OF=$(BAMBAM_AS_OF)
DEMO_ARGS ?= --parks MK,EP,HS,AK --entities-per-park 4 --start 2024-01-01 --end 2025-12-31 --seed 42

.PHONY: run test venv clean ui screenshots vendor-plotly

$(VENV)/.installed: pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	@if [ -z "$$BAMBAM_RAW" ] && [ ! -d "$(BAMBAM_HOME)/raw/export" ]; then \
		$(RUN_ENV) $(BAMBAM) demo-data $(DEMO_ARGS); fi
	$(RUN_ENV) $(BAMBAM) run

# Two passes: every test but the timed ones on TEST_WORKERS processes (pytest-xdist; a module's
# tests stay on one worker, so its fixtures are built once), then the tests that assert a
# wall-clock budget (marker `timing`) alone. Both run; either failing fails `make test`.
TEST_WORKERS ?= 2
test: venv
	@status=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not timing" || status=1; \
	$(PY) -m pytest -q -m timing || status=1; \
	exit $$status

# Small PNGs of every dashboard page, from the home `make run` built (needs /usr/bin/chromium).
screenshots: run
	$(RUN_ENV) $(PY) scripts/screenshots.py

ui: venv
	$(RUN_ENV) $(BAMBAM) ui

clean:
	rm -rf $(BAMBAM_HOME)

# The dashboard's plotly.js "basic" bundle, at the version of the installed Python plotly's
# plotly.js (after upgrading plotly; needs npm and the npm registry). Checked by
# bambam_tests/dashboard/test_dashboard_assets.py.
ASSETS_DIR := $(CURDIR)/bambam_assets/dashboard/assets
vendor-plotly: venv
	@v=$$($(PY) -c "from plotly.offline import get_plotlyjs_version as v; print(v())"); \
	tmp=$$(mktemp -d); cd $$tmp && npm pack --silent plotly.js-basic-dist-min@$$v >/dev/null && \
	tar xzf plotly.js-basic-dist-min-$$v.tgz && \
	cp package/plotly-basic.min.js $(ASSETS_DIR)/plotly-basic.min.js && \
	cp package/LICENSE $(ASSETS_DIR)/plotly-basic.LICENSE.txt && rm -rf $$tmp && \
	echo "plotly.js basic $$v -> $(ASSETS_DIR)"
