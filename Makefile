# Every target sets up its own virtual environment on first use and reuses it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The torch build these machines carry on disk; override on other machines, e.g.
#   make test TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.camcheck-installed
DEMO_OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: venv demo screenshot test chromium lint format bench bench-report clean

$(STAMP): pyproject.toml Makefile
	@echo "setting up $(VENV): torch, torchvision and the package with its extras (once; a few minutes)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e ".[test,demo,bench]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m pytest_camcheck.demo --out $(DEMO_OUT)

# The README's screenshot (docs/images/report.png), made by the demo with headless Chromium.
screenshot: $(STAMP) chromium
	$(PY) -m pytest_camcheck.demo --out $(DEMO_OUT) --screenshot docs/images/report.png

test: $(STAMP) chromium
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# Headless Chromium for the report's browser test (tests/report/test_report_browser.py).
# Installed with apt-get when missing and possible; never fails the build: without it, that test
# skips and says how to install it.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the report's browser test (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "warning: could not install chromium; the browser test will skip"; \
	else \
		echo "note: chromium not found and no apt-get; the report's browser test will skip"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks scripts
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/bench_engine.py

# The report on 200 failing cards of real photos: size, CPU to write, Chromium's load event.
bench-report: $(STAMP) chromium
	$(PY) benchmarks/bench_report.py

clean:
	rm -rf $(VENV) out build dist src/*.egg-info .pytest_cache .ruff_cache
